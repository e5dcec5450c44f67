//! Frames are checked before they count: the coordinator's side of [`crate::schedule::check`].
//!
//! An upload first gets its [`FrameContext`] under the scheduler lock (the lease may deliver the
//! frame, the frame's check if it is held, its done neighbours, whether it is in the `--verify`
//! sample); the image is then measured and judged outside the lock
//! ([`super::frame_verdict`]); [`Coordinator::record_frame`] finally records the [`Outcome`]: a
//! done frame (and the PCs its check blamed, as wrong-frame failure records that count towards
//! quarantine), or a render held for another PC's opinion. When the last frame is done, the
//! frames that had no neighbours to compare with when they arrived are reviewed once more
//! before the video is made.

use std::collections::HashMap;

use idlefarm_protocol::{AgentMode, FailureInfo, JobState, RenderSettings, frame_file_name};

use super::Coordinator;
use super::state::{JobEntry, check_rendering, now_ms, reject_message};
use crate::error::ApiError;
use crate::schedule::check::{self, Blame, Candidate, Check, Look, Suspicion};
use crate::schedule::{self, AgentView, FailureRecord, FrameState, LeaseId};

/// What an upload needs to know of the frame it delivers.
#[derive(Debug, Clone)]
pub(crate) struct FrameContext {
    /// The job.
    pub job: i64,
    /// How it renders.
    pub settings: RenderSettings,
    /// The frame's check, when earlier renders of it are held.
    pub check: Option<Check>,
    /// Its nearest done neighbours and their looks.
    pub neighbours: Vec<(i64, Look)>,
    /// Whether it must be rendered on two PCs (the `--verify` sample, with another PC there).
    pub sample: bool,
    /// Names of the PCs involved (the uploader and those whose renders are held).
    pub names: HashMap<i64, String>,
}

impl FrameContext {
    /// A PC's name for notes and messages.
    pub fn name(&self, agent: i64) -> String {
        self.names
            .get(&agent)
            .cloned()
            .unwrap_or_else(|| format!("PC {agent}"))
    }
}

/// What becomes of a received frame.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The frame is done; its image is stored under its own name.
    Done {
        /// Whose render was kept.
        agent: i64,
        /// What it looks like.
        look: Look,
        /// How its check ended, if it was checked.
        note: Option<String>,
        /// PCs whose renders disagreed with the one kept.
        blame: Vec<Blame>,
    },
    /// The render is held (stored as `candidate.file`) until another PC renders the frame.
    Held {
        /// The render.
        candidate: Candidate,
        /// Why the frame is checked (used when this starts its check).
        reason: Suspicion,
    },
}

/// Where a held render of `frame` by `agent` is kept, relative to the job's frames folder.
pub(crate) fn candidate_file(
    frame: i64,
    agent: i64,
    format: idlefarm_protocol::ImageFormat,
) -> String {
    format!("check/{}-pc{agent}.{}", frame, format.extension())
}

impl Coordinator {
    /// The context of `frame` delivered with `lease`: refused unless the agent holds (or held)
    /// the lease, the frame is one of its frames and the job still wants it.
    pub(crate) async fn frame_context(
        &self,
        agent: i64,
        lease: LeaseId,
        frame: i64,
    ) -> Result<FrameContext, ApiError> {
        let sched = self.sched.lock().await;
        let owner = match sched.lease_owner.get(&lease) {
            Some(owner) if owner.agent == agent => owner,
            _ => {
                return Err(ApiError::conflict(format!(
                    "lease {lease} is not held by this agent"
                )));
            }
        };
        let job = owner.job;
        let entry = sched
            .jobs
            .get(&job)
            .ok_or_else(|| ApiError::conflict("job is gone"))?;
        if !owner.covers(frame) {
            return Err(ApiError::conflict(format!(
                "frame {frame} is not part of lease {lease} ({}); upload only the frames the lease was given",
                owner.describe_frames()
            )));
        }
        check_rendering(entry)?;
        let i = reject_message(entry.board.wants(frame), frame)?;
        let slot = &entry.board.frames[i];
        let sample = slot.check.is_none()
            && check::sampled(job, frame, self.config.verify_percent)
            && self
                .others_could_render(&sched.failures, entry, agent, now_ms())
                .await;
        let names = {
            let agents = self.agents.read().await;
            let involved = (slot.check.iter())
                .flat_map(|c| c.candidates.iter().map(|c| c.agent))
                .chain([agent]);
            involved
                .filter_map(|id| agents.get(&id).map(|row| (id, row.name.clone())))
                .collect()
        };
        Ok(FrameContext {
            job,
            settings: entry.row.settings.clone(),
            check: slot.check.clone(),
            neighbours: entry.board.neighbours(i),
            sample,
            names,
        })
    }

