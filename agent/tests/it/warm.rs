//! Warm Blender with real Blender: chunks of one job share a process, their frames are the
//! cold path's, presence stops and ends it like any renderer, and failures read as before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idlefarm_agent::Availability;
use idlefarm_agent::render::process::running_groups;
use idlefarm_agent::render::warm::WarmBlenders;
use idlefarm_agent::render::{self, RenderControl, RenderEnv, RenderJob, RenderOutcome};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::render::blender_settings;
use crate::support::*;

/// Writes a 32×18 Cycles scene (2 samples, frames 1-4) whose cube moves; `camera: false`
/// deletes its camera, so rendering fails.
fn make_scene(path: &Path, camera: bool) {
    let mut script = String::from(
        "import bpy\n\
         s = bpy.context.scene\n\
         s.render.engine = 'CYCLES'\n\
         s.cycles.samples = 2\n\
         s.cycles.use_denoising = False\n\
         s.render.resolution_x = 32\n\
         s.render.resolution_y = 18\n\
         s.frame_start = 1\n\
         s.frame_end = 4\n\
         c = bpy.data.objects['Cube']\n\
         c.location = (-2, 0, 0)\n\
         c.keyframe_insert(data_path='location', frame=1)\n\
         c.location = (2, 0, 0)\n\
         c.keyframe_insert(data_path='location', frame=4)\n",
    );
    if !camera {
        script.push_str("bpy.data.objects.remove(bpy.data.objects['Camera'])\n");
    }
    script.push_str(&format!(
        "bpy.ops.wm.save_as_mainfile(filepath={:?})\n",
        path.to_str().unwrap()
    ));
    let status = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--python-expr", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success() && path.exists(),
        "cannot write {}",
        path.display()
    );
}

/// A render environment with warm Blenders idle for at most `idle`.
fn warm_env(idle: Duration) -> RenderEnv {
    RenderEnv {
        warm: WarmBlenders::new(idle),
        ..render_env()
    }
}

/// The chunk `frames` of the scene in `input`, output in `out`.
fn chunk(input: &Path, main: &str, frames: &[i64], out: &Path) -> RenderJob {
    RenderJob {
        settings: blender_settings(main),
        frames: frames.to_vec(),
        main_file: input.join(main),
        input_root: input.to_path_buf(),
        out_dir: mkdir(out),
    }
}

/// Renders `job` with `presence` and `max_suspend`; returns the outcome and the frames sent.
async fn render_with(
    job: &RenderJob,
    env: &RenderEnv,
    presence: watch::Receiver<Availability>,
    max_suspend: Duration,
) -> (RenderOutcome, Vec<(i64, PathBuf)>) {
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel();
    let control = RenderControl {
        presence,
        max_suspend,
        cancel: CancellationToken::new(),
        suspended: watch::channel(false).0,
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(300),
        render::render(job, env, frames_tx, control),
    )
    .await
    .expect("the render did not end");
    let mut frames = Vec::new();
    while let Ok(frame) = frames_rx.try_recv() {
        frames.push((frame.frame, frame.path));
    }
    (outcome, frames)
}

async fn render_available(
    job: &RenderJob,
    env: &RenderEnv,
) -> (RenderOutcome, Vec<(i64, PathBuf)>) {
    let (_presence, rx) = watch::channel(Availability::Available);
    render_with(job, env, rx, Duration::from_secs(60)).await
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// States of every thread of `pid`.
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            stat.rsplit_once(')')?.1.trim_start().chars().next()
        })
        .collect()
}

/// A PNG's chunks other than its text (which holds the render date and time).
fn png_without_text(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let mut rest = &bytes[8..];
    let mut chunks = Vec::new();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let kind = rest[4..8].to_vec();
        if kind != b"tEXt" {
            chunks.push((kind, rest[8..8 + len].to_vec()));
        }
        rest = &rest[12 + len..];
    }
    chunks
}

