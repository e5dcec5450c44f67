//! Parallel chunks: whether the agent may take one more lease while others render.
//!
//! Some renderers leave cores idle (Eevee on a CPU, POV-Ray on small frames: start-up, parsing
//! and saving run on one core), so one chunk at a time wastes part of the PC. [`Meter`] measures
//! the CPU time and memory of the running renderers' process groups from `/proc` (utime + stime
//! over wall time, RSS), and [`Governor::may_open`] allows a further slot only when every lease
//! already held has rendered long enough past its first frame to be measured (a renderer's
//! start, loading the scene or compiling shaders, runs on one core whatever its frames use), the
//! renderers together leave at least
//! about one core idle, and one more renderer of the largest size seen fits the memory budget.
//! A slot closes by itself: a lease beyond the first is asked for only while that still holds,
//! so once a renderer uses the cores the extra slot ends with its chunk. Presence is not this
//! module's business: every renderer stops and yields for a person on its own.

mod meter;

use std::time::Duration;

pub use meter::{Meter, mem_available};

/// How often the renderers are measured while any runs.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The span CPU use is averaged over; a renderer is judged only once it ran this long.
pub const WINDOW: Duration = Duration::from_millis(1500);
/// Idle cores the running renderers must leave before one more chunk is taken.
const IDLE_TO_OPEN: f64 = 0.75;
/// Share of the memory available (plus what the renderers hold) that renderers may use when
/// no `render_memory` is set: the rest stays for the person who comes back.
const DEFAULT_MEMORY_SHARE: f64 = 0.75;

/// How many chunks may run at once and in how much memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelLimits {
    /// Most chunks at once (1: one at a time).
    pub max_parallel: usize,
    /// Most memory all renderers together may use, bytes; `None`: three quarters of what is
    /// available (MemAvailable plus what the renderers already hold).
    pub render_memory: Option<u64>,
}

impl Default for ParallelLimits {
    fn default() -> Self {
        ParallelLimits {
            max_parallel: cores(),
            render_memory: None,
        }
    }
}

/// Cores this process may use (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Why `max_parallel` is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a number of chunks at once (1 or more; 1 renders one chunk at a time)")]
pub struct BadMaxParallel(pub String);

/// Parses `max_parallel`: a whole number ≥ 1.
pub fn parse_max_parallel(s: &str) -> Result<usize, BadMaxParallel> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(BadMaxParallel(s.to_owned())),
    }
}

/// What the renderers used over the last [`WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU, in cores (1.0 = one core busy all the time).
    pub cores: f64,
    /// Renderers (process groups) measured over the whole window.
    pub renderers: usize,
    /// Resident memory of all renderers now, bytes.
    pub rss: u64,
    /// Resident memory of the largest renderer group now, bytes.
    pub largest_rss: u64,
}

/// The state the decision is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Leases held now.
    pub leases: usize,
    /// Of those, how many have rendered for at least [`WINDOW`] since their first frame.
    pub measured: usize,
    /// The renderers' use; `None` before a full window of samples.
    pub usage: Option<Usage>,
    /// MemAvailable, bytes.
    pub mem_available: u64,
    /// Cores of the PC.
    pub cores: usize,
}

/// Why no further chunk is taken now (for the log).
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// `max_parallel` chunks run already.
    AtMost(usize),
    /// A lease is not rendering yet (preparing its input, starting, uploading), or has not
    /// rendered long enough past its first frame to be measured.
    NotMeasured,
    /// The renderers leave less than [`IDLE_TO_OPEN`] cores idle.
    CoresBusy(f64),
    /// One more renderer would not fit the memory budget.
    Memory {
        /// What the renderers would need, bytes.
        need: u64,
        /// The budget, bytes.
        budget: u64,
    },
}

/// Decides whether one more chunk may start.
#[derive(Debug, Clone, Copy)]
pub struct Governor {
    limits: ParallelLimits,
}

impl Governor {
    /// A governor within `limits`.
    pub fn new(limits: ParallelLimits) -> Governor {
        Governor { limits }
    }

    /// Most chunks at once.
    pub fn max_parallel(&self) -> usize {
        self.limits.max_parallel.max(1)
    }

    /// Whether one more lease may be asked for; the first always may.
    pub fn may_open(&self, load: &Load) -> Result<(), Closed> {
        if load.leases == 0 {
            return Ok(());
        }
        if load.leases >= self.max_parallel() {
            return Err(Closed::AtMost(self.max_parallel()));
        }
        let Some(usage) = load.usage.filter(|_| load.measured >= load.leases) else {
            return Err(Closed::NotMeasured);
        };
        let idle = load.cores as f64 - usage.cores;
        if idle < IDLE_TO_OPEN {
            return Err(Closed::CoresBusy(idle.max(0.0)));
        }
        let need = usage.largest_rss.saturating_mul(load.leases as u64 + 1);
        let budget = self.limits.render_memory.unwrap_or_else(|| {
            ((load.mem_available + usage.rss) as f64 * DEFAULT_MEMORY_SHARE) as u64
        });
        if need > budget {
            return Err(Closed::Memory { need, budget });
        }
        Ok(())
    }

