//! A lab PC's disk budget: an agent whose budget cannot hold a job's input declines its lease,
//! which never counts as a failure, shows why in `GET /api/v1/agents`, and leaves the frames
//! to a PC that can hold them.

use std::sync::Arc;

use idlefarm_agent::AlwaysAvailable;
use idlefarm_agent::budget::{DiskBudget, MinFree};
use idlefarm_protocol::{JobState, submit_fields};
use reqwest::multipart::{Form, Part};

use super::agents::wait_agent;
use super::{JOB_LIMIT, post_form};
use crate::common::{Farm, assert_complete, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

/// A budget of `max_cache` bytes that ignores how full the test machine's disk is.
fn budget(max_cache: u64) -> impl FnOnce(&mut idlefarm_agent::AgentConfig) {
    move |config| {
        config.disk_budget = DiskBudget {
            max_cache,
            min_free: MinFree::Bytes(0),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_whose_input_breaks_the_disk_budget_is_declined_not_failed() {
    let mut farm = Farm::start(|_| {}).await;
    let small = farm.add_agent_with("small-disk", Arc::new(AlwaysAvailable), budget(1 << 20));

    // A 2 MiB scene file (a long comment) cannot fit a 1 MiB cache.
    let pov = format!("// {}\n{}", "padding ".repeat(256 << 10), pov_scene(None));
    let part =
        |file: &str, bytes: String| Part::bytes(bytes.into_bytes()).file_name(file.to_owned());
    let form = Form::new()
        .part(submit_fields::FILE, part("big.pov", pov))
        .part(submit_fields::INI, part("big.ini", pov_ini(1, 3, 48, 36)))
        .text(submit_fields::CHUNK, "1");
    let answer = post_form(&farm.client, form).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let job: idlefarm_protocol::SubmitResponse = serde_json::from_str(&answer.body).unwrap();
    let job = job.job;

    let seen = wait_agent(&farm, "small-disk", "the decline is shown", |a| {
        a.declined.is_some()
    })
    .await;
    let why = seen.declined.clone().unwrap_or_default();
    assert!(
        why.starts_with(&format!("declined job {}: its input needs 2.0 MiB", job.id))
            && why.contains("cache limit 1.0 MiB"),
        "{why}"
    );
    assert_eq!((seen.failures, seen.frames_done), (0, 0), "{seen:?}");
    let info = farm.client.job(job.id).await.unwrap();
    assert_eq!(info.state, JobState::Rendering);
    assert_eq!((info.frames.failed, info.frames.done), (0, 0));
    let cache = small.join("cache");
    let left: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert!(left.is_empty(), "nothing stays in the cache: {left:?}");
    let leases: Vec<_> = std::fs::read_dir(small.join("leases"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leases.is_empty(), "no lease folder stays: {leases:?}");

    // A PC with room takes the frames the small one gave back.
    farm.add_agent_with("big-disk", Arc::new(AlwaysAvailable), budget(1 << 30));
    let done = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &done).await;
    for agent in farm.client.agents().await.unwrap() {
        assert_eq!(agent.failures, 0, "{agent:?}");
    }
    farm.stop().await;
}
