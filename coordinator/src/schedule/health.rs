//! Bad-node handling: an agent whose chunks of one job keep failing is blocklisted for that job,
//! and one that fails on several different jobs within a short window is quarantined farm-wide
//! for a forgive time.
//!
//! Health is a function of an agent's failure records (its failed leases since an admin last
//! released it, and its frames that other PCs' renders outvoted), not a state machine: the coordinator keeps the records in SQLite, so health is
//! the same after a restart, and releasing an agent is simply an empty record list. Yields and
//! expired leases are never records (a person came back, a PC was switched off).

use std::collections::{BTreeMap, BTreeSet};

use super::Millis;

/// One hour in milliseconds.
const HOUR_MS: Millis = 60 * 60 * 1000;

/// When failures make an agent unfit for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Failures on one job after which the agent is blocklisted for it (0: never).
    pub blocklist_after: u32,
    /// Distinct failed jobs within the window that quarantine the agent (0: never).
    pub quarantine_jobs: usize,
    /// How close together those failures must be (the first and the last at most this apart).
    pub quarantine_window_ms: Millis,
    /// Wrong frames (renders other PCs outvoted) within the window that quarantine the agent,
    /// whatever their jobs (0: never). A PC that silently renders wrong images is worse than
    /// one that fails loudly.
    pub quarantine_wrong_frames: usize,
    /// How long a quarantine lasts after the failure that caused it.
    pub forgive_ms: Millis,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            blocklist_after: 3,
            quarantine_jobs: 3,
            quarantine_window_ms: HOUR_MS,
            quarantine_wrong_frames: 2,
            forgive_ms: HOUR_MS,
        }
    }
}

/// One failed lease of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecord {
    /// The job whose chunk failed.
    pub job: i64,
    /// When it failed.
    pub at: Millis,
    /// A frame it delivered that other PCs' renders outvoted, not a failed lease.
    pub wrong_frame: bool,
}

/// What an agent's failures mean for its work right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Jobs the agent gets no more chunks of.
    pub blocklisted: BTreeSet<i64>,
    /// Until when the agent gets no work at all (only set while in the future).
    pub quarantined_until: Option<Millis>,
    /// The jobs whose failures caused the quarantine (empty when not quarantined).
    pub quarantined_for: BTreeSet<i64>,
}

impl Health {
    /// Whether the agent may not take chunks of `job`.
    pub fn is_blocklisted(&self, job: i64) -> bool {
        self.blocklisted.contains(&job)
    }

    /// Whether the agent may take no work at `now`.
    pub fn is_quarantined(&self, now: Millis) -> bool {
        self.quarantined_until.is_some_and(|until| until > now)
    }
}

/// Rebuilds an agent's health from its failure records (in any order).
///
/// Blocklisted for a job after `blocklist_after` failures on it. Quarantined when failures on
/// `quarantine_jobs` distinct jobs fall within some `quarantine_window_ms` (inclusive); the
/// quarantine lasts until the latest failure that ends such a window plus `forgive_ms`, and is
/// reported only while that is later than `now`.
pub fn assess(failures: &[FailureRecord], now: Millis, policy: &HealthPolicy) -> Health {
    let mut per_job: BTreeMap<i64, u32> = BTreeMap::new();
    for f in failures {
        *per_job.entry(f.job).or_default() += 1;
    }
    let blocklisted = match policy.blocklist_after {
        0 => BTreeSet::new(),
        after => (per_job.iter())
            .filter(|&(_, &n)| n >= after)
            .map(|(&job, _)| job)
            .collect(),
    };
    let mut health = Health {
        blocklisted,
        ..Health::default()
    };
    let latest = [
        latest_quarantine(failures, policy),
        latest_wrong_frames(failures, policy),
    ]
    .into_iter()
    .flatten()
    .max_by_key(|(until, _)| *until);
    if let Some((until, cause)) = latest
        && until > now
    {
        health.quarantined_until = Some(until);
        health.quarantined_for = cause;
    }
    health
}

/// The end of the latest quarantine the records earn, with the jobs that earned it.
fn latest_quarantine(
    failures: &[FailureRecord],
    policy: &HealthPolicy,
) -> Option<(Millis, BTreeSet<i64>)> {
    if policy.quarantine_jobs == 0 {
        return None;
    }
    let mut sorted = failures.to_vec();
    sorted.sort_by_key(|f| f.at);
    // A sliding window over the records ending at each failure in turn; only windows ending at
    // a failure matter, since that failure is the one that completes them.
    let mut in_window: BTreeMap<i64, usize> = BTreeMap::new();
    let mut start = 0;
    let mut latest = None;
    for end in 0..sorted.len() {
        *in_window.entry(sorted[end].job).or_default() += 1;
        while sorted[end].at - sorted[start].at > policy.quarantine_window_ms {
            let job = sorted[start].job;
            if let Some(n) = in_window.get_mut(&job) {
                *n -= 1;
                if *n == 0 {
                    in_window.remove(&job);
                }
            }
            start += 1;
        }
        if in_window.len() >= policy.quarantine_jobs {
            let cause = in_window.keys().copied().collect();
            latest = Some((sorted[end].at.saturating_add(policy.forgive_ms), cause));
        }
    }
    latest
}

/// The end of the latest quarantine for wrong frames, with the jobs they belong to:
/// `quarantine_wrong_frames` of them within some `quarantine_window_ms`.
fn latest_wrong_frames(
    failures: &[FailureRecord],
    policy: &HealthPolicy,
) -> Option<(Millis, BTreeSet<i64>)> {
    let n = policy.quarantine_wrong_frames;
    if n == 0 {
        return None;
    }
    let mut wrong: Vec<&FailureRecord> = failures.iter().filter(|f| f.wrong_frame).collect();
    wrong.sort_by_key(|f| f.at);
    wrong
        .windows(n)
        .filter(|w| w[n - 1].at - w[0].at <= policy.quarantine_window_ms)
        .map(|w| {
            let until = w[n - 1].at.saturating_add(policy.forgive_ms);
            (until, w.iter().map(|f| f.job).collect())
        })
        .next_back()
}

/// Whether every agent able to render `job` is blocklisted for it, so the job can never finish.
/// False when no agent is able at all: the job waits for suitable PCs to join.
pub fn all_blocklisted<'a>(job: i64, capable: impl IntoIterator<Item = &'a Health>) -> bool {
    let mut any = false;
    for health in capable {
        if !health.is_blocklisted(job) {
            return false;
        }
        any = true;
    }
    any
}
