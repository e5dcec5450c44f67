//! Malformed requests to every control endpoint: each gets a 4xx whose message says what was
//! wrong, and none changes a job, an agent or the audit log.

use idlefarm_protocol::routes::{self, with_id};
use idlefarm_protocol::{AgentMode, JobState};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Scene, call, call_raw, enrol, post_form, submit};
use crate::common::Farm;

/// No job or agent has this id.
const UNKNOWN: i64 = 999_999;

/// Everything the bad requests must leave alone.
async fn state_of(farm: &Farm, job: i64) -> Value {
    let j = farm.client.job(job).await.unwrap();
    let frames = farm.client.frames(job).await.unwrap();
    let agents = farm.client.agents().await.unwrap();
    json!({
        "job": [j.state.as_str(), j.priority, j.frames.queued, j.frames.done, j.required_tags],
        "frames": frames.iter().map(|f| (f.frame, f.state.clone(), f.attempts)).collect::<Vec<_>>(),
        "agents": agents.iter().map(|a| (a.id, a.name.clone(), a.tags.clone(), a.mode.as_str())).collect::<Vec<_>>(),
        "jobs": farm.client.jobs().await.unwrap().len(),
        "audit": farm.client.audit(1000).await.unwrap().len(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_control_requests_get_a_clear_4xx_and_change_nothing() {
    let farm = Farm::start(|_| {}).await;
    let c = &farm.client;
    let pc = enrol(&farm, "pc").await.agent_id;
    // Nobody renders here: the job's three frames stay queued.
    let job = submit(c, "steady", &Scene::tiny(3)).await.id;
    let before = state_of(&farm, job).await;

    // Unknown job.
    let post = |t: &str, body: Value| (Method::POST, with_id(t, UNKNOWN), Some(body));
    let unknown_job = [
        (Method::GET, routes::job(UNKNOWN), None),
        (Method::GET, routes::job_frames(UNKNOWN), None),
        (Method::GET, with_id(routes::JOB_FAILURES, UNKNOWN), None),
        (Method::GET, routes::job_frame_thumbnail(UNKNOWN, 1), None),
        (Method::GET, routes::job_video(UNKNOWN), None),
        post(routes::JOB_CANCEL, json!({})),
        post(routes::JOB_PAUSE, json!({})),
        post(routes::JOB_RESUME, json!({})),
        post(routes::JOB_RETRY, json!({ "frames": "1" })),
        post(routes::JOB_PRIORITY, json!({ "priority": 1 })),
        (Method::DELETE, routes::job(UNKNOWN), None),
    ];
    for (method, path, body) in unknown_job {
        let what = format!("{method} {path}");
        call(c, method, &path, body)
            .await
            .assert_error(404, &format!("no job {UNKNOWN}"), &what);
    }
    call(c, Method::POST, "/jobs/seven/cancel", Some(json!({})))
        .await
        .assert_error(400, "malformed path", "a job id that is not a number");

    // Bad priorities.
    let priority = with_id(routes::JOB_PRIORITY, job);
    let bad_priorities = [
        (json!({ "priority": "high" }), 422, "malformed request body"),
        (json!({ "priority": 1.5 }), 422, "malformed request body"),
        (json!({}), 422, "priority"),
        (json!({ "priority": 3, "colour": "red" }), 422, "colour"),
        (json!({ "priority": 5000 }), 400, "between -1000 and 1000"),
        (json!({ "priority": -1001 }), 400, "between -1000 and 1000"),
    ];
    for (body, status, needle) in bad_priorities {
        let what = format!("priority {body}");
        call(c, Method::POST, &priority, Some(body))
            .await
            .assert_error(status, needle, &what);
    }
    call_raw(c, Method::POST, &priority, "application/json", "high")
        .await
        .assert_error(400, "malformed request body", "a body that is not JSON");
    call_raw(c, Method::POST, &priority, "text/plain", "5")
        .await
        .assert_error(415, "malformed request body", "a body that is not JSON");

    // Bad frame lists, and frames the job does not have.
    let retry = with_id(routes::JOB_RETRY, job);
    let bad_retries = [
        (json!({ "frames": "1-" }), 400, "1-"),
        (json!({ "frames": "two" }), 400, "two"),
        (json!({ "frames": "3-1" }), 400, "ends before it starts"),
        (json!({ "frames": "1,,2" }), 400, "empty item"),
        (json!({ "frames": 2 }), 422, "malformed request body"),
        (json!({ "frames": "7" }), 422, "frame 7 is not part of job"),
        (
            json!({ "frames": "2,9-10" }),
            422,
            "frame 9 is not part of job",
        ),
        (json!({}), 409, "no failed frames"),
    ];
    for (body, status, needle) in bad_retries {
        let what = format!("retry {body}");
        call(c, Method::POST, &retry, Some(body))
            .await
            .assert_error(status, needle, &what);
    }
    call(c, Method::POST, &with_id(routes::JOB_RESUME, job), None)
        .await
        .assert_error(409, "not paused", "resuming a job that is not paused");
    let thumbnail = |frame: &str| format!("{}/{job}/frames/{frame}/thumbnail", routes::JOBS);
    call(c, Method::GET, &thumbnail("first"), None)
        .await
        .assert_error(
            400,
            "not a frame number",
            "thumbnail of a frame that is no number",
        );
    call(c, Method::GET, &thumbnail("2"), None)
        .await
        .assert_error(
            404,
            "not available",
            "thumbnail of a frame not rendered yet",
        );

    // Bad submission fields: no job is made.
    let bad_forms = [
        (Some("room 2"), None, "not a valid tag"),
        (Some("gpu,-cpu"), None, "not a valid tag"),
        (None, Some("high"), "priority `high`"),
        (None, Some("5000"), "priority `5000`"),
    ];
    for (tags, priority, needle) in bad_forms {
        let scene = Scene {
            tags,
            priority,
            ..Scene::tiny(2)
        };
        let what = format!("submission with tags {tags:?}, priority {priority:?}");
        post_form(c, scene.form("bad"))
            .await
            .assert_error(400, needle, &what);
    }

    // Unknown agent, and bad agent updates.
    let agent_post = |t: &str| (Method::POST, with_id(t, UNKNOWN), None);
    let unknown_agent = [
        agent_post(routes::AGENT_DRAIN),
        agent_post(routes::AGENT_DISABLE),
        agent_post(routes::AGENT_ENABLE),
        agent_post(routes::AGENT_RELEASE),
        (Method::DELETE, with_id(routes::AGENT, UNKNOWN), None),
        (
            Method::PATCH,
            with_id(routes::AGENT, UNKNOWN),
            Some(json!({ "name": "x" })),
        ),
        (Method::GET, with_id(routes::AGENT_HISTORY, UNKNOWN), None),
    ];
    for (method, path, body) in unknown_agent {
        let what = format!("{method} {path}");
        call(c, method, &path, body)
            .await
            .assert_error(404, &format!("no agent {UNKNOWN}"), &what);
    }
    let agent = with_id(routes::AGENT, pc);
    let long_tag = "t".repeat(33);
    let bad_updates = [
        (json!({ "tags": ["room 2"] }), 400, "not a valid tag"),
        (json!({ "tags": ["gpu", "-x"] }), 400, "not a valid tag"),
        (json!({ "tags": [long_tag] }), 400, "not a valid tag"),
        (json!({ "tags": "gpu" }), 422, "malformed request body"),
        (json!({ "name": "  " }), 400, "1-200 characters"),
        (json!({ "colour": "red" }), 422, "colour"),
    ];
    for (body, status, needle) in bad_updates {
        let what = format!("agent update {body}");
        call(c, Method::PATCH, &agent, Some(body))
            .await
            .assert_error(status, needle, &what);
    }
    let history = format!("{}?since_ms=yesterday", with_id(routes::AGENT_HISTORY, pc));
    call(c, Method::GET, &history, None).await.assert_error(
        400,
        "since_ms",
        "history with a bad time",
    );

    assert_eq!(
        state_of(&farm, job).await,
        before,
        "bad requests changed nothing"
    );

    // The same endpoints with good input do change things...
    c.post_json(&priority, &json!({ "priority": -3 }))
        .await
        .unwrap();
    assert_eq!(c.job(job).await.unwrap().priority, -3);
    c.patch_json(
        &agent,
        &json!({ "name": "lab-7", "tags": ["Room-2", "gpu"] }),
    )
    .await
    .unwrap();
    let agents = c.agents().await.unwrap();
    let updated = agents.iter().find(|a| a.id == pc).unwrap();
    assert_eq!(updated.name, "lab-7");
    assert_eq!(updated.tags, vec!["room-2".to_owned(), "gpu".to_owned()]);
    assert_eq!(updated.mode, AgentMode::Active);

    // ...and an action that is done already is refused.
    let cancel = with_id(routes::JOB_CANCEL, job);
    c.post_json(&cancel, &json!({})).await.unwrap();
    call(c, Method::POST, &cancel, None).await.assert_error(
        409,
        "cancelled already",
        "cancelling twice",
    );
    call(c, Method::POST, &with_id(routes::JOB_PAUSE, job), None)
        .await
        .assert_error(409, "cancelled", "pausing a cancelled job");
    call(c, Method::POST, &retry, Some(json!({ "frames": "1" })))
        .await
        .assert_error(409, "cancelled", "retrying a cancelled job");
    let j = c.job(job).await.unwrap();
    assert_eq!((j.state, j.frames.queued), (JobState::Cancelled, 3));
    farm.stop().await;
}
