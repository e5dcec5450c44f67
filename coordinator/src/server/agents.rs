//! Handlers for agents: enrolment, heartbeats, leases, input download, frame upload, lease end.
//! Every route but `register` needs the agent's own credentials.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use idlefarm_protocol::{
    AUTHORIZATION, HeartbeatRequest, HeartbeatResponse, ImageFormat, LeaseEnd, LeaseRequest,
    LeaseResponse, MAX_RENDERER_ERROR, PresenceState, RENDERER_ERROR_HEADER, RegisterRequest,
    RegisterResponse,
};
use tokio_util::io::ReaderStream;

use super::Coordinator;
use super::frame_upload;
use super::frame_verdict::{self, Delivery};
use super::state::now_secs;
use crate::auth;
use crate::error::{ApiError, JsonBody, PathParams};

/// How long a lease request waits for work before answering "none" (well under the agent's
/// request timeout).
pub const LEASE_LONG_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// An authenticated agent, from its `Authorization: Bearer <id>.<secret>` header.
pub struct AgentAuth(pub i64);

impl FromRequestParts<Arc<Coordinator>> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        coord: &Arc<Coordinator>,
    ) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("missing agent credentials (Authorization header)")
            })?;
        let (id, secret) = auth::parse_bearer(header).ok_or_else(|| {
            ApiError::unauthorized(
                "malformed Authorization header: expected `Bearer <id>.<secret>`",
            )
        })?;
        let agents = coord.agents.read().await;
        let ok = agents
            .get(&id)
            .is_some_and(|a| auth::verify_secret(secret, &a.secret_hash));
        if !ok {
            return Err(ApiError::unauthorized(
                "unknown agent or wrong secret; re-enrol the agent with a valid token",
            ));
        }
        coord.touch(id, None);
        Ok(AgentAuth(id))
    }
}

pub async fn register(
    State(coord): State<Arc<Coordinator>>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    if !coord.store.token_is_valid(req.token.trim()).await? {
        return Err(ApiError::unauthorized(
            "the enrolment token is not valid; `idlefarm token` on the coordinator prints the current one",
        ));
    }
    Ok(Json(enrol_agent(&coord, &req.name, &req.renderers).await?))
}

/// Makes a new agent named `name` with its own secret (enrolment by token or by approval).
pub(super) async fn enrol_agent(
    coord: &Coordinator,
    name: &str,
    renderers: &[idlefarm_protocol::RendererInfo],
) -> Result<RegisterResponse, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request("agent name must be 1-200 characters"));
    }
    let secret = auth::new_secret();
    let hash = auth::hash_secret(&secret);
    let id = coord
        .store
        .insert_agent(name, &hash, renderers, now_secs())
        .await?;
    coord.agents.write().await.insert(
        id,
        crate::store::AgentRow {
            id,
            name: name.to_owned(),
            secret_hash: hash,
            renderers: renderers.to_vec(),
            mode: idlefarm_protocol::AgentMode::Active,
            tags: Vec::new(),
            released_at: 0,
        },
    );
    coord.touch(id, None);
    coord.agent_changed(id);
    tracing::info!(agent = id, name, "agent enrolled");
    Ok(RegisterResponse {
        agent_id: id,
        secret,
    })
}

pub async fn heartbeat(
    State(coord): State<Arc<Coordinator>>,
    AgentAuth(agent): AgentAuth,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    check_reported(req.presence)?;
    coord.touch(agent, Some(req.presence));
    // Stored before the event goes out: pages re-read the agents list when they receive it.
    coord.agent_heard(agent, req.presence).await?;
    coord.presence_seen(agent, req.presence).await?;
    let revoked = coord.renew(agent, &req.leases).await?;
    Ok(Json(HeartbeatResponse {
        revoked,
        lease_ttl_secs: coord.config.lease_ttl.as_secs(),
    }))
}

pub async fn lease(
    State(coord): State<Arc<Coordinator>>,
    AgentAuth(agent): AgentAuth,
    JsonBody(req): JsonBody<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    check_reported(req.presence)?;
    if !(1..=idlefarm_protocol::MAX_SLOTS).contains(&req.slots) {
        return Err(ApiError::bad_request(format!(
            "slots {} is not a number of chunks at once (1 to {})",
            req.slots,
            idlefarm_protocol::MAX_SLOTS
        )));
    }
    coord.touch(agent, Some(req.presence));
    coord.offer_slots(agent, req.slots);
    // Long poll: with nothing to do, wait a while for work to be queued instead of making the
    // agent ask again and again. Registered before looking, so no wake-up is missed. Queued
    // frames wake waiting agents a few at a time (see `bell`); those that find none left keep
    // waiting rather than answer at once, or thousands of idle PCs would all ask again together.
    let deadline = tokio::time::Instant::now() + LEASE_LONG_POLL;
    let mut woken = false;
    let lease = loop {
        let _counted = coord.work.count_waiting();
        let queued = coord.work.waiting();
        tokio::pin!(queued);
        queued.as_mut().enable();
        let lease = coord.lease_for(agent, req.presence, woken).await?;
        if lease.is_some() || !req.presence.may_take_work() {
            break lease;
        }
        tokio::select! {
            _ = &mut queued => woken = true,
            _ = tokio::time::sleep_until(deadline) => break None,
            _ = coord.closing.cancelled() => break None,
        }
    };
    if let Some(l) = &lease {
        tracing::info!(agent, job = l.job_id, lease = l.id, frames = ?l.frames, "leased");
    }
    Ok(Json(LeaseResponse {
        lease,
        retry_after_secs: 0,
    }))
}

