//! One job's board: its frames and the live leases that hold them.
//!
//! A frame moves `Queued → Leased → Done`; an expired, yielded or revoked lease puts its
//! unfinished frames back to `Queued`. A failed lease (or a complete one that did not deliver
//! everything) also counts a failure against each unfinished frame and remembers the agent; a
//! frame that has failed on [`MAX_FRAME_FAILURES`] *different* agents becomes `Failed`, because
//! one broken PC failing the same chunk again and again says nothing about the frame (that PC is
//! blocklisted for the job instead, see [`super::health`]). `Done` is final until a person asks
//! for a re-render, which starts a new generation of the frame.
//!
//! A received frame that looks like a broken PC's work is not done yet: it is held as a
//! candidate and goes back to the queue under a [`Check`] that keeps the PCs that rendered it
//! away until another PC's render settles it (see [`super::check`]).

use std::collections::{BTreeMap, HashMap};

use super::check::{self, Check, Look, Suspicion};
use super::{AgentId, LeaseId, Millis};

/// On how many different agents a frame may fail before the job gives up on it.
pub const MAX_FRAME_FAILURES: u32 = 3;

/// State of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// Waiting for an agent.
    Queued,
    /// Held by a lease.
    Leased(LeaseId),
    /// Received, checked and stored; final until re-rendered.
    Done(AgentId),
    /// Failed on [`MAX_FRAME_FAILURES`] different agents; final until retried.
    Failed,
}

impl FrameState {
    /// Name used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameState::Queued => "queued",
            FrameState::Leased(_) => "rendering",
            FrameState::Done(_) => "done",
            FrameState::Failed => "failed",
        }
    }
}

/// One frame of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSlot {
    /// Frame number in the scene.
    pub frame: i64,
    /// Where it is.
    pub state: FrameState,
    /// How many leases holding it failed, in total.
    pub failures: u32,
    /// The distinct agents whose lease holding this frame failed, in order.
    pub failed_on: Vec<AgentId>,
    /// How many leases took this frame.
    pub attempts: u32,
    /// For a done frame: how long it took, when a live lease delivered it.
    pub render_ms: Option<i64>,
    /// For a done frame: what its image looked like, when measured.
    pub look: Option<Look>,
    /// For a done frame that was checked: how the check ended.
    pub note: Option<String>,
    /// Renders held for a second opinion while the frame waits for another PC.
    pub check: Option<Check>,
}

impl FrameSlot {
    /// A frame waiting for its first agent.
    pub fn queued(frame: i64) -> Self {
        FrameSlot {
            frame,
            state: FrameState::Queued,
            failures: 0,
            failed_on: Vec::new(),
            attempts: 0,
            render_ms: None,
            look: None,
            note: None,
            check: None,
        }
    }

    /// Back to the queue with a clean failure history (retry and re-render).
    fn requeue_fresh(&mut self) {
        self.state = FrameState::Queued;
        self.failures = 0;
        self.failed_on.clear();
        self.render_ms = None;
        self.look = None;
        self.note = None;
        self.check = None;
    }

    /// Whether `agent` may take this frame at `now` (see [`Check::open_to`]).
    fn open_to(&self, agent: AgentId, now: Millis, alone: bool) -> bool {
        self.state == FrameState::Queued
            && (self.check.as_ref()).is_none_or(|c| c.open_to(agent, now, alone))
    }
}

/// A chunk of frames held by an agent until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseSlot {
    /// Who holds it.
    pub agent: AgentId,
    /// Indices into [`Board::frames`].
    pub frames: Vec<usize>,
    /// When it was handed out.
    pub started_at: Millis,
    /// When it expires unless renewed.
    pub expires_at: Millis,
    /// When it last made progress: `started_at`, then the time of each frame done in it.
    pub last_progress: Millis,
}

/// Why an uploaded frame is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameReject {
    /// The job has no such frame.
    Unknown,
    /// The frame is already done (by this or another lease).
    AlreadyDone,
    /// The frame failed for good; the job no longer wants it.
    Failed,
}

