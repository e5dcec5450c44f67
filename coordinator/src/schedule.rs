//! The scheduling state machine: one job's frames, the leases that hold them, and how big the
//! next chunk should be. Plain data and pure functions, no I/O and no clock: the caller passes the
//! time in, persists what changed, and property tests drive it with random event sequences.
//!
//! A frame moves `Queued → Leased → Done`; an expired, yielded or failed lease puts its unfinished
//! frames back to `Queued` (a failure also counts against the frame, and a frame that fails
//! [`MAX_FRAME_FAILURES`] times becomes `Failed`). `Done` is final: a frame is done exactly once.

use std::collections::BTreeMap;

/// Lease identifier (unique across jobs).
pub type LeaseId = i64;
/// Agent identifier.
pub type AgentId = i64;
/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// How many times a frame may fail before the job gives up on it.
pub const MAX_FRAME_FAILURES: u32 = 3;

/// State of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// Waiting for an agent.
    Queued,
    /// Held by a lease.
    Leased(LeaseId),
    /// Received, checked and stored; final.
    Done(AgentId),
    /// Failed [`MAX_FRAME_FAILURES`] times; final.
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
    /// How many leases holding it failed.
    pub failures: u32,
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

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnding {
    /// The agent says it is finished; any frame it did not deliver counts as a failure.
    Complete,
    /// A person came back; unfinished frames are queued again and nothing counts as failed.
    Yield,
    /// The renderer failed; unfinished frames count a failure.
    Failed,
    /// No heartbeat arrived in time; unfinished frames are queued again.
    Expired,
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
            frames: frames
                .into_iter()
                .map(|frame| FrameSlot {
                    frame,
                    state: FrameState::Queued,
                    failures: 0,
                })
                .collect(),
            leases: BTreeMap::new(),
        }
    }

    /// Rebuilds a board from persisted frames and leases. A frame that names a lease which is
    /// not among `leases` (a crash between two writes) goes back to the queue.
    pub fn restore(mut frames: Vec<FrameSlot>, mut leases: BTreeMap<LeaseId, LeaseSlot>) -> Self {
        for (i, f) in frames.iter_mut().enumerate() {
            if let FrameState::Leased(l) = f.state {
                match leases.get(&l) {
                    Some(slot) if slot.frames.contains(&i) => {}
                    _ => f.state = FrameState::Queued,
                }
            }
        }
        leases.retain(|_, slot| slot.frames.iter().all(|&i| i < frames.len()));
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

    /// Index of a frame number.
    pub fn index_of(&self, frame: i64) -> Option<usize> {
        self.frames.iter().position(|f| f.frame == frame)
    }

    /// Leases the first run of up to `want` consecutive queued frames to `agent`.
    /// Returns the indices taken, or `None` when nothing is queued.
    pub fn take_chunk(
        &mut self,
        lease: LeaseId,
        agent: AgentId,
        want: usize,
        now: Millis,
        ttl_ms: Millis,
    ) -> Option<Vec<usize>> {
        let start = self
            .frames
            .iter()
            .position(|f| f.state == FrameState::Queued)?;
        let taken: Vec<usize> = (start..self.frames.len())
            .take_while(|&i| self.frames[i].state == FrameState::Queued)
            .take(want.max(1))
            .collect();
        for &i in &taken {
            self.frames[i].state = FrameState::Leased(lease);
        }
        self.leases.insert(
            lease,
            LeaseSlot {
                agent,
                frames: taken.clone(),
                started_at: now,
                expires_at: now + ttl_ms,
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
    /// (if any) simply finds it done.
    pub fn frame_done(&mut self, frame: i64, agent: AgentId) -> Result<usize, FrameReject> {
        let i = self.index_of(frame).ok_or(FrameReject::Unknown)?;
        match self.frames[i].state {
            FrameState::Done(_) => Err(FrameReject::AlreadyDone),
            FrameState::Failed => Err(FrameReject::Failed),
            FrameState::Queued | FrameState::Leased(_) => {
                self.frames[i].state = FrameState::Done(agent);
                Ok(i)
            }
        }
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
            let counts_failure = matches!(how, LeaseEnding::Complete | LeaseEnding::Failed);
            if counts_failure {
                f.failures += 1;
            }
            f.state = if f.failures >= MAX_FRAME_FAILURES {
                FrameState::Failed
            } else {
                FrameState::Queued
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

    /// Ends every lease and puts its unfinished frames back in the queue (used when a job is
    /// cancelled or its leases are revoked).
    pub fn drop_leases(&mut self) -> Vec<LeaseId> {
        let ids: Vec<LeaseId> = self.leases.keys().copied().collect();
        for &id in &ids {
            self.end_lease(id, LeaseEnding::Yield);
        }
        ids
    }
}

/// Inputs to the chunk size decision.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPolicy {
    /// The submitter's fixed chunk size, if any.
    pub fixed: Option<u32>,
    /// How long a chunk should take, in seconds.
    pub target_secs: f64,
    /// How many frames the first chunk of an unmeasured agent gets.
    pub probe_frames: usize,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        ChunkPolicy {
            fixed: None,
            target_secs: 120.0,
            probe_frames: 2,
        }
    }
}

/// How many frames the next chunk for an agent should hold.
///
/// `secs_per_frame` is the agent's measured time on this job (`None` before its first chunk);
/// `queued` the frames waiting; `agents` how many agents can work on the job. Near the end of a
/// job the remaining frames are split between the agents so no single straggler holds the job.
pub fn chunk_size(
    policy: &ChunkPolicy,
    secs_per_frame: Option<f64>,
    queued: usize,
    agents: usize,
) -> usize {
    if let Some(fixed) = policy.fixed {
        return (fixed as usize).max(1);
    }
    let fair_share = queued.div_ceil(agents.max(1)).max(1);
    let wanted = match secs_per_frame {
        None => policy.probe_frames,
        Some(spf) if spf > 0.0 => (policy.target_secs / spf).floor() as usize,
        Some(_) => fair_share,
    };
    wanted.clamp(1, fair_share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chunks_are_consecutive_queued_frames() {
        let mut b = Board::new(1..=10);
        assert_eq!(b.take_chunk(1, 7, 3, 0, 1000), Some(vec![0, 1, 2]));
        assert_eq!(b.take_chunk(2, 8, 3, 0, 1000), Some(vec![3, 4, 5]));
        b.end_lease(1, LeaseEnding::Yield);
        assert_eq!(b.take_chunk(3, 8, 10, 0, 1000), Some(vec![0, 1, 2]));
        assert_eq!(b.frames[0].failures, 0, "a yield is not a failure");
    }

    #[test]
    fn a_frame_fails_for_good_after_repeated_failures() {
        let mut b = Board::new([5]);
        for lease in 0..MAX_FRAME_FAILURES as i64 {
            b.take_chunk(lease, 1, 1, 0, 10).unwrap();
            b.end_lease(lease, LeaseEnding::Failed);
        }
        assert_eq!(b.frames[0].state, FrameState::Failed);
        assert!(b.is_stuck());
        assert_eq!(b.take_chunk(99, 1, 1, 0, 10), None);
    }

    #[test]
    fn late_frames_of_an_expired_lease_still_count() {
        let mut b = Board::new(1..=2);
        b.take_chunk(1, 1, 2, 0, 10);
        for id in b.expired(10) {
            b.end_lease(id, LeaseEnding::Expired);
        }
        assert_eq!(b.frame_done(1, 1), Ok(0));
        assert_eq!(b.frame_done(1, 2), Err(FrameReject::AlreadyDone));
        assert_eq!(b.take_chunk(2, 2, 5, 20, 10), Some(vec![1]));
    }

    #[test]
    fn chunk_size_probes_then_targets_then_splits_the_tail() {
        let p = ChunkPolicy {
            fixed: None,
            target_secs: 60.0,
            probe_frames: 2,
        };
        assert_eq!(chunk_size(&p, None, 100, 2), 2);
        assert_eq!(chunk_size(&p, Some(10.0), 100, 2), 6);
        assert_eq!(chunk_size(&p, Some(0.5), 100, 2), 50);
        assert_eq!(chunk_size(&p, Some(0.5), 7, 3), 3);
        assert_eq!(chunk_size(&p, Some(1000.0), 7, 3), 1);
        let fixed = ChunkPolicy {
            fixed: Some(4),
            ..p
        };
        assert_eq!(chunk_size(&fixed, None, 2, 9), 4);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Lease {
            agent: i64,
            want: usize,
        },
        Upload {
            lease_pick: usize,
            frame_pick: usize,
        },
        End {
            lease_pick: usize,
            how: u8,
        },
        Tick {
            ms: i64,
        },
        Restart,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0..4i64, 1..6usize).prop_map(|(agent, want)| Event::Lease { agent, want }),
            (0..8usize, 0..8usize).prop_map(|(lease_pick, frame_pick)| Event::Upload {
                lease_pick,
                frame_pick
            }),
            (0..8usize, 0..4u8).prop_map(|(lease_pick, how)| Event::End { lease_pick, how }),
            (1..3000i64).prop_map(|ms| Event::Tick { ms }),
            Just(Event::Restart),
        ]
    }

    proptest! {
        /// Under random leases, uploads, yields, failures, expiries and coordinator restarts,
        /// every frame ends done exactly once (or failed for good), and a drain phase of honest
        /// agents finishes the job.
        #[test]
        fn every_frame_is_done_exactly_once(
            n in 1usize..30,
            events in proptest::collection::vec(event(), 0..200),
        ) {
            const TTL: i64 = 2000;
            let mut board = Board::new(1..=n as i64);
            let mut now: Millis = 0;
            let mut next_lease: LeaseId = 1;
            let mut delivered: Vec<u32> = vec![0; n];
            // Leases an agent still believes it holds, even after the board dropped them.
            let mut held: Vec<(LeaseId, Vec<i64>)> = Vec::new();

            for ev in events {
                match ev {
                    Event::Lease { agent, want } => {
                        if let Some(idx) = board.take_chunk(next_lease, agent, want, now, TTL) {
                            held.push((next_lease, idx.iter().map(|&i| board.frames[i].frame).collect()));
                        }
                        next_lease += 1;
                    }
                    Event::Upload { lease_pick, frame_pick } => {
                        if held.is_empty() { continue; }
                        let (lease, frames) = &held[lease_pick % held.len()];
                        let frame = frames[frame_pick % frames.len()];
                        let agent = board.leases.get(lease).map(|l| l.agent).unwrap_or(0);
                        if board.frame_done(frame, agent).is_ok() {
                            delivered[(frame - 1) as usize] += 1;
                        }
                    }
                    Event::End { lease_pick, how } => {
                        if held.is_empty() { continue; }
                        let (lease, _) = held.remove(lease_pick % held.len());
                        let how = [LeaseEnding::Complete, LeaseEnding::Yield, LeaseEnding::Failed, LeaseEnding::Expired][how as usize];
                        board.end_lease(lease, how);
                    }
                    Event::Tick { ms } => {
                        now += ms;
                        for id in board.expired(now) {
                            board.end_lease(id, LeaseEnding::Expired);
                        }
                    }
                    Event::Restart => {
                        // A restart reloads the persisted frame states and leases.
                        board = Board::restore(board.frames.clone(), board.leases.clone());
                    }
                }
                prop_assert!(delivered.iter().all(|&d| d <= 1), "a frame was done twice");
                for (i, f) in board.frames.iter().enumerate() {
                    if let FrameState::Leased(l) = f.state {
                        prop_assert!(board.leases.get(&l).is_some_and(|s| s.frames.contains(&i)));
                    }
                    prop_assert_eq!(matches!(f.state, FrameState::Done(_)), delivered[i] == 1);
                }
            }

            // Drain: honest agents take and finish every queued frame.
            for id in board.expired(i64::MAX) {
                board.end_lease(id, LeaseEnding::Expired);
            }
            while let Some(idx) = board.take_chunk(next_lease, 9, 3, now, TTL) {
                for i in idx {
                    let frame = board.frames[i].frame;
                    board.frame_done(frame, 9).unwrap();
                    delivered[i] += 1;
                }
                board.end_lease(next_lease, LeaseEnding::Complete);
                next_lease += 1;
            }
            for (i, f) in board.frames.iter().enumerate() {
                match f.state {
                    FrameState::Done(_) => prop_assert_eq!(delivered[i], 1),
                    FrameState::Failed => prop_assert_eq!(delivered[i], 0),
                    other => prop_assert!(false, "frame left in {:?}", other),
                }
            }
            prop_assert!(board.leases.is_empty());
        }
    }
}