    /// Whether some PC other than `agent` could render frames of `entry` now or soon: heard
    /// from within the lease time, not disabled, not quarantined, and fit for the job
    /// (renderer, tags, not blocklisted). Its presence does not matter: a PC in use now is
    /// worth waiting for (for a while, see [`check::WAIT_FOR_OTHERS_MS`]).
    pub(crate) async fn others_could_render(
        &self,
        failures: &HashMap<i64, Vec<FailureRecord>>,
        entry: &JobEntry,
        agent: i64,
        now: i64,
    ) -> bool {
        let live: Vec<i64> = {
            let window = self.config.lease_ttl;
            let liveness = self.liveness.lock().expect("not poisoned");
            (liveness.iter())
                .filter(|&(&id, l)| id != agent && l.at.elapsed() < window)
                .map(|(&id, _)| id)
                .collect()
        };
        if live.is_empty() {
            return false;
        }
        let agents = self.agents.read().await;
        let job = entry.view();
        live.iter().filter_map(|id| agents.get(id)).any(|row| {
            let records = failures.get(&row.id).map_or(&[][..], Vec::as_slice);
            let health = schedule::assess(records, now, &self.config.health);
            let renderers: Vec<_> = row.renderers.iter().map(|r| r.renderer).collect();
            let view = AgentView {
                id: row.id,
                renderers: &renderers,
                tags: &row.tags,
                mode: row.mode,
                may_take_work: true,
                health: &health,
            };
            row.mode != AgentMode::Disabled
                && !health.is_quarantined(now)
                && schedule::misfit(&job, &view).is_none()
        })
    }

    /// Records what became of a received frame of `job` that `agent` delivered: done (then
    /// the blamed PCs' wrong frames are recorded, held renders no longer needed are removed,
    /// and a job whose last frame this was is reviewed and assembled) or held for a second
    /// opinion. A frame the job no longer wants is refused and its new file removed.
    pub(crate) async fn record_frame(
        &self,
        agent: i64,
        job: i64,
        frame: i64,
        outcome: Outcome,
    ) -> Result<(), ApiError> {
        let mut guard = self.sched.lock().await;
        let sched = &mut *guard;
        let entry = sched
            .jobs
            .get_mut(&job)
            .ok_or_else(|| ApiError::conflict("job is gone"))?;
        let format = entry.row.settings.format;
        let frames_dir = self.data.frames_dir(job);
        let now = now_ms();
        let own_file = match &outcome {
            Outcome::Done { .. } => frame_file_name(frame, format),
            Outcome::Held { candidate, .. } => candidate.file.clone(),
        };
        let wanted =
            check_rendering(entry).and_then(|()| reject_message(entry.board.wants(frame), frame));
        let i = match wanted {
            Ok(i) => i,
            Err(e) => {
                let done = entry
                    .board
                    .index_of(frame)
                    .is_some_and(|i| matches!(entry.board.frames[i].state, FrameState::Done(_)));
                if !done || matches!(outcome, Outcome::Held { .. }) {
                    let _ = std::fs::remove_file(frames_dir.join(&own_file));
                }
                return Err(e);
            }
        };
        let mut blamed = Vec::new();
        match outcome {
            Outcome::Held { candidate, reason } => {
                tracing::info!(
                    job,
                    frame,
                    agent,
                    "frame held for another PC's render: {reason}"
                );
                entry.board.hold(frame, candidate, reason, now).ok();
                self.store.write_frames(job, &entry.board, &[i]).await?;
                self.work.ring_all();
            }
            Outcome::Done {
                agent: kept_by,
                look,
                note,
                blame,
            } => {
                let held = (entry.board.frames[i].check.as_ref())
                    .map(|c| c.candidates.clone())
                    .unwrap_or_default();
                if let Some(note) = &note {
                    tracing::info!(job, frame, "frame check ended: {note}");
                }
                entry
                    .board
                    .frame_done(frame, kept_by, now, Some(look), note)
                    .map_err(|r| reject_message(Err(r), frame).unwrap_err())?;
                self.store
                    .frame_done(job, &entry.board, i, &own_file, now)
                    .await?;
                self.metrics.frame_done();
                entry.row.latest_frame = Some(frame);
                self.frame_arrived(entry, i, agent, kept_by).await?;
                for b in blame {
                    self.record_wrong_frame(sched, job, frame, &b, now).await?;
                    blamed.push(b.agent);
                }
                for c in held {
                    let _ = std::fs::remove_file(frames_dir.join(&c.file));
                }
                // Gone once no frame waits for another render (it fails while one does).
                let _ = std::fs::remove_dir(frames_dir.join("check"));
                let entry = sched
                    .jobs
                    .get_mut(&job)
                    .ok_or_else(|| ApiError::conflict("job is gone"))?;
                if entry.board.is_complete() && !self.review(entry, now).await? {
                    self.set_state(entry, JobState::Assembling, None).await?;
                    let _ = self.assemble_tx.send(job);
                }
            }
        }
        drop(guard);
        self.frame_changed(job, frame).await;
        self.job_changed(job).await;
        for agent in blamed {
            self.agent_changed(agent);
        }
        Ok(())
    }