/// A frame number a person named is not part of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame {0} is not part of this job")]
pub struct UnknownFrame(pub i64);

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnding {
    /// The agent says it is finished; any frame it did not deliver counts as a failure.
    Complete,
    /// A person came back (or the coordinator revoked it); unfinished frames are queued again
    /// and nothing counts as failed.
    Yield,
    /// The renderer failed; unfinished frames count a failure.
    Failed,
    /// No heartbeat arrived in time; unfinished frames are queued again.
    Expired,
}

impl LeaseEnding {
    /// Whether unfinished frames count this ending against themselves and the agent.
    pub fn counts_failure(self) -> bool {
        matches!(self, LeaseEnding::Complete | LeaseEnding::Failed)
    }
}

/// The frames and live leases of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    /// Frames in job order.
    pub frames: Vec<FrameSlot>,
    /// Live leases.
    pub leases: BTreeMap<LeaseId, LeaseSlot>,
}

/// Summary of frames by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting.
    pub queued: usize,
    /// Leased.
    pub leased: usize,
    /// Done.
    pub done: usize,
    /// Failed for good.
    pub failed: usize,
}

impl Board {
    /// A board with every frame queued.
    pub fn new(frames: impl IntoIterator<Item = i64>) -> Self {
        Board {
            frames: frames.into_iter().map(FrameSlot::queued).collect(),
            leases: BTreeMap::new(),
        }
    }

    /// Rebuilds a board from persisted frames and leases, repairing what a crash between two
    /// writes can leave behind: a lease naming a frame the job lacks is dropped, a frame naming
    /// a lease that does not hold it goes back to the queue, an agent listed twice in
    /// `failed_on` counts once, and only done frames keep a render time.
    pub fn restore(mut frames: Vec<FrameSlot>, mut leases: BTreeMap<LeaseId, LeaseSlot>) -> Self {
        // Leases first: a frame must not keep pointing at a lease dropped here.
        leases.retain(|_, slot| slot.frames.iter().all(|&i| i < frames.len()));
        for slot in leases.values_mut() {
            slot.last_progress = slot.last_progress.max(slot.started_at);
        }
        for (i, f) in frames.iter_mut().enumerate() {
            if let FrameState::Leased(l) = f.state {
                match leases.get(&l) {
                    Some(slot) if slot.frames.contains(&i) => {}
                    _ => f.state = FrameState::Queued,
                }
            }
            let mut seen = Vec::with_capacity(f.failed_on.len());
            f.failed_on.retain(|a| {
                let first = !seen.contains(a);
                seen.push(*a);
                first
            });
            if !matches!(f.state, FrameState::Done(_)) {
                f.render_ms = None;
                f.look = None;
                f.note = None;
            } else {
                f.check = None;
            }
        }
        Board { frames, leases }
    }

