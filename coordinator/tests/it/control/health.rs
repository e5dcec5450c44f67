//! A PC whose POV-Ray always fails: blocklisted for a job after three failed chunks, then
//! quarantined after failing on three jobs, while a healthy PC finishes every job; releasing it
//! brings it back.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use idlefarm_agent::{AlwaysAvailable, Availability, ManualPresence};
use idlefarm_protocol::routes::{self, with_id};
use idlefarm_protocol::{FailureInfo, JobState, PresenceState, Renderer};
use reqwest::Method;
use serde_json::json;

use super::agents::{agent, wait_agent};
use super::{JOB_LIMIT, Scene, call, eventually, submit};
use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};

/// A `povray` that enrols fine (it answers `--version`) but fails every render.
fn broken_povray(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("povray");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'POV-Ray 3.7.0.10'; exit 0; fi\n\
         echo 'this PC has a broken POV-Ray' >&2\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pc_whose_renders_always_fail_is_blocklisted_and_quarantined_until_released() {
    let scripts = shared_tempdir();
    let povray = broken_povray(scripts.path());
    let mut farm = Farm::start(|_| {}).await;
    // The healthy PC is enrolled but in use at first, so the broken one meets the work alone.
    let person = Arc::new(ManualPresence::new(Availability::Unavailable(
        PresenceState::UserPresent,
    )));
    farm.add_agent_with("healthy", person.clone(), |_| {});
    farm.add_agent_with("broken", Arc::new(AlwaysAvailable), |c| c.povray = povray);
    for name in ["healthy", "broken"] {
        wait_agent(&farm, name, "the agent enrols with POV-Ray", |a| {
            a.renderers.iter().any(|r| r.renderer == Renderer::Povray)
        })
        .await;
    }
    let healthy = agent(&farm, "healthy").await.id;
    let broken = agent(&farm, "broken").await.id;

    // Three jobs: the broken PC fails each chunk it takes; three failures on one job blocklist
    // it for that job, failures on three jobs quarantine it.
    let mut jobs = Vec::new();
    for name in ["one", "two", "three"] {
        let scene = Scene {
            chunk: Some(2),
            ..Scene::tiny(4)
        };
        jobs.push(submit(&farm.client, name, &scene).await.id);
    }
    let sick = wait_agent(&farm, "broken", "the broken PC is quarantined", |a| {
        a.quarantined_until.is_some()
    })
    .await;
    assert_eq!(sick.blocklisted_jobs, jobs[..2].to_vec(), "{sick:?}");
    for (i, &job) in jobs.iter().enumerate() {
        let j = farm.client.job(job).await.unwrap();
        assert_eq!(j.state, JobState::Rendering, "job {job} goes on: {j:?}");
        assert_eq!(j.frames.failed, 0, "no frame failed for good: {j:?}");
        let frames = farm.client.frames(job).await.unwrap();
        assert!(
            frames
                .iter()
                .all(|f| f.failed_on.iter().all(|&a| a == broken)),
            "{frames:?}"
        );
        let answer = call(
            &farm.client,
            Method::GET,
            &with_id(routes::JOB_FAILURES, job),
            None,
        )
        .await;
        let failed: Vec<FailureInfo> = serde_json::from_str(&answer.body).unwrap();
        let want = if i < 2 { 3 } else { 1 };
        assert_eq!(failed.len(), want, "failed leases of job {job}: {failed:?}");
        for f in &failed {
            assert_eq!(f.agent_id, broken);
            let said = format!(
                "{} {}",
                f.message,
                f.log_tail.as_deref().unwrap_or_default()
            );
            assert!(
                said.contains("broken POV-Ray"),
                "the failure says what the renderer said: {f:?}"
            );
        }
    }
    let why = wait_agent(&farm, "broken", "the broken PC says why", |a| {
        a.no_work_reason
            .as_deref()
            .is_some_and(|r| r.contains("quarantined"))
    })
    .await;
    eprintln!("broken PC: {:?}", why.no_work_reason);

    // The healthy PC comes free and finishes every job; none ever fails.
    person.set(Availability::Available);
    for &job in &jobs {
        let done = eventually("the job completes", JOB_LIMIT, || async {
            let j = farm.client.job(job).await.unwrap();
            assert_ne!(j.state, JobState::Failed, "job {job} failed: {j:?}");
            if j.state.is_final() {
                Ok(j)
            } else {
                Err(format!("{:?}", j.frames))
            }
        })
        .await;
        assert_complete(&farm, &done).await;
        let frames = farm.client.frames(job).await.unwrap();
        assert!(
            frames.iter().all(|f| f.agent_id == Some(healthy)),
            "{frames:?}"
        );
    }
    assert_eq!(agent(&farm, "broken").await.frames_done, 0);
    assert_eq!(agent(&farm, "healthy").await.frames_done, 12);

    // Released, the broken PC is trusted again: it takes (and fails) the next job's chunks.
    farm.client
        .post_json(&with_id(routes::AGENT_RELEASE, broken), &json!({}))
        .await
        .unwrap();
    let released = agent(&farm, "broken").await;
    assert!(released.blocklisted_jobs.is_empty(), "{released:?}");
    assert_eq!(released.quarantined_until, None, "{released:?}");
    person.set(Availability::Unavailable(PresenceState::UserPresent));
    let next = submit(&farm.client, "four", &Scene::tiny(2)).await;
    let failed_before = released.failures;
    wait_agent(&farm, "broken", "the released PC takes work again", |a| {
        a.failures > failed_before
    })
    .await;
    person.set(Availability::Available);
    let next = wait_for_job(&farm.client, next.id, JOB_LIMIT).await;
    assert_complete(&farm, &next).await;
    farm.stop().await;
}
