//! CPU used by other processes: someone compiling over SSH or a scheduled job means the PC is not
//! idle, even with nobody at the keyboard.
//!
//! [`OtherCpu`] measures the share of the machine used by every process except the ones the
//! caller excludes (the agent itself and its renderers' process groups), and [`Hysteresis`] turns
//! that noisy number into a busy / not-busy answer that a short spike does not flip.

use std::time::{Duration, Instant};

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

/// Measures the CPU share of processes other than the excluded ones.
pub struct OtherCpu {
    /// None when sysinfo cannot read process data on this platform.
    system: Option<System>,
}

impl std::fmt::Debug for OtherCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherCpu")
            .field("available", &self.system.is_some())
            .finish()
    }
}

impl Default for OtherCpu {
    fn default() -> Self {
        OtherCpu::new()
    }
}

impl OtherCpu {
    /// Takes the baseline sample that the first [`OtherCpu::sample`] is measured against.
    pub fn new() -> OtherCpu {
        let system = match System::new() {
            Ok(mut system) => {
                refresh(&mut system);
                Some(system)
            }
            Err(e) => {
                tracing::warn!("cannot measure other processes' CPU use: {e}; counting it as busy");
                None
            }
        };
        OtherCpu { system }
    }

    /// Share of the whole machine (0.0..=100.0, 100 = every core busy) used since the previous
    /// call (or since [`OtherCpu::new`]) by processes for which `exclude(pid, pgid)` is false.
    ///
    /// A process is counted from the second sample that sees it: a process started since the
    /// previous call adds nothing yet. Intervals much shorter than a second give coarse values
    /// (the kernel counts CPU time in ticks of a few milliseconds). `exclude` is called only for
    /// processes that used CPU in the interval. Returns 100.0 when process data cannot be read
    /// at all, because an unknown load must not count as idle.
    pub fn sample(&mut self, exclude: &dyn Fn(u32, u32) -> bool) -> f32 {
        let Some(system) = &mut self.system else {
            return 100.0;
        };
        refresh(system);
        let cores = system.cpus().len().max(1) as f32;
        let used: f32 = system
            .processes()
            .iter()
            .filter(|(_, process)| process.cpu_usage() > 0.0)
            .filter(|(pid, _)| {
                let pid = pid.as_u32();
                // The process may have exited since the refresh; then it no longer matters.
                match process_group(pid) {
                    Some(pgid) => !exclude(pid, pgid),
                    None => false,
                }
            })
            .map(|(_, process)| process.cpu_usage())
            .sum();
        // `cpu_usage` is in percent of one core.
        (used / cores).clamp(0.0, 100.0)
    }
}

/// Refreshes CPU times only, and only of processes: threads are already in their process's
/// times and would be counted twice.
fn refresh(system: &mut System) {
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cpu().without_tasks(),
    );
}

fn process_group(pid: u32) -> Option<u32> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: getpgid only reads its argument.
    let pgid = unsafe { libc::getpgid(pid) };
    u32::try_from(pgid).ok()
}

/// Busy / not busy with hysteresis so a short spike does not flap: becomes busy once the value
/// has stayed at or above `threshold` for `rise`, and not busy once it has stayed below it for
/// `fall`. Pure: the caller passes the time of each value.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    threshold: f32,
    rise: Duration,
    fall: Duration,
    busy: bool,
    /// When the values started to disagree with `busy` without interruption.
    crossed_at: Option<Instant>,
}

impl Hysteresis {
    /// Starts not busy.
    pub fn new(threshold: f32, rise: Duration, fall: Duration) -> Hysteresis {
        Hysteresis {
            threshold,
            rise,
            fall,
            busy: false,
            crossed_at: None,
        }
    }

    /// Feeds the value measured at `now` and returns whether it is busy. A NaN value counts as
    /// at or above the threshold: an unknown load is not idle.
    pub fn update(&mut self, value: f32, now: Instant) -> bool {
        let high = value.is_nan() || value >= self.threshold;
        if high == self.busy {
            self.crossed_at = None;
            return self.busy;
        }
        let since = *self.crossed_at.get_or_insert(now);
        let hold = if self.busy { self.fall } else { self.rise };
        if now.saturating_duration_since(since) >= hold {
            self.busy = high;
            self.crossed_at = None;
        }
        self.busy
    }

    /// Whether it is busy, as of the last [`Hysteresis::update`].
    pub fn busy(&self) -> bool {
        self.busy
    }
}
