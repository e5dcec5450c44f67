//! Measuring the renderers: the CPU time and memory of their process groups from `/proc`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::{SAMPLE_EVERY, Usage, WINDOW};

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
            usage.renderers += 1;
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
        assert_eq!(usage.renderers, 1);
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
