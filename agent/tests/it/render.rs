//! Real Blender and POV-Ray renders through the render module, and the presence policy
//! (SIGSTOP, SIGCONT, yield) applied to a real POV-Ray process group.

use std::path::{Path, PathBuf};
use std::time::Duration;

use idlefarm_agent::Availability;
use idlefarm_agent::render::{self, RenderControl, RenderJob, RenderOutcome, RenderedFrame};
use idlefarm_protocol::{ImageFormat, PresenceState, RenderSettings, Renderer};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A render job with its input written to `<dir>/input` and output in `<dir>/out`.
fn povray_job(dir: &Path, heavy: bool, size: (u32, u32), frames: i64) -> RenderJob {
    let input = mkdir(&dir.join("input"));
    std::fs::write(input.join("ball.pov"), ball_scene(heavy)).unwrap();
    RenderJob {
        settings: povray_settings("ball.pov", size.0, size.1, frames),
        frames: (1..=frames).collect(),
        main_file: input.join("ball.pov"),
        input_root: input,
        out_dir: mkdir(&dir.join("out")),
    }
}

struct Running {
    presence: watch::Sender<Availability>,
    suspended: watch::Receiver<bool>,
    cancel: CancellationToken,
    frames: mpsc::UnboundedReceiver<RenderedFrame>,
    task: tokio::task::JoinHandle<RenderOutcome>,
}

fn start(job: RenderJob, max_suspend: Duration) -> Running {
    let (presence, presence_rx) = watch::channel(Availability::Available);
    let (suspended_tx, suspended) = watch::channel(false);
    let (frames_tx, frames) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let control = RenderControl {
        presence: presence_rx,
        max_suspend,
        cancel: cancel.clone(),
        suspended: suspended_tx,
    };
    let task =
        tokio::spawn(async move { render::render(&job, &render_env(), frames_tx, control).await });
    Running {
        presence,
        suspended,
        cancel,
        frames,
        task,
    }
}

async fn next_frame(frames: &mut mpsc::UnboundedReceiver<RenderedFrame>) -> RenderedFrame {
    tokio::time::timeout(Duration::from_secs(120), frames.recv())
        .await
        .expect("no frame within 2 minutes")
        .expect("frame channel closed early")
}

/// Fields of `/proc/<pid>/stat` after the command name (index 0 is the state).
fn stat(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = text.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Process ids in the process group of the renderer writing to `out_dir`.
fn group_of(out_dir: &Path) -> Vec<u32> {
    let needle = out_dir.to_string_lossy().into_owned();
    let mut pgid = None;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle)
            && let Some(fields) = stat(&entry.path().join("stat"))
        {
            pgid = Some(fields[2].clone());
        }
    }
    let Some(pgid) = pgid else { return Vec::new() };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let fields = stat(&e.path().join("stat"))?;
            (fields[2] == pgid).then_some(pid)
        })
        .collect()
}

/// States of every thread of every process in `pids`.
fn thread_states(pids: &[u32]) -> Vec<char> {
    let mut states = Vec::new();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Some(fields) = stat(&task.path().join("stat")) {
                states.push(fields[0].chars().next().unwrap());
            }
        }
    }
    states
}

/// utime + stime of every process in `pids`, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| stat(&PathBuf::from(format!("/proc/{pid}/stat"))))
        .map(|f| f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap())
        .sum()
}

/// `SCHED_IDLE` as `/proc/<pid>/stat` shows the policy.
fn libc_sched_idle() -> &'static str {
    "5"
}

fn frame_numbers(frames: &[RenderedFrame]) -> Vec<i64> {
    frames.iter().map(|f| f.frame).collect()
}

#[tokio::test]
async fn povray_animation_delivers_every_frame() {
    let dir = open_tempdir();
    let job = povray_job(dir.path(), false, (32, 24), 4);
    let out_dir = job.out_dir.clone();
    let mut running = start(job, Duration::from_secs(60));
    let outcome = running.task.await.unwrap();
    assert_eq!(outcome, RenderOutcome::Complete);
    let mut frames = Vec::new();
    while let Ok(frame) = running.frames.try_recv() {
        frames.push(frame);
    }
    assert_eq!(frame_numbers(&frames), vec![1, 2, 3, 4]);
    for frame in &frames {
        assert_eq!(
            frame.path,
            out_dir.join(idlefarm_protocol::frame_file_name(
                frame.frame,
                ImageFormat::Png
            ))
        );
        assert_eq!(png_size(&std::fs::read(&frame.path).unwrap()), (32, 24));
    }
    // The renderer read its settings from the per-render povray.conf.
    let conf = std::fs::read_to_string(out_dir.join(".povray/3.7/povray.conf")).unwrap();
    assert!(conf.contains("[Shellout Security]\nforbidden\n"));
}

