//! What the coordinator knows of its PCs when it sizes and places chunks: how long each PC is
//! likely to stay free (from its presence history, read again every few minutes), how fast each
//! renders a job (from its delivered frames), and which are free now. Also straggler backups:
//! a second copy of a straggling frame for an idle PC once nothing is queued, and the revocation
//! of whichever copy loses the race.

use std::collections::HashMap;

use idlefarm_protocol::{Lease, PresenceState};

use super::leases::LeaseOwner;
use super::state::{Coordinator, JobEntry, Sched};
use crate::error::ApiError;
use crate::schedule::availability::{self, Change};
use crate::schedule::{
    self, AgentView, ChunkPolicy, JobStatus, LeaseEnding, Millis, Peer, backup, others_finish_first,
};
use crate::store::LeaseTicket;

/// How long a PC's likely free spell is reused before its history is read again.
const SPELL_FRESH_MS: Millis = 10 * 60 * 1000;
/// How far back presence history is read for it (history is kept 30 days).
const HISTORY_MS: Millis = 29 * 24 * 60 * 60 * 1000;

/// Each agent's likely free spell, with when it was worked out.
#[derive(Debug, Default)]
pub(crate) struct Spells(std::sync::Mutex<HashMap<i64, (Millis, Option<Millis>)>>);

impl Coordinator {
    /// How long `agent`'s PC is likely to stay free from `now`, from its presence history
    /// (see [`availability::likely_free`]); `None` without enough history.
    pub(crate) async fn likely_free(&self, agent: i64, now: Millis) -> Option<Millis> {
        let cached = self
            .spells
            .0
            .lock()
            .expect("not poisoned")
            .get(&agent)
            .copied();
        if let Some((_, spell)) = cached.filter(|(at, _)| now - at < SPELL_FRESH_MS) {
            return spell;
        }
        let history = match self.store.presence_history(agent, now - HISTORY_MS).await {
            Ok(history) => history,
            Err(e) => {
                tracing::warn!(agent, "reading presence history: {e}");
                return None;
            }
        };
        let changes: Vec<Change> = (history.iter())
            .map(|c| Change {
                at: c.at_ms,
                free: c.state.may_take_work(),
            })
            .collect();
        let spell = availability::likely_free(&changes, now);
        let mut spells = self.spells.0.lock().expect("not poisoned");
        spells.insert(agent, (now, spell));
        spell
    }

    /// `agent`'s presence and chunk slots, if it was heard from within a lease's lifetime.
    pub(crate) fn presence_of(&self, agent: i64) -> Option<(PresenceState, u32)> {
        let window = self.config.lease_ttl;
        let live = self.liveness.lock().expect("not poisoned");
        let l = live.get(&agent).filter(|l| l.at.elapsed() < window)?;
        Some((l.presence, l.slots.max(1)))
    }

    /// How the next chunk of `entry` for an agent likely free for `spell` is sized: the chunk
    /// target from the spell and how long the job would still take on the live PCs, the
    /// slowest speed seen for an unmeasured PC, and the free PCs' speeds for the end of the job.
    /// Looks only at the agents measured on the job; the others count at the slowest speed.
    pub(crate) fn chunk_policy(
        &self,
        entry: &JobEntry,
        queued: usize,
        spell: Option<Millis>,
    ) -> ChunkPolicy {
        let guess = entry.speeds.guess();
        // Frames per second and chunk slots of the measured agents, free and online.
        let (mut free, mut online) = ((0.0, 0), (0.0, 0));
        {
            let window = self.config.lease_ttl;
            let live = self.liveness.lock().expect("not poisoned");
            for (agent, secs) in entry.speeds.iter() {
                let Some(l) = live.get(&agent).filter(|l| l.at.elapsed() < window) else {
                    continue;
                };
                let slots = l.slots.max(1) as usize;
                let rate = slots as f64 / secs.max(0.001);
                online = (online.0 + rate, online.1 + slots);
                if l.presence.may_take_work() {
                    free = (free.0 + rate, free.1 + slots);
                }
            }
        }
        // The unmeasured ones at the slowest speed seen; unknown before any frame.
        let rate = |(measured, slots): (f64, usize), all: usize| match all.saturating_sub(slots) {
            0 => Some(measured).filter(|&r| r > 0.0),
            rest => guess.map(|g| measured + rest as f64 / g.max(0.001)),
        };
        let farm_rate = rate(free, self.tally.free_slots());
        let job_left = rate(online, self.tally.online_slots()).map(|r| queued as f64 / r);
        let default = self.config.chunk_target.as_secs_f64();
        ChunkPolicy {
            fixed: entry.row.chunk_size,
            target_secs: availability::chunk_target(spell, job_left, default),
            guess_secs: guess,
            farm_rate,
            ..ChunkPolicy::default()
        }
    }

