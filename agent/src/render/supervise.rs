//! Watching one renderer process while it works: its output, the presence policy (SIGSTOP while
//! a person is at the PC, the end after `max_suspend`), cancellation, and SIGKILL for a renderer
//! that ignores SIGTERM. Shared by one-off renderers, which are done when they exit, and warm
//! Blenders, which are done with a chunk when they say so and live on.

use std::process::ExitStatus;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::process::RendererProcess;
use super::{DRAIN_TIMEOUT, KILL_GRACE, POVRAY_POLL, RenderControl, RenderOutcome};
use crate::presence::Availability;

/// What reads a renderer's output while it is supervised.
pub(super) trait Watcher: Send {
    /// Takes one output line; true when the work asked of the renderer is done (a warm Blender's
    /// end-of-chunk line).
    fn on_line(&mut self, line: &str) -> bool;

    /// Looks for finished frames on disk (POV-Ray's, every [`POVRAY_POLL`]).
    fn poll(&mut self) {}
}

/// How supervision ended.
pub(super) enum Ended {
    /// The renderer exited.
    Exited(std::io::Result<ExitStatus>),
    /// The watcher said the work is done; the renderer still runs.
    Done,
}

/// The end of a supervision.
pub(super) struct Supervision {
    /// Exit or done.
    pub ended: Ended,
    /// Set when we ended the renderer (yield, cancel); it has exited then.
    pub stop: Option<RenderOutcome>,
    /// Whether the output channel is still open (lines may be left to drain).
    pub lines_open: bool,
}

/// Supervises `child` until it exits, or until `watcher` says its work is done (never after we
/// began ending it). `poll` asks for [`Watcher::poll`] at intervals.
pub(super) async fn supervise(
    child: &mut RendererProcess,
    lines: &mut mpsc::Receiver<String>,
    control: &mut RenderControl,
    watcher: &mut dyn Watcher,
    name: &str,
    poll: bool,
) -> Supervision {
    let mut stop: Option<RenderOutcome> = None;
    let mut suspend_deadline: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut presence_open = true;
    let mut lines_open = true;
    let mut ticks = tokio::time::interval(POVRAY_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // The PC may have become unavailable between the lease and the start of the renderer.
    if *control.presence.borrow_and_update() != Availability::Available {
        suspend_deadline = set_suspended(child, true, control);
    }

    let ended = loop {
        tokio::select! {
            status = child.wait() => break Ended::Exited(status),
            _ = control.cancel.cancelled(), if stop.is_none() => {
                tracing::debug!(renderer = name, "render cancelled");
                stop = Some(RenderOutcome::Cancelled);
                suspend_deadline = None;
                let _ = child.terminate();
                kill_at = Some(Instant::now() + KILL_GRACE);
            }
            changed = control.presence.changed(), if presence_open && stop.is_none() => {
                if changed.is_err() {
                    presence_open = false;
                    continue;
                }
                let available = *control.presence.borrow_and_update() == Availability::Available;
                let stopped = suspend_deadline.is_some();
                if available == stopped {
                    suspend_deadline = set_suspended(child, !available, control);
                }
            }
            _ = sleep_until(suspend_deadline.unwrap_or_else(Instant::now)), if suspend_deadline.is_some() => {
                tracing::info!(renderer = name, "PC still in use after {:?}: ending the renderer and yielding", control.max_suspend);
                suspend_deadline = None;
                stop = Some(RenderOutcome::Yielded);
                let _ = child.terminate();
                kill_at = Some(Instant::now() + KILL_GRACE);
            }
            _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                tracing::warn!(renderer = name, "renderer ignored SIGTERM; killing it");
                kill_at = None;
                let _ = child.kill();
            }
            line = lines.recv(), if lines_open => match line {
                Some(line) => {
                    tracing::debug!(target: "idlefarm_agent::renderer", "{name}: {line}");
                    if watcher.on_line(&line) && stop.is_none() {
                        break Ended::Done;
                    }
                }
                None => lines_open = false,
            },
            _ = ticks.tick(), if poll => watcher.poll(),
        }
    };
    Supervision {
        ended,
        stop,
        lines_open,
    }
}

/// Reads what is left of the output of a renderer that exited (a leftover child may hold the
/// pipe, hence the time limit). Blender prints a frame's `Saved:` line just before exiting.
pub(super) async fn drain(
    lines: &mut mpsc::Receiver<String>,
    watcher: &mut dyn Watcher,
    name: &str,
) {
    let until = Instant::now() + DRAIN_TIMEOUT;
    while let Ok(Some(line)) = tokio::time::timeout_at(until, lines.recv()).await {
        tracing::debug!(target: "idlefarm_agent::renderer", "{name}: {line}");
        watcher.on_line(&line);
    }
}

/// Stops (SIGSTOP) or continues (SIGCONT) the renderer; returns the new suspend deadline.
fn set_suspended(
    child: &RendererProcess,
    suspend: bool,
    control: &RenderControl,
) -> Option<Instant> {
    let result = if suspend {
        child.suspend()
    } else {
        child.resume()
    };
    if let Err(err) = result {
        tracing::warn!(suspend, "cannot signal the renderer: {err}");
    }
    control.suspended.send_replace(suspend);
    if suspend {
        tracing::info!("PC in use: renderer stopped");
        Some(Instant::now() + control.max_suspend)
    } else {
        tracing::info!("PC available again: renderer continues");
        None
    }
}
