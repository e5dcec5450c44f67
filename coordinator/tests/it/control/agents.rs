//! Steering agents: draining and disabling one and enabling it again, tags that decide which
//! PC takes a job, and forgetting a PC.

use std::path::Path;
use std::time::{Duration, Instant};

use idlefarm_protocol::routes::{self, with_id};
use idlefarm_protocol::{AgentInfo, AgentMode, HeartbeatRequest, JobInfo, PresenceState};
use serde_json::json;

use super::{
    HEARTBEAT, JOB_LIMIT, SOON, Scene, add_agent, assert_no_failures, enrol, eventually,
    frames_delivered, renderers, submit, throughout, wait_rendering,
};
use crate::common::{Farm, assert_complete, wait_for_job};

/// The agent called `name`, as the coordinator lists it.
pub async fn agent(farm: &Farm, name: &str) -> AgentInfo {
    let agents = farm.client.agents().await.unwrap();
    agents
        .into_iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("agent {name} is listed"))
}

/// Waits until the agent called `name` satisfies `accept`; returns what was seen then.
pub async fn wait_agent(
    farm: &Farm,
    name: &str,
    what: &str,
    accept: impl Fn(&AgentInfo) -> bool,
) -> AgentInfo {
    eventually(what, SOON, || async {
        let agents = farm.client.agents().await.unwrap();
        match agents.into_iter().find(|a| a.name == name) {
            Some(a) if accept(&a) => Ok(a),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_agent_finishes_its_chunk_and_takes_no_more_until_enabled() {
    let mut farm = Farm::start(|_| {}).await;
    let work = add_agent(&mut farm, "a");
    let scene = Scene {
        frames: 24,
        width: 160,
        height: 120,
        chunk: Some(6),
        ..Scene::tiny(24)
    };
    let job = submit(&farm.client, "drained", &scene).await;
    wait_rendering(&farm, job.id, &work).await;
    let id = agent(&farm, "a").await.id;

    farm.client
        .post_json(&with_id(routes::AGENT_DRAIN, id), &json!({}))
        .await
        .unwrap();
    let at_drain = farm.client.job(job.id).await.unwrap();
    assert_eq!(agent(&farm, "a").await.mode, AgentMode::Draining);

    // The chunk in hand is finished (not handed back), then nothing more is taken.
    let drained = eventually("the chunk in hand is finished", SOON, || async {
        let j = farm.client.job(job.id).await.unwrap();
        let procs = renderers(&work);
        if j.frames.rendering == 0 && procs.is_empty() {
            Ok(j)
        } else {
            Err(format!("{:?}, renderers {procs:?}", j.frames))
        }
    })
    .await;
    assert_eq!(
        drained.frames.done,
        at_drain.frames.done + at_drain.frames.rendering,
        "the chunk in hand was completed: at the drain {:?}, after {:?}",
        at_drain.frames,
        drained.frames
    );
    assert!(drained.frames.queued > 0, "work is left: {drained:?}");
    let why = wait_agent(&farm, "a", "the agent says it is draining", |a| {
        a.no_work_reason
            .as_deref()
            .is_some_and(|r| r.contains("draining"))
    })
    .await;
    eprintln!("drained agent: {:?}", why.no_work_reason);
    throughout(HEARTBEAT * 3, async || {
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.frames, drained.frames, "a drained agent took work");
        assert!(renderers(&work).is_empty(), "a drained agent renders");
    })
    .await;

    farm.client
        .post_json(&with_id(routes::AGENT_ENABLE, id), &json!({}))
        .await
        .unwrap();
    assert_eq!(agent(&farm, "a").await.mode, AgentMode::Active);
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_no_failures(&farm, job.id).await;
    assert_eq!(frames_delivered(&farm).await, 24);
    farm.stop().await;
}

/// Waits until the agent in `work_dir` renders a chunk of `job` (without waiting for a frame).
async fn wait_leased(farm: &Farm, job: i64, work_dir: &Path) -> JobInfo {
    eventually("the agent renders a chunk", JOB_LIMIT, || async {
        let j = farm.client.job(job).await.unwrap();
        assert!(!j.state.is_final(), "job {job} ended too soon: {j:?}");
        let procs = renderers(work_dir);
        if j.frames.rendering > 0 && !procs.is_empty() {
            Ok(j)
        } else {
            Err(format!("{:?}, renderers {procs:?}", j.frames))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_agent_drops_its_chunk_at_once_and_works_again_when_enabled() {
    let mut farm = Farm::start(|_| {}).await;
    let work = add_agent(&mut farm, "a");
    let scene = Scene {
        frames: 12,
        width: 160,
        height: 120,
        chunk: Some(12),
        ..Scene::tiny(12)
    };
    let job = submit(&farm.client, "disabled", &scene).await;
    wait_leased(&farm, job.id, &work).await;
    let id = agent(&farm, "a").await.id;

    farm.client
        .post_json(&with_id(routes::AGENT_DISABLE, id), &json!({}))
        .await
        .unwrap();
    let disabled = Instant::now();
    let at_disable = farm.client.job(job.id).await.unwrap();
    assert_eq!(
        at_disable.frames.rendering, 0,
        "its lease is revoked at once"
    );
    assert!(at_disable.frames.queued > 0, "{at_disable:?}");
    let gone = eventually("the renderer ends", SOON, || async {
        let procs = renderers(&work);
        if procs.is_empty() {
            Ok(disabled.elapsed())
        } else {
            Err(format!("renderers {procs:?}"))
        }
    })
    .await;
    assert!(
        gone <= HEARTBEAT + Duration::from_secs(1),
        "the renderer outlived the disable by {gone:?}"
    );
    let why = wait_agent(&farm, "a", "the agent says it is disabled", |a| {
        a.mode == AgentMode::Disabled
            && a.no_work_reason
                .as_deref()
                .is_some_and(|r| r.contains("disabled"))
    })
    .await;
    eprintln!("disabled agent: {:?}", why.no_work_reason);
    let idle = farm.client.job(job.id).await.unwrap();
    throughout(HEARTBEAT * 3, async || {
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.frames, idle.frames, "a disabled agent took work");
    })
    .await;

    farm.client
        .post_json(&with_id(routes::AGENT_ENABLE, id), &json!({}))
        .await
        .unwrap();
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_no_failures(&farm, job.id).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_requires_a_tag_goes_only_to_agents_with_it() {
    let mut farm = Farm::start(|_| {}).await;
    add_agent(&mut farm, "a");
    add_agent(&mut farm, "b");
    let scene = Scene {
        tags: Some("Room-2"),
        ..Scene::tiny(4)
    };
    let job = submit(&farm.client, "tagged", &scene).await;
    assert_eq!(job.required_tags, vec!["room-2".to_owned()]);
    for name in ["a", "b"] {
        wait_agent(&farm, name, "the agent says which tag it lacks", |a| {
            a.no_work_reason
                .as_deref()
                .is_some_and(|r| r.contains("tag room-2"))
        })
        .await;
    }
    assert_eq!(farm.client.job(job.id).await.unwrap().frames.queued, 4);

    let a = agent(&farm, "a").await.id;
    farm.client
        .patch_json(&with_id(routes::AGENT, a), &json!({ "tags": ["room-2"] }))
        .await
        .unwrap();
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    let frames = farm.client.frames(job.id).await.unwrap();
    assert!(
        frames.iter().all(|f| f.agent_id == Some(a)),
        "only the tagged agent rendered: {frames:?}"
    );
    assert_eq!(agent(&farm, "b").await.frames_done, 0);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_agent_leaves_the_list_and_its_secret_stops_working() {
    let farm = Farm::start(|_| {}).await;
    let pc = enrol(&farm, "pc").await;
    let heartbeat = || async {
        let beat = HeartbeatRequest {
            presence: PresenceState::Idle,
            leases: vec![],
        };
        reqwest::Client::new()
            .post(farm.client.url(routes::AGENT_HEARTBEAT))
            .bearer_auth(format!("{}.{}", pc.agent_id, pc.secret))
            .json(&beat)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(heartbeat().await, 200, "the agent's secret works");
    farm.client
        .delete(&with_id(routes::AGENT, pc.agent_id))
        .await
        .unwrap();
    assert_eq!(
        heartbeat().await,
        401,
        "a forgotten agent's secret is refused"
    );
    assert!(farm.client.agents().await.unwrap().is_empty());
    let audit = farm.client.audit(10).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "agent.forget"),
        "{audit:?}"
    );
    farm.stop().await;
}
