//! The lease loop: while the PC is available, ask for a lease and work on it ([`lease`]),
//! more than one at once when the renderers leave cores idle ([`crate::parallel`]).
//!
//! Work is asked for only on a fresh "available" reading of the presence. The first lease is
//! always asked for; a further one only while every lease held is rendering and the measured
//! renderers leave about a core idle and memory to spare, never more than `max_parallel`; each
//! request offers the coordinator as many chunk slots as would run at once by the renderers'
//! last measured use (one for a renderer that fills the cores), so it splits the end of a job
//! for those and no more. One request is under way at a time, and each lease runs in a task of its own, so a slow request
//! (the coordinator long-polls) never holds up a running lease. Every renderer watches the
//! presence itself, so all of them stop and yield for a person together. Leases that end badly
//! slow the next request down ([`crate::pace`]).

mod lease;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use idlefarm_protocol::{LeaseOutcome, LeaseRequest, LeaseResponse, PresenceState};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::cache::InputCache;
use crate::client::{Client, ClientError};
use crate::heartbeat::{MAX_BACKOFF, Status};
use crate::pace::{Ending, Pace};
use crate::parallel::{self, Governor, Load, Meter, ParallelLimits};
use crate::presence::{Availability, Presence};
use crate::render::{self, RenderEnv};
use crate::status::{StatusEvent, StatusHub};

/// Shortest wait before asking again for work after "none".
const MIN_RETRY: Duration = Duration::from_millis(250);

/// Everything the lease loop works with.
pub struct Worker {
    /// The coordinator.
    pub client: Arc<Client>,
    /// Downloaded inputs.
    pub cache: InputCache,
    /// Renderer programs and account.
    pub env: RenderEnv,
    /// `work_dir/leases`.
    pub leases_dir: PathBuf,
    /// See [`crate::AgentConfig::max_suspend`].
    pub max_suspend: Duration,
    /// See [`crate::AgentConfig::setback_wait`].
    pub setback_wait: Duration,
    /// How many chunks may run at once.
    pub parallel: ParallelLimits,
    /// Where the desktop companion hears about pauses and rendered frames.
    pub hub: StatusHub,
    /// Shared with the heartbeat.
    pub status: Arc<Status>,
    /// Whether the PC may be used.
    pub presence: Arc<dyn Presence>,
    /// What the lease tasks tell the loop and each other.
    pub(crate) shared: Arc<Shared>,
}

type Asking = Pin<Box<dyn Future<Output = Result<LeaseResponse, ClientError>> + Send>>;

