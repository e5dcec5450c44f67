//! Parallel chunks end to end: one in-process agent, real POV-Ray on small frames (a renderer
//! that leaves cores idle: it mostly waits between tiny frames), a real coordinator.
//!
//! What is checked is what /proc and the coordinator show: two POV-Ray processes of two leases
//! of this agent at once, never two with `max_parallel = 1`, both stopped (every thread in
//! state `T`) when a person sits down and both leases given back after `max_suspend`, and every
//! job complete with each frame exactly once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_agent::{Availability, ManualPresence};
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{JobInfo, PresenceState};

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

/// Longest wait for anything that should happen within a few seconds on an idle machine.
const SOON: Duration = Duration::from_secs(60);
/// Longest wait for a whole job.
const JOB_LIMIT: Duration = Duration::from_secs(300);
/// Frames per chunk: long enough (several seconds, also on a busy machine, where the renderers
/// run at the lowest priority) for a second chunk to start beside the first.
const CHUNK: i64 = 16;

/// Submits a POV-Ray animation of `frames` small frames in chunks of [`CHUNK`].
async fn submit(farm: &Farm, name: &str, frames: i64) -> JobInfo {
    let scenes = shared_tempdir();
    let pov = scenes.path().join(format!("{name}.pov"));
    let ini = scenes.path().join(format!("{name}.ini"));
    // Each job its own bytes: the input cache keys a single file by its hash.
    std::fs::write(&pov, format!("// job {name}\n{}", pov_scene(None))).unwrap();
    std::fs::write(&ini, pov_ini(1, frames, 64, 48)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: Some(CHUNK.to_string()),
        ..SubmitOptions::default()
    };
    farm.client.submit(&pov, &opts).await.unwrap()
}

/// A renderer of the agent working in `work_dir`: its lease and the state of every thread.
#[derive(Debug)]
struct Renderer {
    lease: String,
    threads: Vec<char>,
}

/// The agent's renderers: every process whose command line names a lease folder of it.
fn renderers(work_dir: &Path) -> Vec<Renderer> {
    let leases = format!("{}/leases/", work_dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        let Some((_, rest)) = cmdline.split_once(&leases) else {
            continue;
        };
        let lease: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let mut threads = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    threads.extend(rest.trim_start().chars().next());
                }
            }
        }
        out.push(Renderer { lease, threads });
    }
    out
}

/// How many leases have a renderer running right now.
fn leases_rendering(work_dir: &Path) -> usize {
    let mut leases: Vec<String> = renderers(work_dir).into_iter().map(|r| r.lease).collect();
    leases.sort();
    leases.dedup();
    leases.len()
}

/// Watches the agent's renderers until the job ends; returns the job and the most leases seen
/// rendering at once.
async fn watch_job(farm: &Farm, job: i64, work_dir: &Path) -> (JobInfo, usize) {
    let start = Instant::now();
    let mut most = 0;
    loop {
        most = most.max(leases_rendering(work_dir));
        let info = farm.client.job(job).await.unwrap();
        if info.state.is_final() {
            return (info, most);
        }
        assert!(start.elapsed() < JOB_LIMIT, "job not finished: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn add_agent(
    farm: &mut Farm,
    max_parallel: usize,
    presence: Arc<ManualPresence>,
) -> std::path::PathBuf {
    farm.add_agent_with("pc", presence, |c| {
        c.parallel.max_parallel = max_parallel;
        c.max_suspend = Duration::from_secs(2);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_renderer_gets_two_chunks_at_once_and_every_frame_arrives_once() {
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    let work_dir = add_agent(&mut farm, 2, presence);
    let job = submit(&farm, "two", 6 * CHUNK).await;
    let (job, most) = watch_job(&farm, job.id, &work_dir).await;
    assert_eq!(most, 2, "two leases rendering at once");
    assert_complete(&farm, &job).await;
    let frames = farm.client.frames(job.id).await.unwrap();
    assert!(
        frames.iter().all(|f| f.attempts == 1 && f.failures == 0),
        "{frames:?}"
    );
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_one_renders_one_chunk_at_a_time() {
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    let work_dir = add_agent(&mut farm, 1, presence);
    let job = submit(&farm, "one", 4 * CHUNK).await;
    let (job, most) = watch_job(&farm, job.id, &work_dir).await;
    assert_eq!(most, 1, "one lease at a time");
    assert_complete(&farm, &job).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_stops_both_chunks_and_both_are_given_back() {
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    let work_dir = add_agent(&mut farm, 2, presence.clone());
    let job = submit(&farm, "yield", 12 * CHUNK).await;

    let start = Instant::now();
    while leases_rendering(&work_dir) < 2 {
        assert!(start.elapsed() < SOON, "never two chunks at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    presence.set(Availability::Unavailable(PresenceState::UserPresent));
    // Both renderers stop: every thread of each in state T.
    let start = Instant::now();
    loop {
        let seen = renderers(&work_dir);
        let stopped = seen
            .iter()
            .filter(|r| r.threads.iter().all(|&s| s == 'T'))
            .count();
        if stopped >= 2 {
            break;
        }
        assert!(start.elapsed() < SOON, "renderers not stopped: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // After max_suspend both leases are given back: no renderer, two yields, no failure.
    let start = Instant::now();
    loop {
        let agents = farm.client.agents().await.unwrap();
        let info = farm.client.job(job.id).await.unwrap();
        if renderers(&work_dir).is_empty() && info.frames.rendering == 0 && agents[0].yields >= 2 {
            assert_eq!(agents[0].failures, 0, "{agents:?}");
            break;
        }
        assert!(
            start.elapsed() < SOON,
            "not given back: {agents:?} {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    presence.set(Availability::Available);
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eevee_job_renders_on_the_cpu_through_the_farm() {
    // Eevee with no GPU: Blender falls back to software OpenGL (surfaceless EGL), inside the
    // renderer's confinement, and two chunks may run at once.
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    let work_dir = add_agent(&mut farm, 2, presence);
    let scenes = shared_tempdir();
    let blend = crate::scenes::make_eevee_blend(scenes.path(), "eevee.blend", 16, 64, 64, 16);
    let opts = SubmitOptions {
        chunk: Some(CHUNK.to_string()),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&blend, &opts).await.unwrap();
    let (job, most) = watch_job(&farm, job.id, &work_dir).await;
    assert!((1..=2).contains(&most), "{most} chunks at once");
    assert_complete(&farm, &job).await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_splits_a_job_between_the_chunks_of_one_pc() {
    // No chunk size given: the agent says it may render two chunks at once, so the job is
    // not handed to the first chunk whole.
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    let work_dir = add_agent(&mut farm, 2, presence);
    let scenes = shared_tempdir();
    let pov = scenes.path().join("auto.pov");
    let ini = scenes.path().join("auto.ini");
    std::fs::write(&pov, format!("// job auto\n{}", pov_scene(None))).unwrap();
    std::fs::write(&ini, pov_ini(1, 6 * CHUNK, 64, 48)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap();
    let (job, most) = watch_job(&farm, job.id, &work_dir).await;
    assert_eq!(most, 2, "two leases rendering at once");
    assert_complete(&farm, &job).await;
    farm.stop().await;
}
