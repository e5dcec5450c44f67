//! What a lease entitles its agent to, remembered after the lease ends: uploading the frames it
//! was given (a late frame of an ended lease is still welcome, as long as the job wants it) and,
//! for a while after it was last held, downloading its job's input. Nothing else: an agent never
//! delivers another lease's frames nor reads inputs of jobs it was not given.

use super::Coordinator;
use super::state::now_ms;
use crate::schedule::Board;

/// Who a lease was handed to and for what; kept after the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaseOwner {
    /// The job the lease is a chunk of.
    pub job: i64,
    /// The agent it was handed to.
    pub agent: i64,
    /// The frame numbers it was given.
    pub frames: Vec<i64>,
    /// Unix millis until which it was last known to be held: its expiry as of its last renewal.
    pub held_until: i64,
}

impl LeaseOwner {
    /// The record of live lease `lease` of `job` on `board` (none if the board has no such lease).
    pub fn of_live(job: i64, lease: crate::schedule::LeaseId, board: &Board) -> Option<Self> {
        let slot = board.leases.get(&lease)?;
        Some(LeaseOwner {
            job,
            agent: slot.agent,
            frames: slot.frames.iter().map(|&i| board.frames[i].frame).collect(),
            held_until: slot.expires_at,
        })
    }

    /// Whether `frame` is one of the frames this lease was given.
    pub fn covers(&self, frame: i64) -> bool {
        self.frames.contains(&frame)
    }

    /// The lease's frames for a message: `frame 4` or `frames 1-8`.
    pub fn describe_frames(&self) -> String {
        match (self.frames.first(), self.frames.last()) {
            (Some(a), Some(b)) if a == b => format!("frame {a}"),
            (Some(a), Some(b)) => format!("frames {a}-{b}"),
            _ => "no frames".to_owned(),
        }
    }
}

impl Coordinator {
    /// Whether `agent` may download the job input with blake3 `hash`: it holds a lease on a job
    /// with that input, or held one less than a lease TTL ago (a download racing the lease's
    /// end still works).
    pub(crate) async fn may_fetch_input(&self, agent: i64, hash: &str) -> bool {
        let now = now_ms();
        let grace = i64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        let sched = self.sched.lock().await;
        sched.lease_owner.iter().any(|(lease, owner)| {
            let held = sched.jobs.get(&owner.job).is_some_and(|entry| {
                entry.row.input_hash == hash
                    && (entry.board.leases.contains_key(lease)
                        || now < owner.held_until.saturating_add(grace))
            });
            owner.agent == agent && held
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_covers_exactly_the_frames_it_was_given() {
        let mut board = Board::new(1..=6);
        let taken = board.take_chunk(9, 2, 2, 1_000, 60_000, false).unwrap();
        assert_eq!(taken, vec![0, 1]);
        let owner = LeaseOwner::of_live(5, 9, &board).unwrap();
        assert_eq!(owner.frames, vec![1, 2]);
        assert_eq!(owner.held_until, 61_000);
        assert!(owner.covers(1) && owner.covers(2));
        assert!(!owner.covers(3));
        assert_eq!(owner.describe_frames(), "frames 1-2");
        assert!(LeaseOwner::of_live(5, 10, &board).is_none());
    }
}