impl Worker {
    /// Runs leases until `shutdown`; fails only when the coordinator rejects the agent.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks: JoinSet<(i64, Ending)> = JoinSet::new();
        let result = self.serve(&shutdown, &mut tasks).await;
        // Shutting down: each lease ends its render and reports, within its graces.
        while tasks.join_next().await.is_some() {}
        result
    }

    async fn serve(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
        tasks: &mut JoinSet<(i64, Ending)>,
    ) -> anyhow::Result<()> {
        let mut presence = self.presence.watch();
        let governor = Governor::new(self.parallel);
        let mut meter = Meter::new();
        let mut asking: Option<Asking> = None;
        let mut backoff = Duration::ZERO;
        let mut pace = Pace::new(self.setback_wait);
        let mut not_before = Instant::now();
        let mut sample = tokio::time::interval(parallel::SAMPLE_EVERY);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut presence_open = true;
        // What the renderers used when last measured: how many chunks the agent offers.
        let mut last_usage = None;
        loop {
            let available = *presence.borrow() == Availability::Available;
            if asking.is_none() && available && Instant::now() >= not_before {
                let load = Load {
                    leases: tasks.len(),
                    measured: self.shared.measured(),
                    usage: meter.usage(),
                    mem_available: if tasks.is_empty() {
                        0
                    } else {
                        parallel::mem_available()
                    },
                    cores: parallel::cores(),
                };
                match governor.may_open(&load) {
                    Ok(()) => {
                        // "Available" may be a slow poll old; a person may have sat down
                        // since. Take work only on a reading as fresh as the one a running
                        // renderer is held to.
                        let confirmed = tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            confirmed = self.presence.confirm() => confirmed,
                        };
                        if confirmed == Availability::Available {
                            if !tasks.is_empty() {
                                tracing::debug!(held = tasks.len(), ?load.usage, "asking for one more chunk");
                            }
                            // While it renders the agent says so; the coordinator shows it.
                            let request = LeaseRequest {
                                presence: match tasks.is_empty() {
                                    true => PresenceState::Idle,
                                    false => PresenceState::Rendering,
                                },
                                // So the coordinator splits a job's end between the chunks
                                // we would run at once: one for a renderer that fills the
                                // cores.
                                slots: governor
                                    .slots(last_usage, parallel::cores())
                                    .min(idlefarm_protocol::MAX_SLOTS as usize)
                                    as u32,
                            };
                            let client = self.client.clone();
                            asking = Some(Box::pin(async move { client.lease(&request).await }));
                        }
                    }
                    Err(why) => tracing::trace!(?why, "no further chunk now"),
                }
            }
            if !presence_open && !available && tasks.is_empty() && asking.is_none() {
                // The presence source is gone and says "unavailable" for good: wait for
                // shutdown. (A source that is gone saying "available", such as
                // `AlwaysAvailable`, stays so.)
                shutdown.cancelled().await;
                return Ok(());
            }
            let rendering = self.shared.rendering_now() > 0;
            let working = !tasks.is_empty();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                response = async { asking.as_mut().expect("guarded").await }, if asking.is_some() => {
                    asking = None;
                    let wait = match response {
                        Ok(response) => {
                            backoff = Duration::ZERO;
                            match response.lease {
                                Some(lease) if *presence.borrow() != Availability::Available => {
                                    // The PC became busy while the request waited for work: hand
                                    // the lease straight back rather than start a render for
                                    // nobody.
                                    let end = lease::end(
                                        LeaseOutcome::Yield,
                                        Some("a person needs this PC".into()),
                                        None,
                                    );
                                    self.hub.metrics().lease_ended(end.outcome);
                                    self.end_lease(lease.id, &end).await;
                                    Duration::ZERO
                                }
                                Some(lease) => {
                                    let worker = self.clone();
                                    let stop = shutdown.clone();
                                    let id = lease.id;
                                    tasks.spawn(async move { (id, worker.run_lease(lease, &stop).await) });
                                    Duration::ZERO
                                }
                                None => Duration::from_secs(response.retry_after_secs).max(MIN_RETRY),
                            }
                        }
                        Err(ClientError::Unauthorized) => {
                            return Err(ClientError::Unauthorized).context("asking for work");
                        }
                        Err(err) => {
                            backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                            tracing::warn!("cannot ask for work ({err}); next try in {backoff:?}");
                            backoff
                        }
                    };
                    not_before = not_before.max(Instant::now() + wait);
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok((id, ending)) = done else { continue };
                    let wait = pace.after(ending);
                    if !wait.is_zero() {
                        tracing::warn!(
                            lease = id,
                            "the lease ended without its frames; next request for work in {wait:?}"
                        );
                        not_before = not_before.max(Instant::now() + wait);
                    }
                }
                // While leases are held, so a lease that starts rendering is measured at once.
                _ = sample.tick(), if working => {
                    meter.sample(&render::process::running_groups(), std::time::Instant::now());
                    // Only renderers past their start say what a chunk of theirs uses.
                    let settled = self.shared.measured() == self.shared.rendering_now();
                    if let Some(usage) = meter.usage().filter(|u| u.renderers > 0 && settled) {
                        last_usage = Some(usage);
                    }
                }
                changed = presence.changed(), if presence_open => {
                    if changed.is_err() {
                        presence_open = false;
                    }
                }
                _ = sleep_until(not_before), if not_before > Instant::now() => {}
            }
            if !rendering {
                // Nothing renders: the next measurement starts afresh.
                meter.sample(&[], std::time::Instant::now());
            }
        }
    }
}

/// What the lease tasks share with the loop: which leases render (and since their first frame),
/// and the one pause every renderer takes for a person.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Leases rendering, with when their first frame arrived: a renderer is judged on its CPU
    /// use only past its start (loading the scene, compiling shaders), which runs on one core
    /// however many the frames then use.
    rendering: Mutex<HashMap<i64, Option<std::time::Instant>>>,
    pauses: Mutex<Pauses>,
}

