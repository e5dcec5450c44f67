//! Leases agents declined (their disk budget cannot hold the job's input): such a job is not
//! offered to that agent again for a while, and the reason is shown with the agent. A decline
//! is never a failure: it neither blocklists nor quarantines the agent.

use std::collections::HashMap;

/// How long a declined job is not offered to the agent that declined it, in milliseconds: long
/// enough not to download and decline it again and again, short enough to try again once other
/// inputs have left the PC's cache.
pub const DECLINE_HOLD_MS: i64 = 10 * 60 * 1000;

/// One declined lease.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decline {
    /// The job the lease was a chunk of.
    pub job: i64,
    /// The agent's reason.
    pub reason: String,
    /// When, Unix milliseconds.
    pub at: i64,
}

/// Each agent's recent declines, newest last.
#[derive(Debug, Default)]
pub(crate) struct Declines(HashMap<i64, Vec<Decline>>);

impl Declines {
    /// Remembers that `agent` declined a chunk of `job`; forgets declines past the hold.
    pub fn record(&mut self, agent: i64, job: i64, reason: String, now: i64) {
        let list = self.0.entry(agent).or_default();
        list.retain(|d| d.job != job && now - d.at < DECLINE_HOLD_MS);
        list.push(Decline {
            job,
            reason,
            at: now,
        });
    }

    /// Whether `agent` declined `job` less than [`DECLINE_HOLD_MS`] ago.
    pub fn holds(&self, agent: i64, job: i64, now: i64) -> bool {
        self.0.get(&agent).is_some_and(|l| {
            l.iter()
                .any(|d| d.job == job && now - d.at < DECLINE_HOLD_MS)
        })
    }

    /// The agent's latest decline still in force, for a person: `job 3: <reason>`.
    pub fn describe(&self, agent: i64, now: i64) -> Option<String> {
        let d = self
            .0
            .get(&agent)?
            .iter()
            .rev()
            .find(|d| now - d.at < DECLINE_HOLD_MS)?;
        Some(format!("declined job {}: {}", d.job, d.reason))
    }

    /// Forgets an agent's declines (an admin released it, or it was removed).
    pub fn forget(&mut self, agent: i64) {
        self.0.remove(&agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decline_holds_its_job_for_a_while_and_is_described() {
        let mut d = Declines::default();
        d.record(4, 7, "the input needs 2 GiB".into(), 1_000);
        d.record(4, 8, "the input needs 3 GiB".into(), 2_000);
        assert!(d.holds(4, 7, 2_000) && d.holds(4, 8, 2_000));
        assert!(!d.holds(4, 9, 2_000) && !d.holds(5, 7, 2_000));
        assert_eq!(
            d.describe(4, 2_000).as_deref(),
            Some("declined job 8: the input needs 3 GiB")
        );
        assert!(!d.holds(4, 7, 1_000 + DECLINE_HOLD_MS));
        assert!(d.describe(4, 2_000 + DECLINE_HOLD_MS).is_none());
        d.forget(4);
        assert!(!d.holds(4, 8, 2_000));
    }
}
