//! When each agent was last heard from, as the database keeps it. A heartbeat that reports a
//! new presence state writes it at once (pages re-read the agents list when the `presence`
//! event arrives, and must see it); a heartbeat that only says "still here" is noted in memory
//! and written with every other one in a single transaction by the background task, twice a
//! second. On a campus of thousands of PCs that is one database write every half second
//! instead of hundreds, each with its own fsync; a crash loses at most half a second of
//! "last seen", never a presence change. Lease renewals go with the same batch: the running
//! coordinator holds the expiry that counts, and one a restart finds half a second older only
//! ends that lease as much earlier.

use std::collections::HashMap;
use std::sync::Mutex;

use idlefarm_protocol::PresenceState;

use super::Coordinator;
use super::state::now_secs;
use crate::error::ApiError;

/// "Last seen" times not written yet (agent → Unix seconds), and lease renewals (lease → new
/// expiry in Unix millis).
#[derive(Debug, Default)]
pub(crate) struct Unsaved {
    seen: Mutex<HashMap<i64, i64>>,
    renewals: Mutex<HashMap<i64, i64>>,
}

impl Unsaved {
    /// Notes that `agent` was heard from at `at` (Unix seconds).
    fn note(&self, agent: i64, at: i64) {
        let mut unsaved = self.seen.lock().expect("not poisoned");
        let seen = unsaved.entry(agent).or_insert(at);
        *seen = (*seen).max(at);
    }

    /// Takes every noted time, leaving none.
    fn take(&self) -> Vec<(i64, i64)> {
        let mut unsaved = self.seen.lock().expect("not poisoned");
        std::mem::take(&mut *unsaved).into_iter().collect()
    }

    /// Notes leases renewed until the given expiry (lease, Unix millis).
    pub(crate) fn note_renewals(&self, renewals: &[(i64, i64)]) {
        let mut unsaved = self.renewals.lock().expect("not poisoned");
        for &(lease, expires) in renewals {
            let at = unsaved.entry(lease).or_insert(expires);
            *at = (*at).max(expires);
        }
    }

    /// Takes every noted renewal, leaving none.
    fn take_renewals(&self) -> Vec<(i64, i64)> {
        let mut unsaved = self.renewals.lock().expect("not poisoned");
        std::mem::take(&mut *unsaved).into_iter().collect()
    }
}

impl Coordinator {
    /// Records that `agent` reported `presence` just now: at once when the presence changed,
    /// otherwise with the next batch.
    pub(crate) async fn agent_heard(
        &self,
        agent: i64,
        presence: PresenceState,
    ) -> Result<(), ApiError> {
        let now = now_secs();
        let changed = {
            let last = self.last_presence.lock().expect("not poisoned");
            last.get(&agent) != Some(&presence)
        };
        match changed {
            true => self.store.agent_seen(agent, presence, now).await?,
            false => self.unsaved_seen.note(agent, now),
        }
        Ok(())
    }

    /// Writes the noted "last seen" times and lease renewals (the background task calls this).
    pub(crate) async fn save_last_seen(&self) -> Result<(), ApiError> {
        let seen = self.unsaved_seen.take();
        if !seen.is_empty() {
            self.store.agents_last_seen(&seen).await?;
        }
        let renewals = self.unsaved_seen.take_renewals();
        if !renewals.is_empty() {
            self.store.renew_leases(&renewals).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_time_of_each_agent_is_taken_once() {
        let unsaved = Unsaved::default();
        unsaved.note(1, 10);
        unsaved.note(1, 12);
        unsaved.note(1, 11);
        unsaved.note(2, 5);
        let mut taken = unsaved.take();
        taken.sort_unstable();
        assert_eq!(taken, vec![(1, 12), (2, 5)]);
        assert!(unsaved.take().is_empty());
    }
}
