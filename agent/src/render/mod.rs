//! Rendering a lease's frames: starting Blender or POV-Ray, handing each frame file over the
//! moment it is complete, and applying the presence policy to the running renderer.
//!
//! The policy while rendering: when the PC becomes unavailable the renderer's process group is
//! stopped (SIGSTOP); if it becomes available again within `max_suspend` it continues (SIGCONT),
//! otherwise it is ended (SIGTERM, SIGKILL after a grace period) and the lease is yielded. Frames
//! finished before that are kept. This module knows nothing about the network.

pub mod blender;
pub mod confine;
mod detect;
pub mod fatal;
mod output;
pub mod povray;
pub mod process;
mod sequence;
mod supervise;
mod user;
pub mod warm;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use idlefarm_protocol::{RenderSettings, Renderer};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::presence::Availability;
pub use detect::detect;
use output::{FrameTracker, LogTail, Output};
use supervise::supervise;
pub use user::{RenderUser, UserError};

/// How many of the renderer's last output lines a failure report carries.
pub const LOG_TAIL_LINES: usize = 60;

/// Time a renderer gets to exit after SIGTERM before it is killed.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often POV-Ray's output directory is looked at for finished frames.
const POVRAY_POLL: Duration = Duration::from_millis(200);

/// How long output is still read after the renderer exited (a leftover child may hold the pipe).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The programs and account renders use.
#[derive(Debug, Clone)]
pub struct RenderEnv {
    /// Blender executable.
    pub blender: PathBuf,
    /// POV-Ray executable.
    pub povray: PathBuf,
    /// Account the renderer runs as; `None` keeps the agent's own.
    pub user: Option<RenderUser>,
    /// Blender processes kept across the chunks of a job (none by default).
    pub warm: warm::WarmBlenders,
}

/// One render: some consecutive frames of a job.
#[derive(Debug, Clone)]
pub struct RenderJob {
    /// How to render.
    pub settings: RenderSettings,
    /// The frames to render, in order.
    pub frames: Vec<i64>,
    /// Root of the job's input (the scene file's directory, or the extracted zip).
    pub input_root: PathBuf,
    /// Absolute path of the main scene file, inside `input_root`.
    pub main_file: PathBuf,
    /// Absolute, existing directory the frames are written to; also the renderer's `$HOME`.
    pub out_dir: PathBuf,
}

/// A frame whose image file is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFrame {
    /// Frame number.
    pub frame: i64,
    /// The image: `out_dir/frame_00007.png`.
    pub path: PathBuf,
    /// A known fatal line the renderer printed since the frame before (see [`fatal`]).
    pub renderer_error: Option<String>,
}

/// What a render is steered by while it runs.
#[derive(Debug)]
pub struct RenderControl {
    /// Whether the PC may be used; watched for the whole render.
    pub presence: watch::Receiver<Availability>,
    /// How long a render may stay stopped before it is ended and the lease yielded.
    pub max_suspend: Duration,
    /// Ends the render at once (shutdown, revoked lease).
    pub cancel: CancellationToken,
    /// Set while the renderer is stopped for a person (and after it was ended for one).
    pub suspended: watch::Sender<bool>,
}

/// How a render ended. Finished frames have been sent in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderOutcome {
    /// Every frame was rendered.
    Complete,
    /// The PC stayed unavailable longer than `max_suspend`; the renderer was ended.
    Yielded,
    /// [`RenderControl::cancel`] fired; the renderer was ended.
    Cancelled,
    /// The renderer failed.
    Failed {
        /// What happened, for a person.
        message: String,
        /// The renderer's last output lines.
        log_tail: String,
    },
}

/// One renderer process: a scene file and the frames it renders.
pub(crate) struct Run<'a> {
    /// The scene file.
    main_file: &'a Path,
    /// Its frames, in order.
    frames: &'a [i64],
    /// A scene-sequence file: rendered once, as the one frame in `frames`.
    still: bool,
}

/// Renders `job`, sending each frame to `frames` as soon as its file is complete.
pub async fn render(
    job: &RenderJob,
    env: &RenderEnv,
    frames: mpsc::UnboundedSender<RenderedFrame>,
    mut control: RenderControl,
) -> RenderOutcome {
    if job.settings.sequence.is_some() || job.settings.renderer != Renderer::Blender {
        // A chunk of another job: idle warm Blenders are of no use now.
        env.warm.end_others(None);
    }
    if job.settings.sequence.is_some() {
        return sequence::render(job, env, &frames, &mut control).await;
    }
    if job.settings.renderer == Renderer::Blender
        && let Some(outcome) = warm::render(job, env, &frames, &mut control).await
    {
        return outcome;
    }
    let whole = Run {
        main_file: &job.main_file,
        frames: &job.frames,
        still: false,
    };
    run(job, &whole, env, &frames, &mut control).await
}