#[derive(Debug, Default)]
struct Pauses {
    /// Leases whose renderer is stopped for a person.
    stopped: usize,
    /// Whether this pause was already announced as a yield.
    yielded: bool,
}

/// Marks a lease as rendering until dropped.
pub(crate) struct Rendering {
    shared: Arc<Shared>,
    id: i64,
}

impl Drop for Rendering {
    fn drop(&mut self) {
        lock(&self.shared.rendering).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Marks lease `id` as rendering while the returned guard lives.
    fn rendering(self: &Arc<Self>, id: i64) -> Rendering {
        lock(&self.rendering).insert(id, None);
        Rendering {
            shared: self.clone(),
            id,
        }
    }

    /// Lease `id` delivered its first frame.
    fn framed(&self, id: i64) {
        if let Some(since) = lock(&self.rendering).get_mut(&id) {
            since.get_or_insert_with(std::time::Instant::now);
        }
    }

    /// Leases rendering now.
    fn rendering_now(&self) -> usize {
        lock(&self.rendering).len()
    }

    /// Leases that have rendered for a whole measuring window since their first frame.
    fn measured(&self) -> usize {
        lock(&self.rendering)
            .values()
            .filter(|since| since.is_some_and(|s| s.elapsed() >= parallel::WINDOW))
            .count()
    }

    /// A lease's renderer stopped (or continued) for a person: the event to announce, once
    /// for all the renderers that stop together.
    fn pause_changed(&self, stopped: bool) -> Option<StatusEvent> {
        let mut pauses = lock(&self.pauses);
        if stopped {
            pauses.stopped += 1;
            if pauses.stopped == 1 {
                pauses.yielded = false;
                return Some(StatusEvent::Paused {
                    reason: "a person is using this PC".into(),
                });
            }
        } else {
            pauses.stopped = pauses.stopped.saturating_sub(1);
            if pauses.stopped == 0 {
                return Some(StatusEvent::Resumed);
            }
        }
        None
    }

    /// A lease ended while its renderer was stopped: it no longer holds the pause, and
    /// nothing resumes.
    fn pause_released(&self) {
        let mut pauses = lock(&self.pauses);
        pauses.stopped = pauses.stopped.saturating_sub(1);
    }

    /// Whether this is the first lease given back for the current pause (announced once).
    fn first_yield(&self) -> bool {
        let mut pauses = lock(&self.pauses);
        !std::mem::replace(&mut pauses.yielded, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_that_stop_together_announce_one_pause_one_resume_and_one_yield() {
        let shared = Arc::new(Shared::default());
        assert!(matches!(
            shared.pause_changed(true),
            Some(StatusEvent::Paused { .. })
        ));
        assert_eq!(shared.pause_changed(true), None);
        assert_eq!(shared.pause_changed(false), None);
        assert_eq!(shared.pause_changed(false), Some(StatusEvent::Resumed));
        // Stopped again, and both chunks are given back.
        assert!(shared.pause_changed(true).is_some());
        assert_eq!(shared.pause_changed(true), None);
        assert!(shared.first_yield());
        assert!(!shared.first_yield());
        shared.pause_released();
        shared.pause_released();
        assert!(
            shared.pause_changed(true).is_some(),
            "a new pause is announced"
        );
        assert!(shared.first_yield(), "and may be announced as a yield");
    }

    #[test]
    fn rendering_leases_are_counted_while_their_guards_live() {
        let shared = Arc::new(Shared::default());
        let a = shared.rendering(1);
        let b = shared.rendering(2);
        assert_eq!(shared.rendering_now(), 2);
        assert_eq!(shared.measured(), 0, "not rendered for a window yet");
        shared.framed(1);
        assert_eq!(shared.measured(), 0, "a first frame just now");
        // Measured a window after the first frame, however long the start took.
        lock(&shared.rendering).insert(1, Some(std::time::Instant::now() - parallel::WINDOW));
        shared.framed(1);
        assert_eq!(
            shared.measured(),
            1,
            "a later frame does not restart the window"
        );
        shared.framed(7);
        assert_eq!(
            shared.rendering_now(),
            2,
            "frames of no rendering lease are ignored"
        );
        drop(a);
        assert_eq!(shared.rendering_now(), 1);
        drop(b);
        assert_eq!(shared.rendering_now(), 0);
    }
}
