//! The campus load bench's view of the machine, from `/proc`: the coordinator's CPU (its own
//! threads, and its finished children such as ffmpeg) and RSS, the load generator's own CPU,
//! and what everything else on the machine used meanwhile (the cores are shared). Also the
//! process set-up: a higher open-files limit and pinning to a core.

use std::time::{Duration, Instant};

/// CPU time of a process in seconds: its own, and its waited-for children's.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// User + system time of the process.
    pub own: f64,
    /// User + system time of its children that ended.
    pub children: f64,
}

/// Reads `/proc/PID/stat` (`self` for this process).
pub fn cpu_time(pid: &str) -> CpuTime {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // After the name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0);
    CpuTime {
        own: (field(14) + field(15)) / ticks,
        children: (field(16) + field(17)) / ticks,
    }
}

/// Busy and total CPU seconds of the whole machine, from `/proc/stat`.
pub fn machine_time() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let total: f64 = values.iter().take(8).sum();
    // idle and iowait are fields 4 and 5.
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    ((total - idle) / ticks, total / ticks)
}

/// A `/proc/PID/status` field in kB (`VmRSS:`, `VmHWM:`).
pub fn status_kb(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Raises this process's open-files limit (children inherit it): to [`OPEN_FILES`] when
/// allowed (root), else to its hard limit; returns the limit in force.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the calls to fill and read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let wanted = libc::rlimit {
                rlim_cur: OPEN_FILES.max(limit.rlim_max),
                rlim_max: OPEN_FILES.max(limit.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

/// Open files wanted by each process: every agent may hold two connections (a long-polled
/// lease request and a heartbeat), plus the data files.
pub const OPEN_FILES: u64 = 65_536;

/// Pins this thread (and the threads it starts later) to CPU `cpu`.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: the set is zeroed, filled with CPU_SET and passed with its own size.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// One second's reading of the processes.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    coordinator: CpuTime,
    generator: f64,
    machine_busy: f64,
    machine_total: f64,
}

impl Reading {
    fn now(pid: &str) -> Reading {
        let (machine_busy, machine_total) = machine_time();
        Reading {
            coordinator: cpu_time(pid),
            generator: cpu_time("self").own,
            machine_busy,
            machine_total,
        }
    }
}

/// Samples CPU and RSS once a second over the measured window.
pub struct Sampler {
    pid: String,
    start: Reading,
    started: Instant,
    last: Reading,
    last_at: Instant,
    /// The coordinator's CPU share of one core, per second.
    per_second: Vec<f64>,
    /// The coordinator's largest RSS seen, kB.
    pub max_rss_kb: u64,
    /// The most files (connections included) the coordinator had open at a sample.
    max_open: usize,
}

impl Sampler {
    /// Starts sampling the coordinator `pid`.
    pub fn start(pid: u32) -> Sampler {
        let pid = pid.to_string();
        let start = Reading::now(&pid);
        Sampler {
            max_rss_kb: status_kb(&pid, "VmRSS:"),
            pid,
            start,
            started: Instant::now(),
            last: start,
            last_at: Instant::now(),
            per_second: Vec::new(),
            max_open: 0,
        }
    }

    /// Takes one sample (call about once a second).
    pub fn tick(&mut self) {
        let now = Reading::now(&self.pid);
        let secs = self.last_at.elapsed().as_secs_f64().max(1e-3);
        self.per_second
            .push((now.coordinator.own - self.last.coordinator.own) / secs * 100.0);
        self.last = now;
        self.last_at = Instant::now();
        self.max_rss_kb = self.max_rss_kb.max(status_kb(&self.pid, "VmRSS:"));
        let open = std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, Iterator::count);
        self.max_open = self.max_open.max(open);
    }

    /// Prints the CPU and memory summary of the window so far.
    pub fn print(&self) {
        let end = Reading::now(&self.pid);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let share = |seconds: f64| seconds / secs * 100.0;
        let coordinator = end.coordinator.own - self.start.coordinator.own;
        let children = end.coordinator.children - self.start.coordinator.children;
        let generator = end.generator - self.start.generator;
        let busy = end.machine_busy - self.start.machine_busy;
        let total = end.machine_total - self.start.machine_total;
        let max = self.per_second.iter().copied().fold(0.0, f64::max);
        let window = Duration::from_secs_f64(secs);
        println!(
            "  over {window:.0?}, in % of one core (the machine has {} cores):",
            cores()
        );
        println!(
            "    coordinator        mean {:>5.1} %   max {:>5.1} % (1 s samples)",
            share(coordinator),
            max
        );
        println!(
            "    its children       mean {:>5.1} %   (ffmpeg assembling videos, when they ended)",
            share(children)
        );
        println!("    load generator     mean {:>5.1} %", share(generator));
        println!(
            "    everything else    mean {:>5.1} %   (other work on the shared machine)",
            share((busy - coordinator - children - generator).max(0.0))
        );
        println!(
            "    machine idle       mean {:>5.1} %",
            share((total - busy).max(0.0))
        );
        println!(
            "  coordinator RSS: max {:.1} MiB sampled, peak {:.1} MiB (VmHWM)",
            self.max_rss_kb as f64 / 1024.0,
            status_kb(&self.pid, "VmHWM:") as f64 / 1024.0
        );
        println!(
            "  coordinator open files (connections included): max {}",
            self.max_open
        );
    }
}

/// How many CPUs this machine has (`/proc/stat` lists each; this process may be pinned to one).
pub fn cores() -> usize {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    cpus.max(1)
}
