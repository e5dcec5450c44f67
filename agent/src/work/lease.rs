//! One lease from start to report: prepare its input, render it, upload every frame as soon
//! as it is finished, and end the lease (complete, yield or failed).
//!
//! Frames travel from the renderer to an uploader task through a channel, so uploads overlap
//! rendering. Only network trouble and a full disk give a lease back; any other error with the
//! lease is its failure, reported with the reason.

use std::path::PathBuf;
use std::time::Duration;

use idlefarm_protocol::{Lease, LeaseEnd, LeaseOutcome};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::cache::CacheError;
use crate::heartbeat::{ActiveLease, MAX_BACKOFF};
use crate::pace::Ending;
use crate::render::{self, RenderControl, RenderJob, RenderOutcome};
use crate::status::StatusEvent;
use crate::upload::{UploadReport, upload_frames};

/// How long uploads of finished frames may go on once the agent is shutting down.
const SHUTDOWN_UPLOAD_GRACE: Duration = Duration::from_secs(10);
/// How long the final lease report may take once the agent is shutting down.
const SHUTDOWN_REPORT_GRACE: Duration = Duration::from_secs(5);

impl Worker {
    /// Works on one lease from start to report; says how it ended.
    pub(super) async fn run_lease(&self, lease: Lease, shutdown: &CancellationToken) -> Ending {
        let (suspended_tx, suspended_rx) = watch::channel(false);
        // Tell the person's desktop companion when their PC is handed back to them: once for
        // all the chunks that stop together.
        let mut paused = suspended_rx.clone();
        let shared = self.shared.clone();
        let hub = self.hub.clone();
        tokio::spawn(async move {
            let mut stopped = false;
            while paused.changed().await.is_ok() {
                let now = *paused.borrow_and_update();
                if now != stopped {
                    stopped = now;
                    if let Some(event) = shared.pause_changed(now) {
                        hub.publish(event);
                    }
                }
            }
            // The lease is over (ended for the person, or stopped while paused): it no longer
            // holds the pause, and nothing resumes.
            if stopped {
                shared.pause_released();
            }
        });
        let active = ActiveLease {
            id: lease.id,
            stop: shutdown.child_token(),
            revoked: CancellationToken::new(),
            suspended: suspended_rx,
        };
        self.status.add(active.clone());
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
        self.status.remove(lease.id);
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
        // The hold keeps the input in the cache until this lease is over.
        let (input, _hold) = match input {
            Ok(prepared) => prepared,
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

        let (frames_tx, mut rendered) = mpsc::unbounded_channel::<render::RenderedFrame>();
        let (to_upload, frames_rx) = mpsc::unbounded_channel();
        // Frames pass on to the uploader; the first one marks the renderer as past its start,
        // from when its CPU use counts for parallel chunks.
        let shared = self.shared.clone();
        let id = lease.id;
        tokio::spawn(async move {
            let mut first = true;
            while let Some(frame) = rendered.recv().await {
                if std::mem::take(&mut first) {
                    shared.framed(id);
                }
                if to_upload.send(frame).is_err() {
                    break;
                }
            }
        });
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
        let outcome = {
            // Measured for parallel chunks while it renders.
            let _rendering = self.shared.rendering(lease.id);
            render::render(&job, &self.env, frames_tx, control).await
        };
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
                if self.shared.first_yield() {
                    self.hub.publish(StatusEvent::Yielded);
                }
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
    pub(super) async fn end_lease(&self, lease_id: i64, end: &LeaseEnd) {
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

pub(super) fn end(
    outcome: LeaseOutcome,
    message: Option<String>,
    log_tail: Option<String>,
) -> LeaseEnd {
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
