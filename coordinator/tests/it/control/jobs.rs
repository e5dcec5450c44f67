//! Steering jobs while real agents render them: cancel, pause and resume, priority, and
//! rendering chosen frames again.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use idlefarm_protocol::JobState;
use idlefarm_protocol::routes::{self, with_id};
use serde_json::json;

use super::{
    HEARTBEAT, JOB_LIMIT, SOON, Scene, add_agent, assert_no_failures, eventually, frames_delivered,
    lease_dirs, renderers, submit, throughout, wait_rendering,
};
use crate::common::{Farm, assert_complete, wait_for_job};

/// File names in a job's frames folder.
fn stored_frames(farm: &Farm, job: i64) -> Vec<String> {
    let dir = farm
        .data()
        .join("jobs")
        .join(job.to_string())
        .join("frames");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// Waits until the agent in `work_dir` runs no renderer and keeps no lease folder.
async fn wait_idle(work_dir: &Path, what: &str) {
    eventually(what, SOON, || async {
        let (procs, leases) = (renderers(work_dir), lease_dirs(work_dir));
        if procs.is_empty() && leases.is_empty() {
            Ok(())
        } else {
            Err(format!("renderers {procs:?}, lease folders {leases:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_render_stops_the_renderer_and_keeps_the_finished_frames() {
    let mut farm = Farm::start(|_| {}).await;
    let work = add_agent(&mut farm, "a");
    // One chunk of frames big enough that it renders for several seconds.
    let scene = Scene {
        frames: 30,
        width: 320,
        height: 240,
        chunk: Some(30),
        ..Scene::tiny(30)
    };
    let job = submit(&farm.client, "long", &scene).await;
    wait_rendering(&farm, job.id, &work).await;

    farm.client
        .post_json(&with_id(routes::JOB_CANCEL, job.id), &json!({}))
        .await
        .unwrap();
    let cancelled = Instant::now();
    // Frames are accepted under the same lock the cancel took: what is done now stays so.
    let at_cancel = farm.client.job(job.id).await.unwrap();
    assert_eq!(at_cancel.state, JobState::Cancelled);
    assert_eq!(at_cancel.frames.rendering, 0, "the lease is revoked");
    assert!(
        at_cancel.frames.done >= 1 && at_cancel.frames.done < 30,
        "cancelled mid-render: {at_cancel:?}"
    );
    assert!(at_cancel.finished_at.is_some());

    let limit = HEARTBEAT + Duration::from_secs(1);
    let gone = eventually("the renderer ends", SOON, || async {
        let procs = renderers(&work);
        if procs.is_empty() {
            Ok(cancelled.elapsed())
        } else {
            Err(format!("renderers {procs:?}"))
        }
    })
    .await;
    eprintln!("renderer gone {:.2} s after the cancel", gone.as_secs_f64());
    assert!(
        gone <= limit,
        "the renderer outlived the cancel by {gone:?}"
    );
    wait_idle(&work, "the agent keeps nothing of the lease").await;

    // No frame arrives any more, and the ones done stay downloadable.
    let files = stored_frames(&farm, job.id);
    assert_eq!(files.len() as u64, at_cancel.frames.done);
    throughout(HEARTBEAT * 3, async || {
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(
            j.frames, at_cancel.frames,
            "frames changed after the cancel"
        );
        assert_eq!(stored_frames(&farm, job.id), files, "a frame was stored");
        assert!(renderers(&work).is_empty(), "a renderer started again");
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let done: Vec<_> = farm.client.frames(job.id).await.unwrap();
    let done: Vec<String> = done.into_iter().filter_map(|f| f.file).collect();
    assert_eq!(done, files);
    for file in &done {
        let dest = out.path().join(file);
        farm.client
            .download(&routes::job_frame_file(job.id, file), &dest)
            .await
            .unwrap();
        let img = image::open(&dest).expect("a finished frame decodes");
        assert_eq!((img.width(), img.height()), (320, 240));
    }
    assert_no_failures(&farm, job.id).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_job_gets_no_lease_until_resumed_and_then_completes() {
    let mut farm = Farm::start(|_| {}).await;
    let work = add_agent(&mut farm, "a");
    let scene = Scene {
        frames: 24,
        width: 160,
        height: 120,
        chunk: Some(4),
        ..Scene::tiny(24)
    };
    let job = submit(&farm.client, "paused", &scene).await;
    wait_rendering(&farm, job.id, &work).await;

    farm.client
        .post_json(&with_id(routes::JOB_PAUSE, job.id), &json!({}))
        .await
        .unwrap();
    let paused = farm.client.job(job.id).await.unwrap();
    assert_eq!(paused.state, JobState::Paused);
    assert_eq!(paused.frames.rendering, 0, "running chunks go back");
    wait_idle(&work, "the agent stops rendering the paused job").await;
    let still = farm.client.job(job.id).await.unwrap();
    assert!(still.frames.queued > 0, "frames are left: {still:?}");
    throughout(HEARTBEAT * 3, async || {
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.state, JobState::Paused);
        assert_eq!(j.frames, still.frames, "frames moved while paused");
        let frames = farm.client.frames(job.id).await.unwrap();
        assert!(
            frames.iter().all(|f| f.state != "rendering"),
            "a frame is leased while paused"
        );
        assert!(renderers(&work).is_empty(), "a renderer runs while paused");
    })
    .await;

    farm.client
        .post_json(&with_id(routes::JOB_RESUME, job.id), &json!({}))
        .await
        .unwrap();
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_no_failures(&farm, job.id).await;
    assert_eq!(frames_delivered(&farm).await, 24, "no frame counted twice");
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_later_job_of_higher_priority_finishes_first_on_one_agent() {
    let mut farm = Farm::start(|_| {}).await;
    let work = add_agent(&mut farm, "a");
    let low = submit(&farm.client, "low", &small_chunks(16)).await;
    wait_rendering(&farm, low.id, &work).await;
    let high = Scene {
        frames: 4,
        priority: Some("5"),
        ..small_chunks(4)
    };
    let high = submit(&farm.client, "high", &high).await;
    assert_eq!((low.priority, high.priority), (0, 5));

    let high = wait_for_job(&farm.client, high.id, JOB_LIMIT).await;
    let low_then = farm.client.job(low.id).await.unwrap();
    assert!(
        !low_then.state.is_final() && low_then.frames.done < 16,
        "the earlier low-priority job was still rendering when the later one finished: {low_then:?}"
    );
    let low = wait_for_job(&farm.client, low.id, JOB_LIMIT).await;
    assert_complete(&farm, &high).await;
    assert_complete(&farm, &low).await;
    assert!(high.finished_at <= low.finished_at);
    assert!(low.started_at <= high.started_at);
    farm.stop().await;
}

/// `frames` frames of 96×72 in chunks of 2.
fn small_chunks(frames: i64) -> Scene {
    Scene {
        frames,
        width: 96,
        height: 72,
        chunk: Some(2),
        ..Scene::tiny(frames)
    }
}

/// Modification times of a job's stored frames, by file name.
fn frame_times(farm: &Farm, job: i64) -> BTreeMap<String, SystemTime> {
    let dir = farm
        .data()
        .join("jobs")
        .join(job.to_string())
        .join("frames");
    stored_frames(farm, job)
        .into_iter()
        .map(|f| {
            let modified = std::fs::metadata(dir.join(&f)).unwrap().modified().unwrap();
            (f, modified)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerendering_chosen_frames_renders_exactly_those_again() {
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let job = submit(&farm.client, "again", &Scene::tiny(5)).await;
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    let first = farm.client.frames(job.id).await.unwrap();
    assert!(first.iter().all(|f| f.attempts == 1), "{first:?}");
    let times = frame_times(&farm, job.id);

    farm.client
        .post_json(
            &with_id(routes::JOB_RETRY, job.id),
            &json!({ "frames": "2,4" }),
        )
        .await
        .unwrap();
    let again = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &again).await;
    assert!(again.has_video);
    let second = farm.client.frames(job.id).await.unwrap();
    let attempts: Vec<(i64, u32)> = second.iter().map(|f| (f.frame, f.attempts)).collect();
    assert_eq!(attempts, vec![(1, 1), (2, 2), (3, 1), (4, 2), (5, 1)]);
    assert_eq!(
        frames_delivered(&farm).await,
        7,
        "two frames rendered again"
    );
    let new_times = frame_times(&farm, job.id);
    for (file, before) in &times {
        let rerendered = file == "frame_00002.png" || file == "frame_00004.png";
        assert_eq!(
            new_times[file] != *before,
            rerendered,
            "{file} rewritten only if chosen"
        );
    }
    assert_no_failures(&farm, job.id).await;
    farm.stop().await;
}