    /// Records a PC's render that the kept one outvoted, as a wrong-frame failure of its lease.
    async fn record_wrong_frame(
        &self,
        sched: &mut super::state::Sched,
        job: i64,
        frame: i64,
        blame: &Blame,
        now: i64,
    ) -> Result<(), ApiError> {
        tracing::warn!(
            job,
            frame,
            agent = blame.agent,
            "wrong frame: {}",
            blame.message
        );
        let failure = FailureInfo {
            at: now / 1000,
            agent_id: blame.agent,
            lease_id: blame.lease,
            frames: vec![frame],
            message: blame.message.clone(),
            log_tail: None,
        };
        self.store.record_failure(&failure, job, now, true).await?;
        sched
            .failures
            .entry(blame.agent)
            .or_default()
            .push(FailureRecord {
                job,
                at: now,
                wrong_frame: true,
            });
        Ok(())
    }

    /// Once every frame is done: puts the frames that look wrong against their neighbours and
    /// were never checked back in the queue, each held for another PC's render. Returns whether
    /// any was.
    async fn review(&self, entry: &mut JobEntry, now: i64) -> Result<bool, ApiError> {
        let found = entry.board.review();
        if found.is_empty() {
            return Ok(false);
        }
        let job = entry.row.id;
        let format = entry.row.settings.format;
        let dir = self.data.frames_dir(job);
        std::fs::create_dir_all(dir.join("check"))?;
        let mut changed = Vec::new();
        for (i, reason) in found {
            let f = &entry.board.frames[i];
            let (FrameState::Done(agent), Some(look)) = (f.state, f.look) else {
                continue;
            };
            let frame = f.frame;
            let file = candidate_file(frame, agent, format);
            // A rename in one folder: no data is copied while the lock is held.
            std::fs::rename(dir.join(frame_file_name(frame, format)), dir.join(&file))?;
            tracing::info!(
                job,
                frame,
                "frame looks wrong among its neighbours: {reason}"
            );
            let candidate = Candidate {
                agent,
                lease: 0,
                file,
                look,
                looked_wrong: true,
            };
            entry.board.reopen(
                i,
                Check {
                    reason,
                    since: now,
                    candidates: vec![candidate],
                },
            );
            changed.push(i);
        }
        self.store.write_frames(job, &entry.board, &changed).await?;
        self.work.ring_all();
        Ok(!changed.is_empty())
    }
}