/// Runs the renderer once for `run`, applying the presence policy while it runs.
async fn run(
    job: &RenderJob,
    run: &Run<'_>,
    env: &RenderEnv,
    frames: &mpsc::UnboundedSender<RenderedFrame>,
    control: &mut RenderControl,
) -> RenderOutcome {
    let renderer = job.settings.renderer;
    let name = renderer.as_str();
    let range = frame_range(run.frames);
    let command = match prepare(job, run, env) {
        Ok(command) => command,
        Err(err) => {
            return RenderOutcome::Failed {
                message: format!("cannot prepare {name} for frames {range}: {err}"),
                log_tail: String::new(),
            };
        }
    };
    let program = match renderer {
        Renderer::Blender => &env.blender,
        Renderer::Povray => &env.povray,
    };
    let confinement = match confine::for_render(program, &job.input_root, &job.out_dir) {
        Ok(confinement) => confinement,
        Err(err) => {
            return RenderOutcome::Failed {
                message: format!("cannot confine {name} for frames {range}: {err}"),
                log_tail: String::new(),
            };
        }
    };
    let spawned = process::spawn(command, env.user.as_ref(), confinement.as_ref());
    let (mut child, mut lines) = match spawned {
        Ok(spawned) => spawned,
        Err(err) => {
            return RenderOutcome::Failed {
                message: format!("cannot start {name} for frames {range}: {err}"),
                log_tail: String::new(),
            };
        }
    };
    tracing::debug!(pid = child.pid(), renderer = name, frames = %range, "renderer started");

    let mut output = Output {
        tracker: FrameTracker::new(job, run, frames.clone()),
        tail: LogTail::default(),
    };
    let poll = renderer == Renderer::Povray;
    let supervision = supervise(&mut child, &mut lines, control, &mut output, name, poll).await;
    if supervision.lines_open {
        supervise::drain(&mut lines, &mut output, name).await;
    }
    let (stop, status) = match supervision.ended {
        supervise::Ended::Exited(status) => (supervision.stop, status),
        // A one-off renderer's watcher never says "done".
        supervise::Ended::Done => (supervision.stop, child.wait().await),
    };
    let Output { mut tracker, tail } = output;
    // Nothing the renderer started may outlive it.
    let _ = child.kill();
    let exited_ok = matches!(&status, Ok(s) if s.success()) && stop.is_none();
    tracker.scan(exited_ok);

    if let Some(outcome) = stop {
        return outcome;
    }
    exit_outcome(name, &range, status, &tracker.missing(), &tail)
}

/// How a render ended by the renderer's exit turned out, when we did not end it.
fn exit_outcome(
    name: &str,
    range: &str,
    status: std::io::Result<ExitStatus>,
    missing: &[i64],
    tail: &LogTail,
) -> RenderOutcome {
    match status {
        Ok(status) if status.success() && missing.is_empty() => RenderOutcome::Complete,
        Ok(status) if status.success() => RenderOutcome::Failed {
            message: format!(
                "{name} exited successfully but frame(s) {} of {range} are missing",
                list(missing)
            ),
            log_tail: tail.text(),
        },
        Ok(status) => RenderOutcome::Failed {
            message: format!("{name} {} while rendering frames {range}", describe(status)),
            log_tail: tail.text(),
        },
        Err(err) => RenderOutcome::Failed {
            message: format!("lost track of {name} while rendering frames {range}: {err}"),
            log_tail: tail.text(),
        },
    }
}

/// Builds the renderer's command line, environment and working directory.
fn prepare(job: &RenderJob, run: &Run<'_>, env: &RenderEnv) -> std::io::Result<Command> {
    let s = &job.settings;
    let (main_file, out_dir) = (run.main_file, job.out_dir.as_path());
    let (program, args) = match s.renderer {
        Renderer::Blender if run.still => {
            (&env.blender, blender::sequence_args(s, main_file, out_dir))
        }
        Renderer::Blender => (
            &env.blender,
            blender::args(s, main_file, out_dir, run.frames),
        ),
        Renderer::Povray => {
            let created = povray::write_conf(&job.out_dir, &job.input_root)?;
            povray::write_ini(s, &job.out_dir)?;
            if let Some(user) = &env.user {
                for dir in created {
                    user.chown(&dir)?;
                }
            }
            let args = match run.still {
                true => povray::still_args(s, main_file, out_dir),
                false => povray::args(s, main_file, out_dir, run.frames),
            };
            (&env.povray, args)
        }
    };
    if let Some(user) = &env.user {
        user.chown(&job.out_dir)?;
    }
    let mut command = renderer_command(program, job, main_file, &job.out_dir);
    command.args(args);
    Ok(command)
}

/// A renderer's command without arguments: run in the scene file's directory, with a clean
/// environment whose `$HOME` and `$TMPDIR` are `home`.
fn renderer_command(program: &Path, job: &RenderJob, main_file: &Path, home: &Path) -> Command {
    let mut command = Command::new(program);
    // Includes and textures resolve relative to the scene file's directory.
    command.current_dir(main_file.parent().unwrap_or(&job.input_root));
    // Renderers get a clean environment: the agent's may hold its enrolment token.
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("LANG", "C.UTF-8");
    command
}

/// `5-8`, or `5` for a single frame.
pub fn frame_range(frames: &[i64]) -> String {
    match (frames.first(), frames.last()) {
        (Some(first), Some(last)) if first != last => format!("{first}-{last}"),
        (Some(first), _) => first.to_string(),
        _ => "(none)".to_owned(),
    }
}

fn list(frames: &[i64]) -> String {
    frames
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_statuses_read_well() {
        assert_eq!(frame_range(&[5, 6, 7, 8]), "5-8");
        assert_eq!(frame_range(&[3]), "3");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            describe(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by signal 9");
    }
}
