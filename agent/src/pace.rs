//! Pacing of the lease loop after leases that end badly.
//!
//! A lease given back or failed for a reason that is not a person or a shutdown (the input
//! cannot be prepared, the disk is full, the renderer fails) may be handed straight back by the
//! coordinator; asking again at once turns one bad job into thousands of leases a minute while
//! the jobs queued behind it wait. So each such ending doubles a wait before the next request
//! (capped), and a completed lease clears it. The agent keeps asking after the wait, so other
//! jobs are still taken.

use std::time::Duration;

/// Wait after the first lease that ends badly.
pub const FIRST_SETBACK_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between leases while they keep ending badly.
pub const MAX_SETBACK_WAIT: Duration = Duration::from_secs(120);

/// How a lease ended, as far as the next request is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every frame was rendered and uploaded.
    Completed,
    /// Ended for a person, a shutdown or a revocation: nothing wrong with the agent or the job.
    Interrupted,
    /// Given back or failed for any other reason.
    Setback,
}

/// The wait before the next lease request.
#[derive(Debug)]
pub struct Pace {
    wait: Duration,
    first: Duration,
    max: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new(FIRST_SETBACK_WAIT)
    }
}

impl Pace {
    /// Waits that start at `first` and double up to 120 × `first` (2 min for the default 1 s).
    pub fn new(first: Duration) -> Pace {
        Pace {
            wait: Duration::ZERO,
            first,
            max: first * (MAX_SETBACK_WAIT.as_secs() / FIRST_SETBACK_WAIT.as_secs()) as u32,
        }
    }

    /// Records how a lease ended; returns how long to wait before asking for the next one.
    pub fn after(&mut self, ending: Ending) -> Duration {
        match ending {
            Ending::Completed => {
                self.wait = Duration::ZERO;
                Duration::ZERO
            }
            Ending::Interrupted => Duration::ZERO,
            Ending::Setback => {
                self.wait = (self.wait * 2).clamp(self.first, self.max);
                self.wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setbacks_double_the_wait_up_to_the_cap_and_a_completed_lease_clears_it() {
        let mut pace = Pace::default();
        let waits: Vec<u64> = (0..10)
            .map(|_| pace.after(Ending::Setback).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        assert_eq!(pace.after(Ending::Interrupted), Duration::ZERO);
        assert_eq!(pace.after(Ending::Setback).as_secs(), 120, "not cleared");
        assert_eq!(pace.after(Ending::Completed), Duration::ZERO);
        assert_eq!(pace.after(Ending::Setback), FIRST_SETBACK_WAIT);
    }
}
