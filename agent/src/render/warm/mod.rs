//! Warm Blender: one Blender process kept per job across its chunks, so that successive chunks
//! do not pay Blender's start and the loading of the file again.
//!
//! A chunk of an animation takes an idle warm Blender of its job (same file, settings, program
//! and account) or starts one, asks it for its frames and gives it back when they are all
//! there. Its driver (`driver.py`) keeps one animation render going across chunks, so the
//! render engine's own set-up (Eevee's shaders) is paid once per job as well. While it renders it is a renderer like any other: in [`running_groups`], stopped for a
//! person, ended on yield, cancel or failure and never reused then. Idle ones are not in
//! [`running_groups`]; they are stopped for a person too, and end after `max_suspend` of that,
//! after [`IDLE_TIMEOUT`], when a chunk of another job starts, and at shutdown. A Blender that
//! ends before our script ran (it could not load the file, or has no Python) sends its job's
//! chunks down the cold path, which reports whatever is wrong as it always did.
//!
//! [`running_groups`]: super::process::running_groups

mod pool;
mod process;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use super::output::{FrameTracker, LogTail};
use super::supervise::{self, Ended, Watcher, supervise};
use super::{RenderControl, RenderEnv, RenderJob, RenderOutcome, RenderedFrame, Run};
use pool::Pool;
use process::{Said, WarmBlender};

/// How long a warm Blender waits for its job's next chunk before it ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent's warm Blenders; cloning shares them. The default keeps none (every chunk starts
/// its own Blender).
#[derive(Clone, Default)]
pub struct WarmBlenders {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    pool: Mutex<Pool>,
    idle_timeout: Duration,
}

impl std::fmt::Debug for WarmBlenders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmBlenders")
            .field("enabled", &self.shared.is_some())
            .finish()
    }
}

/// What makes two chunks able to share a Blender: the same program and account, the same file
/// loaded from the same input, the same settings, leases' folders in the same place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct WarmKey {
    blender: PathBuf,
    user: Option<u32>,
    input_root: PathBuf,
    main_file: PathBuf,
    settings: String,
    leases_dir: Option<PathBuf>,
}

impl WarmKey {
    fn of(job: &RenderJob, env: &RenderEnv) -> WarmKey {
        WarmKey {
            blender: env.blender.clone(),
            user: env.user.as_ref().map(|u| u.uid),
            input_root: job.input_root.clone(),
            main_file: job.main_file.clone(),
            // Settings are plain data; their JSON is a faithful key.
            settings: serde_json::to_string(&job.settings).unwrap_or_default(),
            leases_dir: job.out_dir.parent().map(PathBuf::from),
        }
    }
}

impl WarmBlenders {
    /// Keeps warm Blenders, each for at most `idle_timeout` without work.
    pub fn new(idle_timeout: Duration) -> WarmBlenders {
        WarmBlenders {
            shared: Some(Arc::new(Shared {
                pool: Mutex::new(Pool::default()),
                idle_timeout,
            })),
        }
    }

    /// Process ids of the warm Blenders waiting for a chunk now.
    pub fn idle_pids(&self) -> Vec<u32> {
        self.pool().map(|pool| pool.idle_pids()).unwrap_or_default()
    }

    /// Ends every idle warm Blender and waits until they are gone (at shutdown).
    pub async fn end_all(&self) {
        let sitters = match self.pool() {
            Some(mut pool) => pool.drain(),
            None => return,
        };
        for sitter in sitters {
            sitter.abort();
            let _ = sitter.await;
        }
    }

    /// Ends the idle warm Blenders of other jobs than `key` (all for `None`): a chunk of
    /// another job has started.
    pub(super) fn end_others(&self, key: Option<&WarmKey>) {
        if let Some(mut pool) = self.pool() {
            pool.end_others(key);
        }
    }