    /// Frames by state.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.frames {
            match f.state {
                FrameState::Queued => c.queued += 1,
                FrameState::Leased(_) => c.leased += 1,
                FrameState::Done(_) => c.done += 1,
                FrameState::Failed => c.failed += 1,
            }
        }
        c
    }

    /// Every frame is done.
    pub fn is_complete(&self) -> bool {
        self.frames
            .iter()
            .all(|f| matches!(f.state, FrameState::Done(_)))
    }

    /// Some frame failed for good and nothing is left to render.
    pub fn is_stuck(&self) -> bool {
        let c = self.counts();
        c.failed > 0 && c.queued == 0 && c.leased == 0
    }

    /// Whether some frame waits for a second opinion.
    pub fn has_checks(&self) -> bool {
        self.frames.iter().any(|f| f.check.is_some())
    }

    /// Index of a frame number.
    pub fn index_of(&self, frame: i64) -> Option<usize> {
        self.frames.iter().position(|f| f.frame == frame)
    }

    /// Leases the first run of up to `want` consecutive queued frames `agent` may take to it:
    /// a frame under check is not given to a PC that already rendered it, unless it is `alone`
    /// (no other PC is there) or the frame has waited long (see [`Check::open_to`]).
    /// Returns the indices taken, or `None` when nothing is queued for it.
    pub fn take_chunk(
        &mut self,
        lease: LeaseId,
        agent: AgentId,
        want: usize,
        now: Millis,
        ttl_ms: Millis,
        alone: bool,
    ) -> Option<Vec<usize>> {
        let open = |f: &FrameSlot| f.open_to(agent, now, alone);
        let start = self.frames.iter().position(open)?;
        let taken: Vec<usize> = (start..self.frames.len())
            .take_while(|&i| open(&self.frames[i]))
            .take(want.max(1))
            .collect();
        for &i in &taken {
            self.frames[i].state = FrameState::Leased(lease);
            self.frames[i].attempts += 1;
        }
        self.leases.insert(
            lease,
            LeaseSlot {
                agent,
                frames: taken.clone(),
                started_at: now,
                expires_at: now + ttl_ms,
                last_progress: now,
            },
        );
        Some(taken)
    }

    /// Pushes a live lease's expiry out. Returns false if the lease is gone.
    pub fn renew(&mut self, lease: LeaseId, now: Millis, ttl_ms: Millis) -> bool {
        match self.leases.get_mut(&lease) {
            Some(slot) => {
                slot.expires_at = slot.expires_at.max(now + ttl_ms);
                true
            }
            None => false,
        }
    }

    /// Records a received, checked and stored frame. A frame that is not done yet is accepted
    /// whoever holds it, so a finished frame is never thrown away; the lease that still holds it
    /// (if any) simply finds it done. The render time is measured from the holding lease's last
    /// progress, so it is only known when a live lease held the frame.
    ///
    /// `look` is what its image looked like; `note` how a check of it ended, if it was checked
    /// (which ends the check).
    pub fn frame_done(
        &mut self,
        frame: i64,
        agent: AgentId,
        now: Millis,
        look: Option<Look>,
        note: Option<String>,
    ) -> Result<usize, FrameReject> {
        let i = self.wants(frame)?;
        // The render time is the uploader's own: a backup copy's lease when it won the race.
        let own = (self.leases.iter())
            .find(|(_, s)| s.agent == agent && s.frames.contains(&i))
            .map(|(&id, _)| id);
        let holder = match (own, self.frames[i].state) {
            (Some(l), _) | (None, FrameState::Leased(l)) => self.leases.get_mut(&l),
            _ => None,
        };
        let render_ms = holder.map(|slot| {
            let took = (now - slot.last_progress).max(0);
            slot.last_progress = slot.last_progress.max(now);
            took
        });
        let f = &mut self.frames[i];
        f.state = FrameState::Done(agent);
        f.render_ms = render_ms;
        f.look = look;
        f.note = note;
        f.check = None;
        Ok(i)
    }

    /// Holds a received render of `frame` as a candidate for a second opinion: the frame goes
    /// back to the queue under a check (started with `reason` when there is none yet) that
    /// keeps `candidate.agent` away from it. Its lease, if live, simply finds it gone.
    pub fn hold(
        &mut self,
        frame: i64,
        candidate: check::Candidate,
        reason: Suspicion,
        now: Millis,
    ) -> Result<usize, FrameReject> {
        let i = self.wants(frame)?;
        let f = &mut self.frames[i];
        let check = f.check.get_or_insert_with(|| Check {
            reason,
            since: now,
            candidates: Vec::new(),
        });
        check.candidates.retain(|c| c.agent != candidate.agent);
        check.candidates.push(candidate);
        f.state = FrameState::Queued;
        Ok(i)
    }

    /// The done frames nearest to frame index `i` whose looks are known, up to
    /// [`check::NEIGHBOURS_PER_SIDE`] on each side: (frame number, look).
    pub fn neighbours(&self, i: usize) -> Vec<(i64, Look)> {
        let known = |j: &usize| {
            let f = &self.frames[*j];
            match (f.state, f.look) {
                (FrameState::Done(_), Some(look)) => Some((f.frame, look)),
                _ => None,
            }
        };
        let before = (0..i).rev().filter_map(|j| known(&j));
        let after = (i + 1..self.frames.len()).filter_map(|j| known(&j));
        let mut found: Vec<(i64, Look)> = before.take(check::NEIGHBOURS_PER_SIDE).collect();
        found.reverse();
        found.extend(after.take(check::NEIGHBOURS_PER_SIDE));
        found
    }

    /// Done frames that look wrong against their done neighbours and were never checked: what
    /// could not be judged when they arrived because their neighbours were not done yet.
    /// Meant for the moment every frame is done.
    pub fn review(&self) -> Vec<(usize, Suspicion)> {
        (0..self.frames.len())
            .filter_map(|i| {
                let f = &self.frames[i];
                let look = f.look.filter(|_| f.note.is_none())?;
                check::suspicion(&look, &self.neighbours(i), None).map(|why| (i, why))
            })
            .collect()
    }

    /// Puts a done frame back in the queue under `check` (its render is the first candidate).
    pub fn reopen(&mut self, i: usize, check: Check) {
        let f = &mut self.frames[i];
        f.state = FrameState::Queued;
        f.render_ms = None;
        f.look = None;
        f.check = Some(check);
    }

    /// Whether `frame` may still be uploaded (not done, not failed).
    pub fn wants(&self, frame: i64) -> Result<usize, FrameReject> {
        let i = self.index_of(frame).ok_or(FrameReject::Unknown)?;
        match self.frames[i].state {
            FrameState::Done(_) => Err(FrameReject::AlreadyDone),
            FrameState::Failed => Err(FrameReject::Failed),
            _ => Ok(i),
        }
    }

    /// Ends a lease. Its frames that are not done go back to the queue (or fail for good).
    /// Returns the ended lease and the indices of frames whose state changed.
    pub fn end_lease(
        &mut self,
        lease: LeaseId,
        how: LeaseEnding,
    ) -> Option<(LeaseSlot, Vec<usize>)> {
        let slot = self.leases.remove(&lease)?;
        let mut changed = Vec::new();
        for &i in &slot.frames {
            let f = &mut self.frames[i];
            if f.state != FrameState::Leased(lease) {
                continue;
            }
            if how.counts_failure() {
                f.failures += 1;
                if !f.failed_on.contains(&slot.agent) {
                    f.failed_on.push(slot.agent);
                }
            }
            // A backup copy still rendering it takes the frame over (see [`Board::take_backup`]).
            let backup = (self.leases.iter())
                .find(|(_, s)| s.frames.contains(&i))
                .map(|(&id, _)| id);
            f.state = match backup {
                _ if f.failed_on.len() >= MAX_FRAME_FAILURES as usize => FrameState::Failed,
                Some(other) => FrameState::Leased(other),
                None => FrameState::Queued,
            };
            changed.push(i);
        }
        Some((slot, changed))
    }

    /// Leases whose expiry has passed.
    pub fn expired(&self, now: Millis) -> Vec<LeaseId> {
        self.leases
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Ends every lease and puts its unfinished frames back in the queue, counting nothing as
    /// failed (used when a job is paused or cancelled). Returns the revoked leases.
    pub fn revoke_all(&mut self) -> Vec<LeaseId> {
        self.revoke_all_changed().0
    }

    /// [`Board::revoke_all`], also returning the indices of frames whose state changed (what
    /// the caller has to persist).
    pub fn revoke_all_changed(&mut self) -> (Vec<LeaseId>, Vec<usize>) {
        let ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        let mut changed = Vec::new();
        for &id in &ids {
            if let Some((_, frames)) = self.end_lease(id, LeaseEnding::Yield) {
                changed.extend(frames);
            }
        }
        (ids, changed)
    }

    /// Puts every frame that failed for good back in the queue with a clean failure history.
    /// Returns the indices changed.
    pub fn retry_failed(&mut self) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, f) in self.frames.iter_mut().enumerate() {
            if f.state == FrameState::Failed {
                f.requeue_fresh();
                changed.push(i);
            }
        }
        changed
    }

    /// Queues chosen frames again: done and failed ones go back to the queue with a clean
    /// history; queued and leased ones are already on their way and stay as they are. Nothing
    /// changes if any frame is not part of the job. Returns the indices changed, in job order.
    pub fn rerender(&mut self, frames: &[i64]) -> Result<Vec<usize>, UnknownFrame> {
        let by_number: HashMap<i64, usize> = (self.frames.iter().enumerate())
            .map(|(i, f)| (f.frame, i))
            .collect();
        let mut indices = frames
            .iter()
            .map(|n| by_number.get(n).copied().ok_or(UnknownFrame(*n)))
            .collect::<Result<Vec<usize>, UnknownFrame>>()?;
        indices.sort_unstable();
        indices.dedup();
        indices.retain(|&i| {
            matches!(
                self.frames[i].state,
                FrameState::Done(_) | FrameState::Failed
            )
        });
        for &i in &indices {
            self.frames[i].requeue_fresh();
        }
        Ok(indices)
    }
}
