//! Straggler backups: near the end of a job, when nothing is queued and a PC sits idle, it gets a
//! second copy of the outstanding frame expected to finish last, if it would finish it sooner.
//!
//! A backup is a lease of one frame that does not change the frame's state: the frame stays
//! `Leased` to its first lease. The first copy received wins ([`super::Board::frame_done`]); the
//! lease left with nothing to do is then [`superseded`](super::Board::superseded) and the
//! coordinator revokes it. If the first lease ends without the frame (a yield, an expiry), the
//! backup takes the frame over instead of it going back to the queue. A backup is never a
//! failure, and only a frame that is the last one its lease still has to render is backed up, so
//! the lease that loses the race has nothing else to do and can be stopped at once.

use super::board::{Board, FrameState, LeaseSlot};
use super::{AgentId, LeaseId, Millis};

/// An outstanding frame that could be backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    /// Index into [`Board::frames`].
    pub index: usize,
    /// The lease rendering it.
    pub lease: LeaseId,
    /// The agent holding that lease.
    pub holder: AgentId,
    /// When that lease last made progress (started, or delivered a frame).
    pub since: Millis,
}

impl Board {
    /// Frames `agent` could back up: each the only frame left undone in another agent's lease,
    /// and not backed up already.
    pub fn outstanding(&self, agent: AgentId) -> Vec<Outstanding> {
        let mut copies = vec![0u8; self.frames.len()];
        for slot in self.leases.values() {
            for &i in &slot.frames {
                copies[i] = copies[i].saturating_add(1);
            }
        }
        let mine: Vec<usize> = (self.leases.values())
            .filter(|s| s.agent == agent)
            .flat_map(|s| s.frames.iter().copied())
            .collect();
        let mut out = Vec::new();
        for (&lease, slot) in &self.leases {
            if slot.agent == agent {
                continue;
            }
            let left: Vec<usize> = self.undone(slot).collect();
            let [i] = left[..] else { continue };
            if copies[i] > 1
                || mine.contains(&i)
                || self.frames[i].state != FrameState::Leased(lease)
                || self.frames[i]
                    .check
                    .as_ref()
                    .is_some_and(|c| c.rendered_by(agent))
            {
                continue;
            }
            out.push(Outstanding {
                index: i,
                lease,
                holder: slot.agent,
                since: slot.last_progress,
            });
        }
        out
    }

    /// The frames of `slot` still leased: not delivered, failed or held for a check.
    pub fn undone<'a>(&'a self, slot: &'a LeaseSlot) -> impl Iterator<Item = usize> + 'a {
        (slot.frames.iter().copied())
            .filter(|&i| matches!(self.frames[i].state, FrameState::Leased(_)))
    }

    /// Leases a backup copy of frame index `i` to `agent` as lease `lease` (see
    /// [`Board::outstanding`]); the frame's state does not change. Returns false, changing
    /// nothing, when the frame is not leased.
    pub fn take_backup(
        &mut self,
        lease: LeaseId,
        agent: AgentId,
        i: usize,
        now: Millis,
        ttl_ms: Millis,
    ) -> bool {
        if !matches!(
            self.frames.get(i).map(|f| f.state),
            Some(FrameState::Leased(_))
        ) {
            return false;
        }
        self.frames[i].attempts += 1;
        self.leases.insert(
            lease,
            LeaseSlot {
                agent,
                frames: vec![i],
                started_at: now,
                expires_at: now + ttl_ms,
                last_progress: now,
            },
        );
        true
    }

    /// Live leases holding frame index `i` that have nothing left to do once it is done,
    /// except `agent`'s own (it ends its lease itself): the losers of a backup race, to revoke.
    pub fn superseded(&self, i: usize, agent: AgentId) -> Vec<LeaseId> {
        let finished = |slot: &LeaseSlot| {
            (slot.frames.iter()).all(|&j| matches!(self.frames[j].state, FrameState::Done(_)))
        };
        (self.leases.iter())
            .filter(|(_, s)| s.agent != agent && s.frames.contains(&i) && finished(s))
            .map(|(&id, _)| id)
            .collect()
    }
}

/// The outstanding frame to back up: of those the asking agent would finish before their
/// holders (by `finish`, the expected time a holder delivers it, or `None` when unknown),
/// the one expected last. `mine` is when the asking agent would deliver a frame started now.
pub fn choose(
    outstanding: &[Outstanding],
    mine: Millis,
    finish: impl Fn(&Outstanding) -> Option<Millis>,
) -> Option<Outstanding> {
    (outstanding.iter())
        .filter_map(|o| Some((finish(o)?, *o)))
        .filter(|(at, _)| mine < *at)
        .max_by_key(|(at, o)| (*at, std::cmp::Reverse(o.index)))
        .map(|(_, o)| o)
}