    /// How many chunks the agent would run at once, given what one renderer used when last
    /// measured (`None`: nothing measured yet): the coordinator splits the end of a job for
    /// that many. The same rule as [`Governor::may_open`]: one chunk, and one more for each
    /// further renderer of that size that would still leave [`IDLE_TO_OPEN`] cores idle.
    pub fn slots(&self, last: Option<Usage>, cores: usize) -> usize {
        let Some(usage) = last.filter(|u| u.renderers > 0) else {
            return self.max_parallel();
        };
        let per_chunk = usage.cores / usage.renderers as f64;
        let more = match per_chunk > 0.0 {
            true => ((cores as f64 - IDLE_TO_OPEN) / per_chunk).floor().max(0.0) as usize,
            false => self.max_parallel(),
        };
        (1 + more).min(self.max_parallel())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn load(leases: usize, cores_used: f64, largest: u64) -> Load {
        Load {
            leases,
            measured: leases,
            usage: Some(Usage {
                cores: cores_used,
                renderers: leases,
                rss: largest * leases as u64,
                largest_rss: largest,
            }),
            mem_available: 8 * GIB,
            cores: 2,
        }
    }

    #[test]
    fn a_second_chunk_needs_an_idle_core_memory_and_measured_renderers() {
        let g = Governor::new(ParallelLimits {
            max_parallel: 2,
            render_memory: None,
        });
        // The first chunk is always taken.
        assert_eq!(g.may_open(&load(0, 0.0, 0)), Ok(()));
        // Eevee on a CPU: one renderer, one core.
        assert_eq!(g.may_open(&load(1, 0.9, GIB / 2)), Ok(()));
        // Cycles: every core.
        assert!(matches!(
            g.may_open(&load(1, 1.9, GIB / 2)),
            Err(Closed::CoresBusy(_))
        ));
        assert_eq!(
            g.may_open(&load(2, 0.5, GIB / 2)),
            Err(Closed::AtMost(2)),
            "never beyond max_parallel"
        );
        let mut starting = load(1, 0.1, GIB / 2);
        starting.measured = 0;
        assert_eq!(g.may_open(&starting), Err(Closed::NotMeasured));
        starting.measured = 1;
        starting.usage = None;
        assert_eq!(g.may_open(&starting), Err(Closed::NotMeasured));
        // 5 GiB renderers: two need 10 GiB, three quarters of 8 + 5 GiB is 9.75 GiB.
        assert!(matches!(
            g.may_open(&load(1, 0.9, 5 * GIB)),
            Err(Closed::Memory { .. })
        ));
        let tight = Governor::new(ParallelLimits {
            max_parallel: 4,
            render_memory: Some(GIB),
        });
        assert!(matches!(
            tight.may_open(&load(1, 0.9, GIB / 2 + 1)),
            Err(Closed::Memory { .. })
        ));
        assert_eq!(tight.may_open(&load(1, 0.9, GIB / 2)), Ok(()));
    }

    #[test]
    fn the_slots_offered_are_the_chunks_that_would_run_at_once() {
        let g = Governor::new(ParallelLimits {
            max_parallel: 4,
            render_memory: None,
        });
        let measured = |cores_used: f64, renderers: usize| {
            Some(Usage {
                cores: cores_used,
                renderers,
                ..Usage::default()
            })
        };
        assert_eq!(g.slots(None, 2), 4, "nothing measured: every slot");
        // Cycles fills both cores: one chunk at a time.
        assert_eq!(g.slots(measured(1.9, 1), 2), 1);
        // Eevee on a CPU: one core each, so two on two cores.
        assert_eq!(g.slots(measured(0.9, 1), 2), 2);
        assert_eq!(g.slots(measured(1.8, 2), 2), 2);
        // Small POV-Ray frames: as many as max_parallel allows.
        assert_eq!(g.slots(measured(0.4, 1), 8), 4);
        // Renderers that used no CPU at all say nothing either way.
        assert_eq!(g.slots(measured(0.0, 1), 2), 4);
        let one = Governor::new(ParallelLimits {
            max_parallel: 1,
            render_memory: None,
        });
        assert_eq!(one.slots(measured(0.1, 1), 2), 1);
    }

    #[test]
    fn one_disables_and_malformed_values_are_refused() {
        let one = Governor::new(ParallelLimits {
            max_parallel: 1,
            render_memory: None,
        });
        assert_eq!(one.may_open(&load(1, 0.0, 1)), Err(Closed::AtMost(1)));
        assert_eq!(parse_max_parallel("3"), Ok(3));
        for bad in ["0", "-1", "two", "", "1.5"] {
            let err = parse_max_parallel(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        assert!(ParallelLimits::default().max_parallel >= 1);
    }
}