/// The warm Blenders' own folders left in `leases`.
fn warm_folders(leases: &Path) -> Vec<String> {
    std::fs::read_dir(leases)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".warm-blender-"))
        .collect()
}

#[tokio::test]
async fn chunks_of_a_job_share_one_blender_and_get_the_cold_paths_frames() {
    let dir = open_tempdir();
    let input = mkdir(&dir.path().join("input"));
    make_scene(&input.join("shot.blend"), true);
    let leases = mkdir(&dir.path().join("leases"));
    let env = warm_env(Duration::from_secs(5));

    // Chunks out of order: 3 continues the render that did 1 (2 skipped), 2 starts another.
    let first = chunk(&input, "shot.blend", &[1], &leases.join("1"));
    let (outcome, frames) = render_available(&first, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    let pids = env.warm.idle_pids();
    assert_eq!(pids.len(), 1, "one idle warm Blender after the first chunk");
    let pid = pids[0];
    assert!(alive(pid));
    assert!(
        !running_groups().contains(&pid),
        "an idle warm Blender is not a running renderer"
    );
    if idlefarm_agent::render::confine::abi_version().is_some() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains("NoNewPrivs:\t1"),
            "a warm Blender is confined like any renderer"
        );
    }

    let second = chunk(&input, "shot.blend", &[3, 4], &leases.join("2"));
    let (outcome, more) = render_available(&second, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    assert_eq!(
        env.warm.idle_pids(),
        vec![pid],
        "the second chunk reused it"
    );
    let third = chunk(&input, "shot.blend", &[2], &leases.join("3"));
    let (outcome, last) = render_available(&third, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    assert_eq!(env.warm.idle_pids(), vec![pid], "the third chunk reused it");

    let mut warm: Vec<(i64, PathBuf)> = frames.into_iter().chain(more).chain(last).collect();
    warm.sort();
    assert_eq!(
        warm.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(warm[0].1.starts_with(leases.join("1")) && warm[1].1.starts_with(leases.join("3")));
    // Only frames: the stand-ins for skipped frames never reach a lease.
    for (_, path) in &warm {
        assert!(std::fs::metadata(path).unwrap().len() > 0);
    }

    // The same frames the one-off way.
    let cold = chunk(
        &input,
        "shot.blend",
        &[1, 2, 3, 4],
        &dir.path().join("cold"),
    );
    let (outcome, cold_frames) = render_available(&cold, &render_env()).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    assert_eq!(cold_frames.len(), 4);
    for ((frame, warm_path), (_, cold_path)) in warm.iter().zip(&cold_frames) {
        assert_eq!(
            png_without_text(warm_path),
            png_without_text(cold_path),
            "frame {frame} differs from the cold path's"
        );
    }
    assert_ne!(
        png_without_text(&warm[0].1),
        png_without_text(&warm[3].1),
        "the cube moves"
    );

    // Idle past the timeout: ended, its folder removed.
    assert!(
        eventually(Duration::from_secs(60), || !alive(pid)).await,
        "the idle warm Blender outlived its idle timeout"
    );
    assert!(eventually(Duration::from_secs(5), || env.warm.idle_pids().is_empty()).await);
    assert_eq!(warm_folders(&leases), Vec::<String>::new());
}

#[tokio::test]
async fn presence_stops_and_ends_warm_blenders_and_the_next_chunk_starts_afresh() {
    let dir = open_tempdir();
    let input = mkdir(&dir.path().join("input"));
    make_scene(&input.join("shot.blend"), true);
    let leases = mkdir(&dir.path().join("leases"));
    let env = warm_env(Duration::from_secs(600));

    // Idle, then a person sits down: stopped, and ended after max_suspend.
    let (person, rx) = watch::channel(Availability::Available);
    let job = chunk(&input, "shot.blend", &[1], &leases.join("1"));
    let (outcome, _) = render_with(&job, &env, rx, Duration::from_secs(3)).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    let first = env.warm.idle_pids()[0];
    person.send_replace(Availability::Unavailable(
        idlefarm_protocol::PresenceState::UserPresent,
    ));
    assert!(
        eventually(Duration::from_secs(10), || {
            let states = thread_states(first);
            !states.is_empty() && states.iter().all(|&s| s == 'T')
        })
        .await,
        "the idle warm Blender was not stopped: {:?}",
        thread_states(first)
    );
    assert!(eventually(Duration::from_secs(30), || !alive(first)).await);
    assert!(env.warm.idle_pids().is_empty());

    // A fresh one for the next chunk.
    let job = chunk(&input, "shot.blend", &[2], &leases.join("2"));
    let (outcome, _) = render_available(&job, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    let second = env.warm.idle_pids()[0];
    assert_ne!(second, first);

    // A chunk that starts while the PC is in use: stopped, then yielded; the process goes.
    let (_person, rx) = watch::channel(Availability::Unavailable(
        idlefarm_protocol::PresenceState::UserPresent,
    ));
    let job = chunk(&input, "shot.blend", &[3], &leases.join("3"));
    let (outcome, frames) = render_with(&job, &env, rx, Duration::from_millis(300)).await;
    assert_eq!(outcome, RenderOutcome::Yielded);
    assert!(frames.is_empty());
    assert!(eventually(Duration::from_secs(5), || !alive(second)).await);
    assert!(env.warm.idle_pids().is_empty());

    let job = chunk(&input, "shot.blend", &[3, 4], &leases.join("4"));
    let (outcome, frames) = render_available(&job, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    assert_eq!(frames.len(), 2);
    let third = env.warm.idle_pids()[0];
    assert!(third != second && third != first);

    // A chunk of another job (other settings): the idle one of this job ends.
    let mut other = chunk(&input, "shot.blend", &[1], &leases.join("5"));
    other.settings.resolution_x = 16;
    let (outcome, _) = render_available(&other, &env).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    assert!(eventually(Duration::from_secs(5), || !alive(third)).await);
    let fourth = env.warm.idle_pids();
    assert!(fourth.len() == 1 && fourth[0] != third, "{fourth:?}");
    let third = fourth[0];

    // Shutdown ends the idle ones and removes their folders.
    env.warm.end_all().await;
    assert!(eventually(Duration::from_secs(5), || !alive(third)).await);
    assert!(env.warm.idle_pids().is_empty());
    assert_eq!(warm_folders(&leases), Vec::<String>::new());
}

#[tokio::test]
async fn failures_read_as_before_and_the_blender_is_not_kept() {
    let dir = open_tempdir();
    let input = mkdir(&dir.path().join("input"));
    make_scene(&input.join("nocamera.blend"), false);
    std::fs::write(input.join("broken.blend"), b"not a blend file").unwrap();
    let leases = mkdir(&dir.path().join("leases"));
    let env = warm_env(Duration::from_secs(600));

    // The file loads, the render fails: the driver's reason and the log tail.
    let job = chunk(&input, "nocamera.blend", &[1, 2], &leases.join("1"));
    match render_available(&job, &env).await.0 {
        RenderOutcome::Failed { message, log_tail } => {
            assert!(
                message.starts_with("blender could not render frames 1-2: ")
                    && message.contains("camera"),
                "{message}"
            );
            assert!(log_tail.contains("camera"), "{log_tail}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        env.warm.idle_pids().is_empty(),
        "a failed Blender is not kept"
    );

    // The file does not load: the cold path reports it, word for word as without warm Blenders.
    let job = chunk(&input, "broken.blend", &[5, 6, 7, 8], &leases.join("2"));
    match render_available(&job, &env).await.0 {
        RenderOutcome::Failed { message, log_tail } => {
            assert_eq!(
                message,
                "blender exited with status 1 while rendering frames 5-8"
            );
            assert!(
                log_tail.contains("File format is not supported"),
                "{log_tail}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(env.warm.idle_pids().is_empty());
    assert_eq!(warm_folders(&leases), Vec::<String>::new());
}
