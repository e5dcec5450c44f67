//! Parallel chunks: whether the agent may take one more lease while others render.
//!
//! Some renderers leave cores idle (Eevee on a CPU, POV-Ray on small frames: start-up, parsing
//! and saving run on one core), so one chunk at a time wastes part of the PC. [`Meter`] measures
//! the CPU time and memory of the running renderers' process groups from `/proc` (utime + stime
//! over wall time, RSS), and [`Governor::may_open`] allows a further slot only when every lease
//! already held has rendered long enough to be measured, the renderers together leave at least
//! about one core idle, and one more renderer of the largest size seen fits the memory budget.
//! A slot closes by itself: a lease beyond the first is asked for only while that still holds,
//! so once a renderer uses the cores the extra slot ends with its chunk. Presence is not this
//! module's business: every renderer stops and yields for a person on its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

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
    /// Of those, how many have rendered for at least [`WINDOW`].
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
    /// rendered long enough to be measured.
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
}

/// Measures the CPU and memory of renderer process groups from `/proc`.
#[derive(Debug)]
pub struct Meter {
    /// CPU ticks last seen per process, with its group.
    seen: HashMap<u32, (u32, u64)>,
    /// Per group: samples of (time, ticks accumulated since the group was first seen).
    groups: HashMap<u32, VecDeque<(Instant, u64)>>,
    /// RSS per group at the last sample, bytes.
    rss: HashMap<u32, u64>,
    ticks_per_sec: f64,
    page_size: u64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl Meter {
    /// A meter with no samples.
    pub fn new() -> Meter {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Meter {
            seen: HashMap::new(),
            groups: HashMap::new(),
            rss: HashMap::new(),
            ticks_per_sec: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as u64 } else { 4096 },
        }
    }

    /// Reads every process of the groups in `groups` now; groups no longer listed are
    /// forgotten.
    pub fn sample(&mut self, groups: &[u32], now: Instant) {
        let wanted: HashSet<u32> = groups.iter().copied().collect();
        self.groups.retain(|g, _| wanted.contains(g));
        self.rss.clear();
        if wanted.is_empty() {
            self.seen.clear();
            return;
        }
        let mut added: HashMap<u32, u64> = HashMap::new();
        let mut seen = HashMap::new();
        for (pid, stat) in proc_stats() {
            if !wanted.contains(&stat.pgrp) {
                continue;
            }
            // A process new since the last sample started since then (its group is ours):
            // all its time counts.
            let before = match self.seen.get(&pid) {
                Some(&(group, ticks)) if group == stat.pgrp => ticks,
                _ => 0,
            };
            *added.entry(stat.pgrp).or_default() += stat.ticks.saturating_sub(before);
            *self.rss.entry(stat.pgrp).or_default() += stat.rss_pages * self.page_size;
            seen.insert(pid, (stat.pgrp, stat.ticks));
        }
        self.seen = seen;
        for group in wanted {
            let samples = self.groups.entry(group).or_default();
            let total = samples.back().map_or(0, |&(_, t)| t) + added.get(&group).unwrap_or(&0);
            samples.push_back((now, total));
            // Keep one sample at least a window old, to measure the whole window.
            while samples.len() > 2 && now.duration_since(samples[1].0) >= WINDOW {
                samples.pop_front();
            }
        }
    }

    /// What the measured groups used over the last window; `None` until some group has been
    /// sampled for a whole window.
    pub fn usage(&self) -> Option<Usage> {
        let mut usage = Usage::default();
        let mut measured = false;
        for samples in self.groups.values() {
            let (Some(&(first, t0)), Some(&(last, t1))) = (samples.front(), samples.back()) else {
                continue;
            };
            let span = last.duration_since(first);
            if span + SAMPLE_EVERY / 2 < WINDOW {
                continue;
            }
            measured = true;
            usage.cores += (t1 - t0) as f64 / self.ticks_per_sec / span.as_secs_f64();
        }
        usage.rss = self.rss.values().sum();
        usage.largest_rss = self.rss.values().copied().max().unwrap_or(0);
        measured.then_some(usage)
    }
}

/// One process as `/proc/PID/stat` shows it.
struct ProcStat {
    pgrp: u32,
    /// utime + stime, clock ticks.
    ticks: u64,
    rss_pages: u64,
}

/// Every process's group, CPU time and RSS; processes that vanish meanwhile are skipped.
fn proc_stats() -> Vec<(u32, ProcStat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&text)?))
        })
        .collect()
}

/// Parses `/proc/PID/stat` (the command name may hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<ProcStat> {
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // Index 0 is field 3 (`state`) in proc(5).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        pgrp: u32::try_from(field(5)?).ok()?,
        ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

/// MemAvailable from `/proc/meminfo`, bytes (0 when it cannot be read: then only a
/// `render_memory` budget lets a second chunk start).
pub fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
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

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        let line = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 50 0 0 39 19 3 0 \
                    1000 123456789 2048 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.pgrp, stat.ticks, stat.rss_pages), (4240, 300, 2048));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn a_busy_process_group_measures_about_one_core() {
        // A real process group spinning on one core, measured from /proc.
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = child.id();
        let mut meter = Meter::new();
        let start = Instant::now();
        assert_eq!(meter.usage(), None);
        while start.elapsed() < WINDOW + SAMPLE_EVERY {
            meter.sample(&[group], Instant::now());
            std::thread::sleep(SAMPLE_EVERY);
        }
        meter.sample(&[group], Instant::now());
        let usage = meter.usage().expect("a full window was sampled");
        let _ = child.kill();
        let _ = child.wait();
        // One core at most; on a busy machine it may get much less, but never nothing.
        assert!(usage.cores > 0.0 && usage.cores <= 1.1, "{usage:?}");
        assert!(usage.rss > 0 && usage.largest_rss == usage.rss, "{usage:?}");
        meter.sample(&[], Instant::now());
        assert_eq!(
            meter.usage(),
            None,
            "a group no longer running is forgotten"
        );
    }

    #[test]
    fn memory_available_is_read() {
        assert!(mem_available() > 0);
    }
}
