//! Enrolment by approval: a PC without an enrolment token (typically one that found the
//! coordinator on the LAN) asks to join with a key it made up; the request waits on the
//! dashboard until an admin approves or turns it down; the PC then claims its credentials with
//! the same key. Only the key's holder can collect them, and only once.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idlefarm_protocol::{
    EnrolmentClaim, EnrolmentRequest, EnrolmentRequestInfo, EnrolmentRequested,
};
use serde_json::json;

use super::agents::enrol_agent;
use super::state::now_secs;
use super::{Caller, Coordinator};
use crate::auth;
use crate::error::{ApiError, JsonBody, PathParams};

/// At most this many requests wait at once (a stranger on the LAN cannot fill the page).
pub const MAX_WAITING: usize = 50;

/// A request not decided within this long is forgotten; the PC asks again.
pub const REQUEST_TTL_SECS: i64 = 24 * 3600;

/// Lengths a request's key may have.
const KEY_LEN: std::ops::RangeInclusive<usize> = 16..=200;

/// `POST /agents/requests`: a PC asks to join (no credentials needed).
pub async fn create(
    State(coord): State<Arc<Coordinator>>,
    JsonBody(req): JsonBody<EnrolmentRequest>,
) -> Result<Response, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request("agent name must be 1-200 characters").on_field("name"));
    }
    if !KEY_LEN.contains(&req.key.len()) || !req.key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "key must be 16-200 printable characters without spaces",
        )
        .on_field("key"));
    }
    if req.renderers.len() > 8 {
        return Err(ApiError::bad_request("at most 8 renderers").on_field("renderers"));
    }
    let now = now_secs();
    let open = coord.store.open_requests(now - REQUEST_TTL_SECS).await?;
    if open.len() >= MAX_WAITING {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{MAX_WAITING} enrolment requests are already waiting for an admin; try again later"
            ),
        ));
    }
    let id = coord
        .store
        .insert_request(name, &req.renderers, &auth::hash_secret(&req.key), now)
        .await?;
    tracing::info!(request = id, name, "a PC asks to join the farm");
    // Pages showing the farm refresh on any agent change.
    coord.agent_changed(0);
    Ok((StatusCode::CREATED, Json(EnrolmentRequested { id })).into_response())
}

/// `POST /agents/requests/{id}/claim`: the requesting PC asks whether it was let in; once
/// approved it gets its id and secret (once).
pub async fn claim(
    State(coord): State<Arc<Coordinator>>,
    PathParams(id): PathParams<i64>,
    JsonBody(claim): JsonBody<EnrolmentClaim>,
) -> Result<Response, ApiError> {
    let gone = || {
        ApiError::not_found(format!(
            "no enrolment request {id} (it may have expired): ask again"
        ))
    };
    let row = coord.store.request(id).await?.ok_or_else(gone)?;
    if !auth::verify_secret(&claim.key, &row.key_hash) {
        return Err(ApiError::unauthorized(format!(
            "this is not the key enrolment request {id} was made with"
        )));
    }
    let expired = row.created_at < now_secs() - REQUEST_TTL_SECS;
    match row.state.as_str() {
        "waiting" if expired => Err(gone()),
        "waiting" => {
            Ok((StatusCode::ACCEPTED, Json(json!({ "state": "waiting" }))).into_response())
        }
        "rejected" => Err(ApiError::forbidden(
            "an admin turned this PC's enrolment request down",
        )),
        "approved" => {
            let registered = enrol_agent(&coord, &row.name, &row.renderers).await?;
            let claimed = coord
                .store
                .decide_request(id, "approved", "claimed", None, Some(registered.agent_id))
                .await?;
            if !claimed {
                return Err(ApiError::conflict(format!(
                    "enrolment request {id} was claimed already"
                )));
            }
            coord.agent_changed(0);
            Ok(Json(registered).into_response())
        }
        _ => Err(ApiError::conflict(format!(
            "enrolment request {id} was claimed already"
        ))),
    }
}

/// `GET /agents/requests` (admins): the requests waiting for a decision or a claim.
pub async fn list(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<Vec<EnrolmentRequestInfo>>, ApiError> {
    caller.require_admin()?;
    let since = now_secs() - REQUEST_TTL_SECS;
    Ok(Json(coord.store.open_requests(since).await?))
}

/// `POST /agents/requests/{id}/approve` (admins).
pub async fn approve(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&coord, &caller, id, &["waiting"], "approved").await
}

/// `DELETE /agents/requests/{id}` (admins): turn it down.
pub async fn reject(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&coord, &caller, id, &["waiting", "approved"], "rejected").await
}

async fn decide(
    coord: &Coordinator,
    caller: &Caller,
    id: i64,
    from: &[&str],
    to: &str,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin()?;
    let row = (coord.store.request(id).await?)
        .filter(|r| r.created_at >= now_secs() - REQUEST_TTL_SECS || r.state != "waiting")
        .ok_or_else(|| ApiError::not_found(format!("no enrolment request {id}")))?;
    let mut done = false;
    for state in from {
        done = done
            || coord
                .store
                .decide_request(id, state, to, Some(caller.user_id), None)
                .await?;
    }
    if !done {
        return Err(ApiError::conflict(format!(
            "enrolment request {id} is {} already",
            row.state
        )));
    }
    let action = if to == "approved" {
        "agent.approve"
    } else {
        "agent.reject"
    };
    coord
        .audit(&caller.name, action, &format!("request {id}"), &row.name)
        .await?;
    tracing::info!(
        request = id,
        name = row.name,
        admin = caller.name,
        "enrolment request {to}"
    );
    coord.agent_changed(0);
    Ok(Json(json!({})))
}
