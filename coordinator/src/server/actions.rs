//! Thin handlers for control actions: each checks who may act, calls one coordinator operation
//! (`control.rs`) and writes the audit log. Jobs: their owner or an admin; agents: admins.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use idlefarm_protocol::{AgentMode, AgentUpdate, PriorityRequest, RetryRequest};
use serde_json::{Value, json};

use super::Coordinator;
use super::caller::Caller;
use crate::error::{ApiError, JsonBody, PathParams};
use crate::submit::frames::parse_frame_list;

type Done = Result<Json<Value>, ApiError>;

/// 403 unless the caller may act on job `id` (404 when there is no such job).
pub(crate) async fn authorize_job(
    coord: &Coordinator,
    caller: &Caller,
    id: i64,
) -> Result<(), ApiError> {
    let owner = coord.job_owner(id).await?;
    if caller.may_see(owner) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "job {id} belongs to another user"
        )))
    }
}

async fn job_action(
    coord: &Coordinator,
    caller: &Caller,
    id: i64,
    action: &str,
    detail: String,
) -> Done {
    coord
        .audit(&caller.name, action, &format!("job {id}"), &detail)
        .await?;
    Ok(Json(json!({})))
}

pub async fn cancel(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    coord.cancel_job(id).await?;
    job_action(&coord, &caller, id, "job.cancel", String::new()).await
}

pub async fn pause(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    coord.pause_job(id).await?;
    job_action(&coord, &caller, id, "job.pause", String::new()).await
}

pub async fn resume(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    coord.resume_job(id).await?;
    job_action(&coord, &caller, id, "job.resume", String::new()).await
}

pub async fn retry(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    JsonBody(req): JsonBody<RetryRequest>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    let frames = match req.frames.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(list) => Some(parse_frame_list(list).map_err(ApiError::bad_request)?),
    };
    let detail = req.frames.unwrap_or_else(|| "failed frames".into());
    coord.retry_job(id, frames).await?;
    job_action(&coord, &caller, id, "job.retry", detail).await
}

pub async fn priority(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    JsonBody(req): JsonBody<PriorityRequest>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    if !(-1000..=1000).contains(&req.priority) {
        return Err(ApiError::bad_request(
            "priority must be between -1000 and 1000",
        ));
    }
    coord.set_job_priority(id, req.priority).await?;
    job_action(
        &coord,
        &caller,
        id,
        "job.priority",
        req.priority.to_string(),
    )
    .await
}

pub async fn delete(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    authorize_job(&coord, &caller, id).await?;
    coord.delete_job(id).await?;
    job_action(&coord, &caller, id, "job.delete", String::new()).await
}

async fn agent_mode(coord: &Coordinator, caller: &Caller, id: i64, mode: AgentMode) -> Done {
    caller.require_admin()?;
    coord.set_agent_mode(id, mode).await?;
    coord
        .audit(
            &caller.name,
            match mode {
                AgentMode::Active => "agent.enable",
                AgentMode::Draining => "agent.drain",
                AgentMode::Disabled => "agent.disable",
            },
            &format!("agent {id}"),
            "",
        )
        .await?;
    Ok(Json(json!({})))
}

pub async fn drain(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    agent_mode(&coord, &caller, id, AgentMode::Draining).await
}

pub async fn disable(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    agent_mode(&coord, &caller, id, AgentMode::Disabled).await
}

pub async fn enable(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    agent_mode(&coord, &caller, id, AgentMode::Active).await
}

pub async fn release(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    caller.require_admin()?;
    coord.release_agent(id).await?;
    coord
        .audit(&caller.name, "agent.release", &format!("agent {id}"), "")
        .await?;
    Ok(Json(json!({})))
}

pub async fn update(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    JsonBody(update): JsonBody<AgentUpdate>,
) -> Done {
    caller.require_admin()?;
    let detail = serde_json::to_string(&update).unwrap_or_default();
    coord.update_agent(id, update).await?;
    coord
        .audit(
            &caller.name,
            "agent.update",
            &format!("agent {id}"),
            &detail,
        )
        .await?;
    Ok(Json(json!({})))
}

pub async fn forget(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Done {
    caller.require_admin()?;
    coord.forget_agent(id).await?;
    coord
        .audit(&caller.name, "agent.forget", &format!("agent {id}"), "")
        .await?;
    Ok(Json(json!({})))
}
