//! The farm the model drives: the coordinator's bookkeeping around the boards, written the
//! plain way, and the safety rules checked after every event.

use std::collections::HashMap;

use idlefarm_protocol::Renderer;
use proptest::prelude::*;

use super::events::{Event, renderers, tags};
use crate::schedule::check::{self, Candidate, Look, Suspicion};
use crate::schedule::{
    AgentMode, AgentView, Board, FailureRecord, FrameState, Health, HealthPolicy, JobStatus,
    JobView, LeaseEnding, LeaseId, MAX_FRAME_FAILURES, Millis, all_blocklisted, assess, misfit,
    pick_order,
};

const TTL: Millis = 2_000;
/// Tighter than the default so quarantines happen often within a few hundred events.
const POLICY: HealthPolicy = HealthPolicy {
    blocklist_after: 3,
    quarantine_jobs: 2,
    quarantine_window_ms: 60_000,
    quarantine_wrong_frames: 2,
    forgive_ms: 15_000,
};

/// A job as the coordinator holds it.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) owner: Option<i64>,
    pub(super) priority: i64,
    pub(super) status: JobStatus,
    pub(super) renderer: Renderer,
    pub(super) tags: Vec<String>,
    pub(super) board: Board,
    /// Deliveries accepted per frame in the current generation (a re-render starts a new one).
    pub(super) delivered: Vec<u32>,
}

/// An agent as the coordinator knows it: what it can do, its modes and failure records.
#[derive(Debug, Clone)]
pub(super) struct Agent {
    pub(super) renderers: Vec<Renderer>,
    pub(super) tags: Vec<String>,
    pub(super) mode: AgentMode,
    pub(super) present: bool,
    pub(super) failures: Vec<FailureRecord>,
}

/// A lease as its agent sees it: kept after the board ended it, so late uploads happen.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) lease: LeaseId,
    pub(super) job: usize,
    pub(super) agent: usize,
    pub(super) frames: Vec<i64>,
}

/// Every job and agent, the leases agents believe they hold, and the clock.
pub(super) struct Farm {
    pub(super) jobs: Vec<Job>,
    pub(super) agents: Vec<Agent>,
    pub(super) held: Vec<Held>,
    pub(super) now: Millis,
    pub(super) next_lease: LeaseId,
}

impl Farm {
    fn healths(&self) -> Vec<Health> {
        let agents = self.agents.iter();
        agents
            .map(|a| assess(&a.failures, self.now, &POLICY))
            .collect()
    }

    fn running_by_owner(&self) -> HashMap<Option<i64>, usize> {
        let mut running = HashMap::new();
        for j in &self.jobs {
            *running.entry(j.owner).or_default() += j.board.leases.len();
        }
        running
    }