/// Refuses a presence state only the coordinator may give (an agent that talks is not offline).
fn check_reported(presence: PresenceState) -> Result<(), ApiError> {
    if presence.is_reported_by_agents() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "presence `{}` is the coordinator's word for an agent it has not heard from; agents report what their PC is doing",
        presence.as_str()
    )))
}

/// Sends a job's input to an agent that holds (or just held) a lease on that job.
pub async fn blob(
    State(coord): State<Arc<Coordinator>>,
    AgentAuth(agent): AgentAuth,
    PathParams(hash): PathParams<String>,
) -> Result<Response, ApiError> {
    let path = coord
        .data
        .blob(&hash)
        .ok_or_else(|| ApiError::bad_request("a blob hash is 64 lowercase hex digits"))?;
    if !coord.may_fetch_input(agent, &hash).await {
        return Err(ApiError::forbidden(format!(
            "this agent holds no lease on a job with input {hash}; an agent may download only the inputs of jobs it renders"
        )));
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("no input with hash {hash}")))?;
    let len = file.metadata().await?.len();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(ReaderStream::new(file)))
        .map_err(ApiError::internal)
}

/// Receives a frame: the lease and the frame are checked before the body is read, the body is
/// streamed to disk under a limit from the job's frame size, and the image is checked, measured
/// and judged (see [`super::checks`]) before it is kept or held for another PC's render.
pub async fn upload_frame(
    State(coord): State<Arc<Coordinator>>,
    AgentAuth(agent): AgentAuth,
    PathParams((lease, file)): PathParams<(i64, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (frame, ext) = file
        .split_once('.')
        .and_then(|(n, e)| Some((n.parse::<i64>().ok()?, e)))
        .ok_or_else(|| ApiError::bad_request("frame path must be <number>.<png|jpg>"))?;
    let format = ImageFormat::from_extension(ext)
        .ok_or_else(|| ApiError::bad_request(format!("unsupported frame format .{ext}")))?;
    let renderer_error = renderer_error(&headers)?;
    let ctx = coord.frame_context(agent, lease, frame).await?;
    let job = ctx.job;
    if format != ctx.settings.format {
        return Err(ApiError::bad_request(format!(
            "frame {frame} is .{ext} but the job renders .{}",
            ctx.settings.format.extension()
        )));
    }
    let expected = ctx.settings.frame_size();
    let dir = coord.data.frames_dir(job);
    let thumb = coord.data.thumbnail(job, frame);
    let limit = frame_upload::body_limit(expected);
    let mut pending = frame_upload::receive(&headers, body, &dir, limit, frame).await?;
    let delivery = Delivery {
        agent,
        lease,
        frame,
        format,
        renderer_error,
    };
    // Decoding, measuring, comparing, the thumbnail and the durable writes happen before the
    // scheduler lock is taken.
    let outcome = tokio::task::spawn_blocking(move || {
        let img = frame_upload::check(&mut pending, format, expected, frame)?;
        frame_verdict::decide(&ctx, &delivery, pending, img, &dir, &thumb)
    })
    .await
    .map_err(ApiError::internal)??;
    coord.record_frame(agent, job, frame, outcome).await?;
    Ok(Json(serde_json::json!({})))
}

/// The fatal renderer line an agent reported with a frame, if any: printable text of at most
/// [`MAX_RENDERER_ERROR`] bytes.
fn renderer_error(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(RENDERER_ERROR_HEADER) else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::bad_request(format!("header {RENDERER_ERROR_HEADER} {why}"));
    let text = value.to_str().map_err(|_| bad("must be printable ASCII"))?;
    if text.len() > MAX_RENDERER_ERROR {
        return Err(bad(&format!("is longer than {MAX_RENDERER_ERROR} bytes")));
    }
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Ends a lease. A failure's message and log tail are cut to size here, where they enter: they
/// are stored, shown on every job listing and quoted in the job's error.
pub async fn end_lease(
    State(coord): State<Arc<Coordinator>>,
    AgentAuth(agent): AgentAuth,
    PathParams(lease): PathParams<i64>,
    JsonBody(end): JsonBody<LeaseEnd>,
) -> Result<Json<serde_json::Value>, ApiError> {
    tracing::info!(agent, lease, outcome = ?end.outcome, "lease ended");
    let message = end.message.map(|m| keep_start(&m, MAX_FAILURE_MESSAGE));
    let log_tail = end.log_tail.map(|t| keep_end(&t, MAX_LOG_TAIL));
    coord
        .end_lease(agent, lease, end.outcome, message, log_tail)
        .await?;
    Ok(Json(serde_json::json!({})))
}

/// Most bytes of a failure message kept (its start: the reason comes first).
pub const MAX_FAILURE_MESSAGE: usize = 1024;

/// Most bytes of a renderer's log tail kept (its end: the last lines explain the failure).
pub const MAX_LOG_TAIL: usize = 8 * 1024;

/// `text` cut to at most `max` bytes at a character boundary, keeping its start and marking
/// the cut.
fn keep_start(text: &str, max: usize) -> String {
    const CUT: &str = " […]";
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(CUT.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &text[..end])
}

/// `text` cut to at most `max` bytes at a character boundary, keeping its end and marking the
/// cut.
fn keep_end(text: &str, max: usize) -> String {
    const CUT: &str = "[…] ";
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max.saturating_sub(CUT.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{CUT}{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_on_character_boundaries_within_the_limit() {
        assert_eq!(keep_start("short", 10), "short");
        assert_eq!(keep_end("short", 10), "short");
        let long = "é".repeat(1000) + "the end";
        let start = keep_start(&long, 101);
        assert!(start.len() <= 101 && start.starts_with("éé") && start.ends_with(" […]"));
        let end = keep_end(&long, 101);
        assert!(end.len() <= 101 && end.starts_with("[…] é") && end.ends_with("the end"));
    }
}