#[tokio::test]
async fn povray_subrange_of_a_longer_animation_keeps_frame_numbers() {
    let dir = open_tempdir();
    let mut job = povray_job(dir.path(), false, (32, 24), 120);
    job.frames = vec![98, 99, 100];
    job.settings.format = ImageFormat::Jpeg;
    let mut running = start(job, Duration::from_secs(60));
    assert_eq!(running.task.await.unwrap(), RenderOutcome::Complete);
    let mut frames = Vec::new();
    while let Ok(frame) = running.frames.try_recv() {
        frames.push(frame);
    }
    assert_eq!(frame_numbers(&frames), vec![98, 99, 100]);
    assert!(frames[0].path.ends_with("frame_00098.jpg"));
}

#[tokio::test]
async fn povray_parse_error_fails_with_the_log_tail() {
    let dir = open_tempdir();
    let job = povray_job(dir.path(), false, (32, 24), 3);
    std::fs::write(
        &job.main_file,
        "sphere { <0,0,0>, 1 pigment { colr rgb 1 } }\n",
    )
    .unwrap();
    let running = start(job, Duration::from_secs(60));
    match running.task.await.unwrap() {
        RenderOutcome::Failed { message, log_tail } => {
            assert_eq!(
                message,
                "povray exited with status 1 while rendering frames 1-3"
            );
            assert!(log_tail.contains("Parse Error"), "{log_tail}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn suspended_render_stops_the_whole_group_and_continues() {
    let dir = open_tempdir();
    let job = povray_job(dir.path(), true, (192, 144), 6);
    let out_dir = job.out_dir.clone();
    let mut running = start(job, Duration::from_secs(60));

    let first = next_frame(&mut running.frames).await;
    assert_eq!(first.frame, 1);
    let group = group_of(&out_dir);
    assert!(!group.is_empty(), "renderer not found");
    for pid in &group {
        let fields = stat(Path::new(&format!("/proc/{pid}/stat"))).unwrap();
        assert_eq!(fields[19 - 3], "19", "nice of {pid}");
        assert_eq!(fields[41 - 3], libc_sched_idle(), "policy of {pid}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        if idlefarm_runtime::is_root() {
            assert!(!uid.split_whitespace().skip(1).any(|id| id == "0"), "{uid}");
        }
    }

    running
        .presence
        .send_replace(Availability::Unavailable(PresenceState::UserPresent));
    tokio::time::timeout(Duration::from_secs(5), running.suspended.wait_for(|s| *s))
        .await
        .expect("render not suspended")
        .unwrap();
    let stopped = eventually(Duration::from_secs(2), || {
        let states = thread_states(&group);
        !states.is_empty() && states.iter().all(|&s| s == 'T')
    })
    .await;
    assert!(
        stopped,
        "states while suspended: {:?}",
        thread_states(&group)
    );
    let before = cpu_ticks(&group);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cpu_ticks(&group), before, "a stopped renderer used CPU");
    assert!(!running.task.is_finished());

    running.presence.send_replace(Availability::Available);
    tokio::time::timeout(Duration::from_secs(5), running.suspended.wait_for(|s| !*s))
        .await
        .expect("render not resumed")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || thread_states(&group)
            .iter()
            .all(|&s| s != 'T'))
        .await
    );

    let outcome = tokio::time::timeout(Duration::from_secs(300), running.task)
        .await
        .expect("render did not finish")
        .unwrap();
    assert_eq!(outcome, RenderOutcome::Complete);
    let mut frames = vec![first];
    while let Ok(frame) = running.frames.try_recv() {
        frames.push(frame);
    }
    assert_eq!(frame_numbers(&frames), vec![1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn render_suspended_too_long_is_ended_and_yielded() {
    let dir = open_tempdir();
    let job = povray_job(dir.path(), true, (192, 144), 6);
    let out_dir = job.out_dir.clone();
    let mut running = start(job, Duration::from_millis(500));

    let first = next_frame(&mut running.frames).await;
    let group = group_of(&out_dir);
    running
        .presence
        .send_replace(Availability::Unavailable(PresenceState::UserPresent));
    let outcome = tokio::time::timeout(Duration::from_secs(15), running.task)
        .await
        .expect("render not ended")
        .unwrap();
    assert_eq!(outcome, RenderOutcome::Yielded);
    assert!(
        *running.suspended.borrow(),
        "a yielded render reports suspended"
    );
    let mut frames = vec![first];
    while let Ok(frame) = running.frames.try_recv() {
        frames.push(frame);
    }
    assert!(frames.len() < 6, "every frame finished: {frames:?}");
    assert!(
        eventually(Duration::from_secs(2), || group
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
        .await,
        "renderer processes left behind"
    );
}

#[tokio::test]
async fn cancelled_render_ends_the_renderer() {
    let dir = open_tempdir();
    let job = povray_job(dir.path(), true, (192, 144), 6);
    let out_dir = job.out_dir.clone();
    let mut running = start(job, Duration::from_secs(60));
    next_frame(&mut running.frames).await;
    let group = group_of(&out_dir);
    running.cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(15), running.task)
        .await
        .expect("render not ended")
        .unwrap();
    assert_eq!(outcome, RenderOutcome::Cancelled);
    assert!(
        eventually(Duration::from_secs(2), || group
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists()))
        .await
    );
}

/// Writes a 32×18 Cycles scene (2 samples, frames 1-3) with Blender itself.
pub fn make_blend(path: &Path) {
    let script = format!(
        "import bpy\n\
         s = bpy.context.scene\n\
         s.render.engine = 'CYCLES'\n\
         s.cycles.samples = 2\n\
         s.cycles.use_denoising = False\n\
         s.render.resolution_x = 32\n\
         s.render.resolution_y = 18\n\
         s.render.resolution_percentage = 100\n\
         s.frame_start = 1\n\
         s.frame_end = 3\n\
         bpy.ops.wm.save_as_mainfile(filepath={:?})\n",
        path.to_str().unwrap()
    );
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

/// Settings of the scene [`make_blend`] writes.
pub fn blender_settings(main: &str) -> RenderSettings {
    RenderSettings {
        renderer: Renderer::Blender,
        main_file: main.into(),
        scene: None,
        frame_start: 1,
        frame_end: 3,
        frame_step: 1,
        fps: 24.0,
        resolution_x: 32,
        resolution_y: 18,
        percentage: 100,
        engine: Some("CYCLES".into()),
        format: ImageFormat::Png,
        povray: None,
        sequence: None,
    }
}

#[tokio::test]
async fn blender_cycles_render_delivers_every_frame() {
    let dir = open_tempdir();
    let input = mkdir(&dir.path().join("input"));
    make_blend(&input.join("shot.blend"));
    let job = RenderJob {
        settings: blender_settings("shot.blend"),
        frames: vec![1, 2, 3],
        main_file: input.join("shot.blend"),
        input_root: input,
        out_dir: mkdir(&dir.path().join("out")),
    };
    let mut running = start(job, Duration::from_secs(60));
    let outcome = tokio::time::timeout(Duration::from_secs(300), running.task)
        .await
        .expect("blender did not finish")
        .unwrap();
    assert_eq!(outcome, RenderOutcome::Complete);
    let mut frames = Vec::new();
    while let Ok(frame) = running.frames.try_recv() {
        frames.push(frame);
    }
    assert_eq!(frame_numbers(&frames), vec![1, 2, 3]);
    for frame in &frames {
        assert_eq!(png_size(&std::fs::read(&frame.path).unwrap()), (32, 18));
    }
}

#[tokio::test]
async fn blender_failure_reports_status_and_log_tail() {
    let dir = open_tempdir();
    let input = mkdir(&dir.path().join("input"));
    std::fs::write(input.join("broken.blend"), b"not a blend file").unwrap();
    let job = RenderJob {
        settings: blender_settings("broken.blend"),
        frames: vec![5, 6, 7, 8],
        main_file: input.join("broken.blend"),
        input_root: input,
        out_dir: mkdir(&dir.path().join("out")),
    };
    let running = start(job, Duration::from_secs(60));
    match running.task.await.unwrap() {
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
}
