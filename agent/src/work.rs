//! The lease loop: while the PC is available, ask for a lease, prepare its input, render it,
//! upload every frame as soon as it is finished, and end the lease (complete, yield or failed).
//!
//! One lease at a time, asked for only on a fresh "available" reading of the presence. Frames
//! travel from the renderer to an uploader task through a channel, so uploads overlap rendering. Only network trouble and a full disk give a lease back; any other
//! error with the lease is its failure, reported with the reason, and leases that end badly slow
//! the next request down ([`crate::pace`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::status::{StatusEvent, StatusHub};
use anyhow::Context;
use idlefarm_protocol::{Lease, LeaseEnd, LeaseOutcome, LeaseRequest, PresenceState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::{CacheError, InputCache};
use crate::client::{Client, ClientError};
use crate::heartbeat::{ActiveLease, MAX_BACKOFF, Status};
use crate::pace::{Ending, Pace};
use crate::presence::{Availability, Presence};
use crate::render::{self, RenderControl, RenderEnv, RenderJob, RenderOutcome};
use crate::upload::{UploadReport, upload_frames};

/// How long uploads of finished frames may go on once the agent is shutting down.
const SHUTDOWN_UPLOAD_GRACE: Duration = Duration::from_secs(10);
/// How long the final lease report may take once the agent is shutting down.
const SHUTDOWN_REPORT_GRACE: Duration = Duration::from_secs(5);
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
    /// Where the desktop companion hears about pauses and rendered frames.
    pub hub: StatusHub,
    /// Shared with the heartbeat.
    pub status: Arc<Status>,
    /// Whether the PC may be used.
    pub presence: Arc<dyn Presence>,
}

