//! How often the presence monitor reads its sources, and how old a reading may be before the
//! agent takes work on it. Pure: the monitor and the lease loop pass in what they know.
//!
//! A person's touch can only stop a renderer once a reading has seen it, so input is read fast
//! from the moment a renderer is spawned until a while after the last one ended (the lease loop
//! starts the next chunk within that while), and slowly otherwise, to keep an idle agent cheap.

use std::time::Duration;

use super::policy::Policy;

/// What the monitor knows about this agent's renderers when it picks its next wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendering {
    /// A renderer runs (or is stopped for a person) now.
    pub now: bool,
    /// Time since a renderer last ran; `None` if none ever did.
    pub since_last: Option<Duration>,
}

/// How long after the last renderer ended input is still read fast: the gap between two
/// chunks of one job is well within it.
pub fn fast_linger(slow_poll: Duration) -> Duration {
    slow_poll
}

/// The wait before the monitor's next reading. Only the `idle` policy reads input, so only it
/// needs fast reads; the others learn about persons from logind's signals at once.
pub fn next_wait(
    policy: Policy,
    rendering: Rendering,
    fast_poll: Duration,
    slow_poll: Duration,
) -> Duration {
    let recent = rendering
        .since_last
        .is_some_and(|d| d < fast_linger(slow_poll));
    if policy == Policy::Idle && (rendering.now || recent) {
        fast_poll
    } else {
        slow_poll
    }
}

/// Whether a reading taken `age` ago may still be trusted to start work: not older than one
/// fast poll, the staleness a running renderer is held to.
pub fn is_fresh(age: Duration, fast_poll: Duration) -> bool {
    age <= fast_poll
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(40);
    const SLOW: Duration = Duration::from_secs(2);

    fn rendering(now: bool, since_last_ms: Option<u64>) -> Rendering {
        Rendering {
            now,
            since_last: since_last_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn input_is_read_fast_while_and_shortly_after_a_renderer_runs_under_idle() {
        let wait = |p, r| next_wait(p, r, FAST, SLOW);
        assert_eq!(wait(Policy::Idle, rendering(true, Some(0))), FAST);
        assert_eq!(wait(Policy::Idle, rendering(false, Some(100))), FAST);
        assert_eq!(wait(Policy::Idle, rendering(false, Some(1999))), FAST);
        assert_eq!(wait(Policy::Idle, rendering(false, Some(2000))), SLOW);
        assert_eq!(wait(Policy::Idle, rendering(false, None)), SLOW);
        for policy in [Policy::NoUser, Policy::Always] {
            assert_eq!(wait(policy, rendering(true, Some(0))), SLOW);
        }
    }

    #[test]
    fn a_reading_older_than_one_fast_poll_is_stale() {
        assert!(is_fresh(Duration::ZERO, FAST));
        assert!(is_fresh(FAST, FAST));
        assert!(!is_fresh(FAST + Duration::from_millis(1), FAST));
        assert!(!is_fresh(SLOW, FAST));
    }
}