    /// Whether `agent` should leave the rest of `entry` to faster PCs: the free PCs already
    /// rendering the job would render all its queued frames, after the ones they hold, before
    /// `agent` delivered one (see [`others_finish_first`]). Only PCs holding a lease of the job
    /// count, so a PC is never left waiting for one that is idle for a reason of its own; and
    /// only once `agent`'s speed on the job is known or guessed.
    pub(crate) fn leave_to_faster(
        &self,
        entry: &JobEntry,
        agent: i64,
        queued: usize,
        now: Millis,
    ) -> bool {
        let secs = |a: i64| entry.speeds.of_or_guess(a);
        let Some(mine) = secs(agent) else {
            return false;
        };
        let free = |a| self.presence_of(a).is_some_and(|(p, _)| p.may_take_work());
        let mut left: HashMap<i64, f64> = HashMap::new();
        for lease in entry.board.leases.values() {
            if lease.agent == agent || !free(lease.agent) {
                continue;
            }
            let Some(spf) = secs(lease.agent) else {
                return false;
            };
            let frames = entry.board.undone(lease).count() as f64;
            let rendering = (now - lease.last_progress) as f64 / 1000.0;
            *left.entry(lease.agent).or_default() += (frames * spf - rendering).max(0.0);
        }
        let peers: Vec<Peer> = (left.into_iter())
            .filter_map(|(peer, free_in)| {
                Some(Peer {
                    free_in,
                    secs_per_frame: secs(peer)?,
                })
            })
            .collect();
        others_finish_first(queued, mine, &peers)
    }

    /// A backup copy of the straggling frame `agent` would finish soonest ahead of its holder,
    /// from the runnable jobs it may take (highest priority first), leased to it; `None` when
    /// no frame is worth a second copy. Called when nothing is queued for the agent; the lease
    /// is handed out once its ticket is saved (see [`crate::store::Store::lease_saved`]).
    pub(crate) async fn lease_backup(
        &self,
        sched: &mut Sched,
        agent: &AgentView<'_>,
        now: Millis,
    ) -> Result<Option<(Lease, LeaseTicket)>, ApiError> {
        let may_take = |e: &JobEntry| {
            let view = e.view();
            view.status == JobStatus::Runnable && schedule::misfit(&view, agent).is_none()
        };
        let mut jobs: Vec<&JobEntry> = (sched.jobs.values())
            .filter(|e| !e.board.leases.is_empty() && may_take(e))
            .filter(|e| !sched.declines.holds(agent.id, e.row.id, now))
            .collect();
        jobs.sort_by_key(|e| (std::cmp::Reverse(e.row.priority), e.row.id));
        let mut pick = None;
        for entry in jobs {
            let secs = |a: i64| entry.speeds.of_or_guess(a);
            let Some(mine) = secs(agent.id) else { continue };
            let finish = |o: &backup::Outstanding| match self.presence_of(o.holder) {
                Some((p, _)) if p.may_take_work() => {
                    Some(o.since + (secs(o.holder)? * 1000.0) as Millis)
                }
                // Stopped for a person, or not heard from: it may never deliver.
                _ => Some(Millis::MAX),
            };
            let outstanding = entry.board.outstanding(agent.id);
            let mine = now + (mine * 1000.0) as Millis;
            if let Some(o) = backup::choose(&outstanding, mine, finish) {
                pick = Some((entry.row.id, o.index));
                break;
            }
        }
        let Some((job, index)) = pick else {
            return Ok(None);
        };
        let ttl = self.config.lease_ttl.as_millis() as i64;
        let id = sched.next_lease;
        let Some(entry) = sched.jobs.get_mut(&job) else {
            return Ok(None);
        };
        if !entry.board.take_backup(id, agent.id, index, now, ttl) {
            return Ok(None);
        }
        sched.next_lease += 1;
        let slot = &entry.board.leases[&id];
        let saved = self.store.queue_lease(job, id, slot, &entry.board, None)?;
        if let Some(owner) = LeaseOwner::of_live(job, id, &entry.board) {
            sched.lease_owner.insert(id, owner);
        }
        self.metrics.backup_leased();
        tracing::info!(
            job,
            frame = entry.board.frames[index].frame,
            agent = agent.id,
            "straggler backup: a second copy of a frame near the end of the job"
        );
        Ok(Some((
            entry.lease_message(id, &[index], &self.config),
            saved,
        )))
    }

    /// After frame index `i` of `entry` was uploaded by `uploader` and kept as `kept_by`'s
    /// render: records how long it took, and revokes the leases left with nothing to do
    /// because this copy won (their agents hear it at their next heartbeat and stop; never a
    /// failure).
    pub(crate) async fn frame_arrived(
        &self,
        entry: &mut JobEntry,
        i: usize,
        uploader: i64,
        kept_by: i64,
    ) -> Result<(), ApiError> {
        let took = entry.board.frames[i]
            .render_ms
            .filter(|_| kept_by == uploader);
        if let Some(ms) = took {
            entry.speeds.record(kept_by, ms as f64 / 1000.0);
        }
        for lease in entry.board.superseded(i, uploader) {
            tracing::info!(
                job = entry.row.id,
                lease,
                "revoking a lease whose frame another copy delivered first"
            );
            self.finish_lease(entry, lease, LeaseEnding::Yield).await?;
        }
        Ok(())
    }
}