impl Worker {
    /// Runs leases until `shutdown`; fails only when the coordinator rejects the agent.
    pub async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut presence = self.presence.watch();
        let mut backoff = Duration::ZERO;
        let mut pace = Pace::new(self.setback_wait);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                // Only whether it worked: the value guard must not live across an await.
                ready = async { presence.wait_for(|a| *a == Availability::Available).await.is_ok() } => {
                    if !ready {
                        // The presence source is gone and says "unavailable": wait for shutdown.
                        shutdown.cancelled().await;
                        return Ok(());
                    }
                }
            }
            // "Available" may be a slow poll old; a person may have sat down since. Take work
            // only on a reading as fresh as the one a running renderer is held to.
            let confirmed = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                confirmed = self.presence.confirm() => confirmed,
            };
            if confirmed != Availability::Available {
                continue;
            }
            let request = LeaseRequest {
                presence: PresenceState::Idle,
            };
            let response = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                response = self.client.lease(&request) => response,
            };
            let wait = match response {
                Ok(response) => {
                    backoff = Duration::ZERO;
                    match response.lease {
                        Some(lease) if *presence.borrow() != Availability::Available => {
                            // The PC became busy while the request waited for work: hand the
                            // lease straight back rather than start a render for nobody.
                            let end = end(
                                LeaseOutcome::Yield,
                                Some("a person needs this PC".into()),
                                None,
                            );
                            self.hub.metrics().lease_ended(end.outcome);
                            self.end_lease(lease.id, &end).await;
                            continue;
                        }
                        Some(lease) => {
                            let id = lease.id;
                            let wait = pace.after(self.run_lease(lease, &shutdown).await);
                            if wait.is_zero() {
                                continue;
                            }
                            tracing::warn!(
                                lease = id,
                                "the lease ended without its frames; next request for work in {wait:?}"
                            );
                            wait
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
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Works on one lease from start to report; says how it ended.
    async fn run_lease(&self, lease: Lease, shutdown: &CancellationToken) -> Ending {
        let (suspended_tx, suspended_rx) = watch::channel(false);
        // Tell the person's desktop companion when their PC is handed back to them.
        let mut paused = suspended_rx.clone();
        let hub = self.hub.clone();
        tokio::spawn(async move {
            while paused.changed().await.is_ok() {
                let event = if *paused.borrow_and_update() {
                    StatusEvent::Paused {
                        reason: "a person is using this PC".into(),
                    }
                } else {
                    StatusEvent::Resumed
                };
                hub.publish(event);
            }
        });
        let active = ActiveLease {
            id: lease.id,
            stop: shutdown.child_token(),
            revoked: CancellationToken::new(),
            suspended: suspended_rx,
        };
        self.status.set(Some(active.clone()));
        tracing::info!(
            lease = lease.id,
            job = lease.job_id,
            renderer = lease.settings.renderer.as_str(),
            frames = %render::frame_range(&lease.frames),
            "lease received"
        );
        let out_dir = self.leases_dir.join(lease.id.to_string());
        let ending = match self
            .work_on(&lease, &active, suspended_tx, out_dir.clone())
            .await
        {
            Some((ending, end)) => {
                self.hub.metrics().lease_ended(end.outcome);
                let report = self.end_lease(lease.id, &end);
                if shutdown.is_cancelled() {
                    let _ = tokio::time::timeout(SHUTDOWN_REPORT_GRACE, report).await;
                } else {
                    report.await;
                }
                ending
            }
            // Revoked: the coordinator took the work back.
            None => Ending::Interrupted,
        };
        self.status.set(None);
        if let Err(err) = std::fs::remove_dir_all(&out_dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {err}", out_dir.display());
        }
        ending
    }

    /// Prepares, renders and uploads; returns how the lease ended and the report to send,
    /// `None` for a revoked lease.
    async fn work_on(
        &self,
        lease: &Lease,
        active: &ActiveLease,
        suspended: watch::Sender<bool>,
        out_dir: PathBuf,
    ) -> Option<(Ending, LeaseEnd)> {
        let input = tokio::select! {
            _ = active.stop.cancelled() => {
                return (!active.revoked.is_cancelled()).then(shutting_down);
            }
            input = self.cache.prepare(&self.client, lease) => input,
        };
        let input = match input {
            Ok(input) => input,
            Err(CacheError::OverBudget(why)) => {
                tracing::warn!(lease = lease.id, "declining the lease: {why}");
                // Nothing wrong with the job or this PC: the coordinator offers it elsewhere.
                let end = end(LeaseOutcome::Declined, Some(why.to_string()), None);
                return Some((Ending::Interrupted, end));
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(
                    lease = lease.id,
                    "cannot prepare the input: {err}; giving the lease back"
                );
                return Some(setback(LeaseOutcome::Yield, err.to_string()));
            }
            Err(err) => {
                tracing::warn!(lease = lease.id, "cannot prepare the input: {err}");
                return Some(setback(LeaseOutcome::Failed, err.to_string()));
            }
        };
        if let Err(err) = make_out_dir(&out_dir) {
            tracing::warn!(
                lease = lease.id,
                "cannot create {}: {err}",
                out_dir.display()
            );
            // This PC's trouble either way, but only a full disk may clear by itself.
            let outcome = if crate::cache::is_disk_full(&err) {
                LeaseOutcome::Yield
            } else {
                LeaseOutcome::Failed
            };
            return Some(setback(
                outcome,
                format!("the agent cannot create the lease's output folder: {err}"),
            ));
        }

        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let mut uploader = tokio::spawn(upload_frames(
            self.client.clone(),
            lease.id,
            lease.settings.format,
            frames_rx,
            active.stop.clone(),
        ));
        let job = RenderJob {
            settings: lease.settings.clone(),
            frames: lease.frames.clone(),
            input_root: input.root,
            main_file: input.main_file,
            out_dir,
        };
        let control = RenderControl {
            presence: self.presence.watch(),
            max_suspend: self.max_suspend,
            cancel: active.stop.clone(),
            suspended,
        };
        let outcome = render::render(&job, &self.env, frames_tx, control).await;
        tracing::info!(lease = lease.id, ?outcome, "render ended");

        if active.revoked.is_cancelled() {
            uploader.abort();
            return None;
        }
        let report = if active.stop.is_cancelled() {
            // Shutting down: finished frames get a short while to reach the coordinator.
            match tokio::time::timeout(SHUTDOWN_UPLOAD_GRACE, &mut uploader).await {
                Ok(Ok(report)) => report,
                _ => {
                    uploader.abort();
                    UploadReport::default()
                }
            }
        } else {
            match wait_uploads(&mut uploader, active).await {
                Some(report) => report,
                None if active.revoked.is_cancelled() => return None,
                None => UploadReport::default(),
            }
        };

        for _ in &report.handled {
            self.hub.frame_rendered(lease.job_id);
        }
        Some(match outcome {
            RenderOutcome::Cancelled => shutting_down(),
            RenderOutcome::Yielded => {
                self.hub.publish(StatusEvent::Yielded);
                (
                    Ending::Interrupted,
                    end(
                        LeaseOutcome::Yield,
                        Some("a person needs this PC".into()),
                        None,
                    ),
                )
            }
            RenderOutcome::Failed { message, log_tail } => (
                Ending::Setback,
                end(LeaseOutcome::Failed, Some(message), Some(log_tail)),
            ),
            RenderOutcome::Complete if !report.rejected.is_empty() => {
                let (frame, reason) = &report.rejected[0];
                let message = format!(
                    "the coordinator refused frame {frame}: {reason} ({} frame(s) refused)",
                    report.rejected.len()
                );
                setback(LeaseOutcome::Failed, message)
            }
            RenderOutcome::Complete => {
                let missing: Vec<i64> = lease
                    .frames
                    .iter()
                    .copied()
                    .filter(|f| !report.handled.contains(f))
                    .collect();
                if missing.is_empty() {
                    (Ending::Completed, end(LeaseOutcome::Complete, None, None))
                } else {
                    // Uploads were cut short (shutdown): the rest goes back to the queue.
                    (
                        Ending::Interrupted,
                        end(
                            LeaseOutcome::Yield,
                            Some(format!("frames {missing:?} were not uploaded")),
                            None,
                        ),
                    )
                }
            }
        })
    }

    /// Reports the end of a lease, retrying while the coordinator is unreachable.
    async fn end_lease(&self, lease_id: i64, end: &LeaseEnd) {
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=5 {
            match self.client.end_lease(lease_id, end).await {
                Ok(()) => {
                    tracing::info!(lease = lease_id, outcome = ?end.outcome, "lease ended");
                    return;
                }
                Err(err) if err.is_transient() && attempt < 5 => {
                    tracing::warn!(
                        lease = lease_id,
                        "cannot end the lease ({err}); next try in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                Err(err) => {
                    tracing::warn!(lease = lease_id, "cannot end the lease: {err}");
                    return;
                }
            }
        }
    }
}

/// The report of a lease the agent stops because it is shutting down.
fn shutting_down() -> (Ending, LeaseEnd) {
    let message = Some("the agent is shutting down".into());
    (Ending::Interrupted, end(LeaseOutcome::Yield, message, None))
}

/// The report of a lease that ends badly for a reason other than a person or a shutdown.
fn setback(outcome: LeaseOutcome, message: String) -> (Ending, LeaseEnd) {
    (Ending::Setback, end(outcome, Some(message), None))
}

fn end(outcome: LeaseOutcome, message: Option<String>, log_tail: Option<String>) -> LeaseEnd {
    LeaseEnd {
        outcome,
        message,
        log_tail: log_tail.filter(|t| !t.is_empty()),
    }
}

/// Waits for the uploader to finish; `None` if the lease was stopped meanwhile.
async fn wait_uploads(
    uploader: &mut JoinHandle<UploadReport>,
    active: &ActiveLease,
) -> Option<UploadReport> {
    tokio::select! {
        report = &mut *uploader => report.ok(),
        _ = active.stop.cancelled() => {
            if !active.revoked.is_cancelled() {
                // Shutdown while uploading: a short grace, then what we have.
                if let Ok(Ok(report)) = tokio::time::timeout(SHUTDOWN_UPLOAD_GRACE, &mut *uploader).await {
                    return Some(report);
                }
            }
            uploader.abort();
            None
        }
    }
}

/// Creates the lease's output directory afresh, 0755.
fn make_out_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}
