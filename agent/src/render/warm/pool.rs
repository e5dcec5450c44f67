//! The idle warm Blenders: each waits, blocked on its stdin, in a task of its own that applies
//! the presence policy to it (stopped while a person is at the PC, ended after `max_suspend`)
//! and ends it after the idle timeout, until a chunk of its job takes it back.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::WarmKey;
use super::process::WarmBlender;
use crate::presence::Availability;

/// The warm Blenders not rendering now, and the jobs that render without one.
#[derive(Default)]
pub(super) struct Pool {
    idle: Vec<Idle>,
    /// Keys whose warm Blender could not start: their chunks take the cold path.
    refused: HashSet<WarmKey>,
}

/// An idle warm Blender, owned by the task that watches it.
struct Idle {
    key: WarmKey,
    pid: u32,
    /// Asks the task to hand the process back.
    reclaim: oneshot::Sender<()>,
    /// The process, when the task hands it back; `None` when it ended it.
    sitter: JoinHandle<Option<WarmBlender>>,
}

/// An idle warm Blender to take: ask, then await.
pub(super) struct Claim {
    reclaim: oneshot::Sender<()>,
    sitter: JoinHandle<Option<WarmBlender>>,
}

impl Claim {
    /// The process, still alive, or `None` if it ended meanwhile.
    pub(super) async fn take(self) -> Option<WarmBlender> {
        let _ = self.reclaim.send(());
        self.sitter.await.ok().flatten()
    }
}

impl Pool {
    /// Whether `key`'s chunks take the cold path.
    pub(super) fn is_refused(&self, key: &WarmKey) -> bool {
        self.refused.contains(key)
    }

    /// Makes `key`'s chunks take the cold path from now on.
    pub(super) fn refuse(&mut self, key: WarmKey) {
        self.refused.insert(key);
    }

    /// Ends every idle warm Blender not of `key` (all of them for `None`).
    pub(super) fn end_others(&mut self, key: Option<&WarmKey>) {
        self.idle.retain(|idle| {
            let keep = Some(&idle.key) == key && !idle.sitter.is_finished();
            if !keep {
                // The task drops the process, which ends its group.
                idle.sitter.abort();
            }
            keep
        });
    }

    /// An idle warm Blender of `key`, taken out of the pool.
    pub(super) fn claim(&mut self, key: &WarmKey) -> Option<Claim> {
        self.idle.retain(|idle| !idle.sitter.is_finished());
        let at = self.idle.iter().position(|idle| &idle.key == key)?;
        let idle = self.idle.swap_remove(at);
        Some(Claim {
            reclaim: idle.reclaim,
            sitter: idle.sitter,
        })
    }

    /// Keeps `warm` until a chunk claims it, the PC stays in use past `max_suspend`, or
    /// `idle_timeout` passes.
    pub(super) fn keep(
        &mut self,
        warm: WarmBlender,
        presence: watch::Receiver<Availability>,
        max_suspend: Duration,
        idle_timeout: Duration,
    ) {
        warm.process.set_running(false);
        let (reclaim, reclaimed) = oneshot::channel();
        let key = warm.key.clone();
        let pid = warm.process.pid();
        let sitter = tokio::spawn(sit(warm, presence, max_suspend, idle_timeout, reclaimed));
        self.idle.push(Idle {
            key,
            pid,
            reclaim,
            sitter,
        });
    }

    /// Process ids of the idle warm Blenders.
    pub(super) fn idle_pids(&self) -> Vec<u32> {
        (self.idle.iter())
            .filter(|idle| !idle.sitter.is_finished())
            .map(|idle| idle.pid)
            .collect()
    }

    /// Takes every idle warm Blender's task out, to be ended.
    pub(super) fn drain(&mut self) -> Vec<JoinHandle<Option<WarmBlender>>> {
        self.idle.drain(..).map(|idle| idle.sitter).collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.end_others(None);
    }
}

/// Watches an idle warm Blender; returns it when reclaimed, `None` when it ended.
async fn sit(
    mut warm: WarmBlender,
    mut presence: watch::Receiver<Availability>,
    max_suspend: Duration,
    idle_timeout: Duration,
    mut reclaimed: oneshot::Receiver<()>,
) -> Option<WarmBlender> {
    let pid = warm.process.pid();
    let idle_until = Instant::now() + idle_timeout;
    let mut suspend_deadline: Option<Instant> = None;
    let mut presence_open = true;
    let mut lines_open = true;
    let mut available = *presence.borrow_and_update() == Availability::Available;
    loop {
        // The same policy as for a renderer at work, though an idle one uses no CPU: a person's
        // PC runs none of ours while they use it.
        if available && suspend_deadline.is_some() {
            let _ = warm.process.resume();
            suspend_deadline = None;
        } else if !available && suspend_deadline.is_none() {
            let _ = warm.process.suspend();
            suspend_deadline = Some(Instant::now() + max_suspend);
        }
        tokio::select! {
            // Sent, or the pool is gone (then the caller drops it).
            _ = &mut reclaimed => {
                if suspend_deadline.is_some() {
                    let _ = warm.process.resume();
                }
                return Some(warm);
            }
            _ = sleep_until(idle_until) => {
                tracing::debug!(pid, "ending a warm Blender idle for {idle_timeout:?}");
                return None;
            }
            _ = sleep_until(suspend_deadline.unwrap_or(idle_until)), if suspend_deadline.is_some() => {
                tracing::info!(pid, "PC still in use after {max_suspend:?}: ending the idle warm Blender");
                return None;
            }
            changed = presence.changed(), if presence_open => match changed {
                Ok(()) => available = *presence.borrow_and_update() == Availability::Available,
                Err(_) => presence_open = false,
            },
            line = warm.lines.recv(), if lines_open => match line {
                Some(line) => tracing::debug!(target: "idlefarm_agent::renderer", "blender (idle): {line}"),
                None => lines_open = false,
            },
            status = warm.process.wait() => {
                tracing::info!(pid, "an idle warm Blender ended by itself ({status:?})");
                return None;
            }
        }
    }
}