    /// The coordinator's answer to a lease request; returns the job leased, if any.
    fn lease(&mut self, agent: usize, want: usize) -> Result<Option<usize>, TestCaseError> {
        let healths = self.healths();
        let running = self.running_by_owner();
        let a = &self.agents[agent];
        let view = AgentView {
            id: agent as i64,
            renderers: &a.renderers,
            tags: &a.tags,
            mode: a.mode,
            may_take_work: a.present,
            health: &healths[agent],
        };
        let views: Vec<JobView> = (self.jobs.iter().enumerate())
            .map(|(id, j)| JobView {
                id: id as i64,
                owner: j.owner,
                priority: j.priority,
                status: j.status,
                renderer: j.renderer,
                required_tags: &j.tags,
                queued: j.board.counts().queued,
                running: j.board.leases.len(),
            })
            .collect();
        let Ok(order) = pick_order(&views, &view, &running, self.now) else {
            return Ok(None);
        };
        prop_assert_eq!(a.mode, AgentMode::Active);
        prop_assert!(a.present && !healths[agent].is_quarantined(self.now));
        // The order holds exactly the fitting runnable jobs, sorted by the rules.
        let mut expected: Vec<&JobView> = (views.iter())
            .filter(|j| j.status == JobStatus::Runnable && j.queued > 0)
            .filter(|j| misfit(j, &view).is_none())
            .collect();
        expected.sort_by_key(|j| {
            let runs = running.get(&j.owner).copied().unwrap_or(0);
            (-j.priority, runs, j.running, j.id)
        });
        let expected: Vec<i64> = expected.iter().map(|j| j.id).collect();
        prop_assert_eq!(&order, &expected);
        // The coordinator asks whether another PC could check a held frame; here: any other.
        let alone = self.agents.len() == 1;
        for id in order {
            let job = &mut self.jobs[id as usize];
            let lease = self.next_lease;
            let Some(taken) =
                (job.board).take_chunk(lease, agent as i64, want, self.now, TTL, alone)
            else {
                // Only when every queued frame waits for another PC's render.
                for f in job.board.frames.iter() {
                    if f.state == FrameState::Queued {
                        let check = f.check.as_ref();
                        prop_assert!(check.is_some_and(|c| c.rendered_by(agent as i64)));
                    }
                }
                continue;
            };
            for &i in &taken {
                if let Some(c) = &job.board.frames[i].check {
                    prop_assert!(
                        alone
                            || !c.rendered_by(agent as i64)
                            || self.now - c.since >= check::WAIT_FOR_OTHERS_MS,
                        "a held frame went back to a PC that rendered it"
                    );
                }
            }
            // Spelled out again, not through `misfit`: what must never be leased.
            prop_assert_eq!(job.status, JobStatus::Runnable);
            prop_assert!(a.renderers.contains(&job.renderer));
            prop_assert!(job.tags.iter().all(|t| a.tags.contains(t)));
            prop_assert!(!healths[agent].blocklisted.contains(&id));
            self.next_lease += 1;
            let frames = taken.iter().map(|&i| job.board.frames[i].frame).collect();
            self.held.push(Held {
                lease,
                job: id as usize,
                agent,
                frames,
            });
            return Ok(Some(id as usize));
        }
        Ok(None)
    }

    /// An agent delivers a frame that looks wrong: the coordinator holds it for another PC.
    fn hold(&mut self, h: &Held, frame: i64) {
        let job = &mut self.jobs[h.job];
        if !matches!(job.status, JobStatus::Runnable | JobStatus::Paused) {
            return;
        }
        let candidate = Candidate {
            agent: h.agent as i64,
            lease: h.lease,
            file: format!("check/{frame}-pc{}.png", h.agent),
            look: Look {
                flat: Some([0, 0, 0]),
                bytes: 1,
            },
            looked_wrong: true,
        };
        let _ = job
            .board
            .hold(frame, candidate, Suspicion::Sample, self.now);
    }

    /// An agent delivers a frame; the coordinator takes it unless the job no longer wants any.
    fn upload(&mut self, h: &Held, frame: i64) {
        let job = &mut self.jobs[h.job];
        if !matches!(job.status, JobStatus::Runnable | JobStatus::Paused) {
            return;
        }
        if let Ok(i) = job
            .board
            .frame_done(frame, h.agent as i64, self.now, None, None)
        {
            job.delivered[i] += 1;
        }
    }

    /// Ends a lease as its agent reports it; failures become the agent's records.
    fn end(&mut self, h: &Held, how: LeaseEnding) {
        let job = &mut self.jobs[h.job];
        if let Some((_, changed)) = job.board.end_lease(h.lease, how) {
            let failed =
                how == LeaseEnding::Failed || (how == LeaseEnding::Complete && !changed.is_empty());
            if failed {
                let record = FailureRecord {
                    job: h.job as i64,
                    at: self.now,
                    wrong_frame: false,
                };
                self.agents[h.agent].failures.push(record);
            }
        }
    }

