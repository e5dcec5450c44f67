//! What the coordinator tells the live event stream, and the handlers that read it: the SSE
//! stream itself, an agent's presence history and frame thumbnails. State changes call
//! `job_changed`, `job_deleted`, `frame_changed`, `agent_changed` and `presence_seen` after
//! releasing the scheduler lock; the background task calls `mark_silent_offline`, which turns
//! an agent's silence into an `offline` entry of its history.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use idlefarm_protocol::events::{EventKind, PresenceChange};
use idlefarm_protocol::{PresenceState, frame_file_name};
use serde::Deserialize;

use super::Coordinator;
use super::actions::authorize_job;
use super::caller::Caller;
use super::state::now_ms;
use crate::error::{ApiError, PathParams};
use crate::schedule::FrameState;

/// How long presence history is kept.
pub const HISTORY_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

impl Coordinator {
    /// Publishes a job's state and counts (or that it is gone).
    pub(crate) async fn job_changed(&self, job: i64) {
        let kind = {
            let sched = self.sched.lock().await;
            match sched.jobs.get(&job) {
                Some(e) => job_event(e),
                None => EventKind::JobDeleted { job, owner: None },
            }
        };
        self.events.publish(kind);
    }

    /// Publishes that a job owned by `owner` was deleted.
    pub(crate) fn job_deleted(&self, job: i64, owner: Option<i64>) {
        self.events.publish(EventKind::JobDeleted { job, owner });
    }

    /// Publishes a frame's state.
    pub(crate) async fn frame_changed(&self, job: i64, frame: i64) {
        let kind = {
            let sched = self.sched.lock().await;
            let Some(e) = sched.jobs.get(&job) else {
                return;
            };
            let Some(slot) = e.board.index_of(frame).map(|i| &e.board.frames[i]) else {
                return;
            };
            let agent = match slot.state {
                FrameState::Done(a) => Some(a),
                FrameState::Leased(l) => e.board.leases.get(&l).map(|s| s.agent),
                _ => None,
            };
            EventKind::FrameChanged {
                job,
                owner: e.row.owner_id,
                frame,
                state: slot.state.as_str().to_owned(),
                agent,
            }
        };
        self.events.publish(kind);
    }

    /// Publishes that an agent's settings or health changed.
    pub(crate) fn agent_changed(&self, agent: i64) {
        self.events.publish(EventKind::AgentChanged { agent });
    }

    /// Records an agent's presence state when it changed (history kept 30 days) and publishes it.
    pub(crate) async fn presence_seen(
        &self,
        agent: i64,
        state: PresenceState,
    ) -> Result<(), ApiError> {
        let changed = {
            let mut last = self.last_presence.lock().expect("not poisoned");
            last.insert(agent, state) != Some(state)
        };
        if !changed {
            return Ok(());
        }
        // After a restart the first report may repeat what the history already ends with.
        if self.store.last_presence(agent).await?.map(|c| c.state) != Some(state) {
            self.store.record_presence(agent, state, now_ms()).await?;
        }
        self.events.publish(EventKind::Presence { agent, state });
        Ok(())
    }

    /// Marks agents not heard from for longer than a lease lives as offline: in their history,
    /// in the agents list and with a `presence` event. Their next heartbeat records what they
    /// report again. Agents not heard from since this coordinator started are judged by when
    /// the database last saw them.
    pub(crate) async fn mark_silent_offline(&self) -> Result<(), ApiError> {
        let limit = self.config.lease_ttl;
        let ids: Vec<i64> = self.agents.read().await.keys().copied().collect();
        let mut silent = Vec::new();
        let mut unheard = Vec::new();
        {
            let live = self.liveness.lock().expect("not poisoned");
            let last = self.last_presence.lock().expect("not poisoned");
            for id in ids {
                if last.get(&id) == Some(&PresenceState::Offline) {
                    continue;
                }
                match live.get(&id) {
                    Some(l) if l.at.elapsed() > limit => silent.push(id),
                    Some(_) => {}
                    None => unheard.push(id),
                }
            }
        }
        let now = now_ms() / 1000;
        for id in unheard {
            let seen = self.store.agent_last_seen(id).await?;
            if seen.is_none_or(|t| now - t > limit.as_secs() as i64) {
                silent.push(id);
            }
        }
        for id in silent {
            // A heartbeat may have come in meanwhile: then the agent is not offline.
            let heard = self
                .liveness
                .lock()
                .expect("not poisoned")
                .get(&id)
                .is_some_and(|l| l.at.elapsed() <= limit);
            if heard {
                continue;
            }
            tracing::info!(agent = id, "agent not heard from for {limit:?}: offline");
            self.store
                .set_agent_presence(id, PresenceState::Offline)
                .await?;
            self.presence_seen(id, PresenceState::Offline).await?;
        }
        Ok(())
    }

    /// Drops presence history older than [`HISTORY_KEPT`].
    pub(crate) async fn prune_history(&self) -> Result<u64, ApiError> {
        let cutoff = now_ms() - HISTORY_KEPT.as_millis() as i64;
        Ok(self.store.prune_presence(cutoff).await?)
    }
}

/// `GET /api/v1/events`: job, frame, agent and presence changes as Server-Sent Events; a
/// submitter sees only their own jobs' events.
pub async fn events(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    let last = super::events::last_event_id(&headers);
    let visible = move |e: &idlefarm_protocol::events::Event| match e.kind.owner() {
        Some(owner) => caller.may_see(owner),
        None => true,
    };
    let keepalive = coord.config.events_keepalive;
    super::events::sse(
        &coord.events,
        last,
        visible,
        keepalive,
        coord.closing.clone(),
    )
    .into_response()
}

/// Query of the history route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Unix millis; default: 24 hours ago.
    since_ms: Option<i64>,
}

/// `GET /api/v1/agents/{id}/history`: an agent's presence changes since `since_ms`, starting
/// with the state it was in at that moment.
pub async fn history(
    State(coord): State<Arc<Coordinator>>,
    _caller: Caller,
    PathParams(agent): PathParams<i64>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<PresenceChange>>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "malformed query: {}; use ?since_ms=<unix millis>",
            e.body_text()
        ))
    })?;
    let since = q.since_ms.unwrap_or_else(|| now_ms() - 24 * 3600 * 1000);
    if !coord.agents.read().await.contains_key(&agent) {
        return Err(ApiError::not_found(format!("there is no agent {agent}")));
    }
    Ok(Json(coord.store.presence_history(agent, since).await?))
}

/// `GET /api/v1/jobs/{id}/frames/{n}/thumbnail`: the small JPEG made when the frame was stored.
pub async fn thumbnail(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    headers: HeaderMap,
    PathParams((id, frame)): PathParams<(i64, String)>,
) -> Result<Response, ApiError> {
    let frame: i64 = frame
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{frame}` is not a frame number")))?;
    authorize_job(&coord, &caller, id).await?;
    let path = coord.data.thumbnail(id, frame);
    let name = frame_file_name(frame, idlefarm_protocol::ImageFormat::Jpeg);
    super::jobs::send_file(path, "image/jpeg", &name, &headers).await
}

/// The event that tells pages a job's state and counts, taken from its entry (under the
/// scheduler lock; publish it after letting go).
pub(crate) fn job_event(entry: &super::state::JobEntry) -> EventKind {
    EventKind::JobChanged {
        job: entry.row.id,
        owner: entry.row.owner_id,
        state: entry.row.state,
        frames: entry.counts(),
    }
}