    fn pool(&self) -> Option<MutexGuard<'_, Pool>> {
        let shared = self.shared.as_ref()?;
        Some(shared.pool.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Renders `job`'s frames (an animation's, not a sequence's) on a warm Blender, sending each
/// frame as it is saved. `None`: take the cold path (warm Blenders are off, or cannot start
/// for this job).
pub(super) async fn render(
    job: &RenderJob,
    env: &RenderEnv,
    frames: &mpsc::UnboundedSender<RenderedFrame>,
    control: &mut RenderControl,
) -> Option<RenderOutcome> {
    let shared = env.warm.shared.as_ref()?;
    let key = WarmKey::of(job, env);
    let claim = {
        let mut pool = env.warm.pool()?;
        pool.end_others(Some(&key));
        if pool.is_refused(&key) {
            return None;
        }
        pool.claim(&key)
    };
    let reused = match claim {
        Some(claim) => claim.take().await,
        None => None,
    };
    let range = super::frame_range(&job.frames);
    let mut warm = match reused {
        Some(warm) => {
            tracing::debug!(pid = warm.process.pid(), frames = %range, "reusing a warm Blender");
            warm.process.set_running(true);
            warm
        }
        None => match WarmBlender::start(job, env, key.clone()) {
            Ok(warm) => {
                tracing::debug!(pid = warm.process.pid(), frames = %range, "warm Blender started");
                warm
            }
            Err(err) => {
                tracing::warn!("cannot start a warm Blender ({err}); this job renders without");
                env.warm.pool()?.refuse(key);
                return None;
            }
        },
    };
    let s = &job.settings;
    let id = match warm.request(&job.frames, s.frame_step, s.frame_end).await {
        Ok(id) => id,
        // It is ending: supervision sees the exit and says how.
        Err(err) => {
            tracing::debug!("cannot write to the warm Blender: {err}");
            0
        }
    };
    let run = Run {
        main_file: &job.main_file,
        frames: &job.frames,
        still: false,
    };
    let mut chunk = Chunk {
        tracker: FrameTracker::new(job, &run, frames.clone()).rendering_into(warm.dir.clone()),
        tail: LogTail::default(),
        mark: warm.mark().to_owned(),
        id,
        ready: warm.ready,
        failure: None,
    };
    let (process, lines) = (&mut warm.process, &mut warm.lines);
    let supervision = supervise(process, lines, control, &mut chunk, "blender", false).await;
    warm.ready = chunk.ready;
    if let Some(outcome) = supervision.stop {
        // Ended by us (yield, cancel): never reused; dropping it removes what is left.
        return Some(outcome);
    }
    let status = match supervision.ended {
        Ended::Done => {
            let missing = chunk.tracker.missing();
            if let Some(reason) = chunk.failure {
                return Some(RenderOutcome::Failed {
                    message: format!("blender could not render frames {range}: {reason}"),
                    log_tail: chunk.tail.text(),
                });
            }
            if !missing.is_empty() {
                return Some(RenderOutcome::Failed {
                    message: format!(
                        "blender finished frames {range} but frame(s) {} are missing",
                        super::list(&missing)
                    ),
                    log_tail: chunk.tail.text(),
                });
            }
            if chunk.tracker.saw_fatal() {
                tracing::info!("the warm Blender printed a fatal error: not reusing it");
            } else if let Some(mut pool) = env.warm.pool() {
                let presence = control.presence.clone();
                pool.keep(warm, presence, control.max_suspend, shared.idle_timeout);
            }
            return Some(RenderOutcome::Complete);
        }
        Ended::Exited(status) => status,
    };
    if supervision.lines_open {
        supervise::drain(&mut warm.lines, &mut chunk, "blender").await;
    }
    if !chunk.ready {
        tracing::warn!(
            "the warm Blender ended before our script ran ({status:?}); this job renders without"
        );
        env.warm.pool()?.refuse(key);
        return None;
    }
    let missing = chunk.tracker.missing();
    Some(super::exit_outcome(
        "blender",
        &range,
        status,
        &missing,
        &chunk.tail,
    ))
}

/// What a warm Blender's output goes to while it renders one chunk.
struct Chunk {
    tracker: FrameTracker,
    tail: LogTail,
    /// The start of the driver's lines.
    mark: String,
    /// The chunk's request.
    id: u64,
    /// Whether the driver has said it is ready (now or for an earlier chunk).
    ready: bool,
    /// Why the driver could not render the chunk.
    failure: Option<String>,
}

impl Watcher for Chunk {
    fn on_line(&mut self, line: &str) -> bool {
        match process::parse_said(&self.mark, line) {
            None => {
                self.tracker.on_line(line);
                self.tail.push(line.to_owned());
                false
            }
            Some(Said::Ready) => {
                self.ready = true;
                false
            }
            Some(Said::Done(id)) => id == self.id,
            Some(Said::Failed(id, reason)) if id == self.id => {
                self.failure = Some(reason);
                true
            }
            Some(Said::Failed(..)) => false,
        }
    }
}