    /// What the coordinator does after every change: finished jobs stop, and a job that every
    /// capable agent is blocklisted for fails.
    fn settle(&mut self) {
        let healths = self.healths();
        for (id, job) in self.jobs.iter_mut().enumerate() {
            if job.status != JobStatus::Runnable {
                continue;
            }
            let capable = (self.agents.iter().zip(&healths))
                .filter(|(a, _)| a.renderers.contains(&job.renderer))
                .filter(|(a, _)| job.tags.iter().all(|t| a.tags.contains(t)))
                .map(|(_, h)| h);
            let hopeless = job.board.counts().queued > 0 && all_blocklisted(id as i64, capable);
            if job.board.is_complete() || job.board.is_stuck() || hopeless {
                job.status = JobStatus::Finished;
                job.board.revoke_all();
            }
        }
    }

    pub(super) fn apply(&mut self, ev: Event) -> Result<(), TestCaseError> {
        let nj = self.jobs.len();
        let na = self.agents.len();
        match ev {
            Event::Lease { agent, want } => {
                self.lease(agent % na, want)?;
            }
            Event::Upload { pick, frame } if !self.held.is_empty() => {
                let h = self.held[pick % self.held.len()].clone();
                let n = h.frames[frame % h.frames.len()];
                self.upload(&h, n);
            }
            Event::End { pick, how } if !self.held.is_empty() => {
                let h = self.held.remove(pick % self.held.len());
                let how = [
                    LeaseEnding::Complete,
                    LeaseEnding::Yield,
                    LeaseEnding::Failed,
                    LeaseEnding::Expired,
                    LeaseEnding::Failed,
                    LeaseEnding::Failed,
                ][how];
                self.end(&h, how);
            }
            Event::Hold { pick, frame } if !self.held.is_empty() => {
                let h = self.held[pick % self.held.len()].clone();
                let n = h.frames[frame % h.frames.len()];
                self.hold(&h, n);
            }
            Event::Upload { .. } | Event::End { .. } | Event::Hold { .. } => {}
            Event::Tick { ms } => {
                self.now += ms;
                for job in &mut self.jobs {
                    for id in job.board.expired(self.now) {
                        job.board.end_lease(id, LeaseEnding::Expired);
                    }
                }
            }
            Event::Cancel { job } => {
                let job = &mut self.jobs[job % nj];
                job.status = JobStatus::Cancelled;
                job.board.revoke_all();
            }
            Event::Pause { job } => {
                let job = &mut self.jobs[job % nj];
                if job.status == JobStatus::Runnable {
                    job.status = JobStatus::Paused;
                    job.board.revoke_all();
                }
            }
            Event::Resume { job } => {
                let job = &mut self.jobs[job % nj];
                if job.status == JobStatus::Paused {
                    job.status = JobStatus::Runnable;
                }
            }
            Event::Priority { job, priority } => self.jobs[job % nj].priority = priority,
            Event::Retry { job } => {
                let job = &mut self.jobs[job % nj];
                if job.status != JobStatus::Cancelled && !job.board.retry_failed().is_empty() {
                    job.status = reopen(job.status);
                }
            }
            Event::Rerender { job, frames } => {
                let job = &mut self.jobs[job % nj];
                if job.status != JobStatus::Cancelled {
                    let before = job.board.clone();
                    match job.board.rerender(&frames) {
                        Ok(changed) => {
                            for &i in &changed {
                                job.delivered[i] = 0;
                            }
                            if !changed.is_empty() {
                                job.status = reopen(job.status);
                            }
                        }
                        Err(_) => prop_assert_eq!(&job.board, &before),
                    }
                }
            }
            Event::Mode { agent, mode } => {
                // Mostly back to active, so the farm keeps working.
                let modes = [
                    AgentMode::Active,
                    AgentMode::Active,
                    AgentMode::Active,
                    AgentMode::Draining,
                    AgentMode::Disabled,
                ];
                self.agents[agent % na].mode = modes[mode];
            }
            Event::Presence { agent, present } => self.agents[agent % na].present = present,
            Event::Release { agent } => self.agents[agent % na].failures.clear(),
            Event::Restart { crash_drops } => {
                for job in &mut self.jobs {
                    let mut leases = job.board.leases.clone();
                    let restored = Board::restore(job.board.frames.clone(), leases.clone());
                    prop_assert_eq!(&restored, &job.board, "restore keeps a sound board");
                    // A crash between two writes can lose a lease row.
                    if let Some(k) = crash_drops.filter(|_| !leases.is_empty()) {
                        let id = *leases.keys().nth(k % leases.len()).unwrap();
                        leases.remove(&id);
                    }
                    job.board = Board::restore(job.board.frames.clone(), leases);
                }
            }
        }
        self.settle();
        Ok(())
    }

    /// The rules that must hold after every event.
    pub(super) fn check(&self) -> Result<(), TestCaseError> {
        for job in &self.jobs {
            let paused = matches!(job.status, JobStatus::Paused | JobStatus::Cancelled);
            prop_assert!(
                !paused || job.board.leases.is_empty(),
                "leased while stopped"
            );
            for (i, f) in job.board.frames.iter().enumerate() {
                if let FrameState::Leased(l) = f.state {
                    let slot = job.board.leases.get(&l);
                    prop_assert!(slot.is_some_and(|s| s.frames.contains(&i)));
                }
                prop_assert!(job.delivered[i] <= 1, "a frame was done twice");
                prop_assert_eq!(
                    matches!(f.state, FrameState::Done(_)),
                    job.delivered[i] == 1
                );
                let mut distinct = f.failed_on.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), f.failed_on.len());
                if f.state == FrameState::Failed {
                    prop_assert!(f.failed_on.len() >= MAX_FRAME_FAILURES as usize);
                }
                if let Some(c) = &f.check {
                    prop_assert!(!matches!(f.state, FrameState::Done(_)), "done yet held");
                    let mut agents: Vec<i64> = c.candidates.iter().map(|c| c.agent).collect();
                    agents.sort_unstable();
                    agents.dedup();
                    prop_assert_eq!(agents.len(), c.candidates.len(), "one render per PC");
                }
            }
        }
        Ok(())
    }

    /// Honest, healthy, capable agents replace the others, an admin releases, resumes and
    /// re-opens what the failures closed, and the agents work until nothing is left.
    pub(super) fn drain(&mut self) -> Result<(), TestCaseError> {
        for job in &mut self.jobs {
            for id in job.board.expired(Millis::MAX) {
                job.board.end_lease(id, LeaseEnding::Expired);
            }
            let hopeless = job.status == JobStatus::Finished && job.board.counts().queued > 0;
            if job.status == JobStatus::Paused || hopeless {
                job.status = JobStatus::Runnable;
            }
        }
        self.held.clear();
        // Held frames have waited long enough for any PC.
        self.now += check::WAIT_FOR_OTHERS_MS;
        let honest = Agent {
            renderers: renderers(0b11),
            tags: tags(0b11),
            mode: AgentMode::Active,
            present: true,
            failures: Vec::new(),
        };
        self.agents = vec![honest.clone(), honest];
        self.settle();
        let mut rounds = 0;
        while let Some(job) = self.lease(rounds % 2, 3)? {
            let h = self.held.pop().expect("just leased");
            prop_assert_eq!(h.job, job);
            for &n in &h.frames {
                self.now += 1;
                self.upload(&h, n);
            }
            self.end(&h, LeaseEnding::Complete);
            self.settle();
            rounds += 1;
            prop_assert!(rounds < 10_000, "the drain does not end");
        }
        Ok(())
    }
}

/// A job that finished (or failed) runs again once frames are queued; paused stays paused.
fn reopen(status: JobStatus) -> JobStatus {
    match status {
        JobStatus::Finished => JobStatus::Runnable,
        other => other,
    }
}
