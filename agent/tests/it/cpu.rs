//! CPU used by other processes: the hysteresis that keeps a spike from flapping, and a real
//! busy process seen, then excluded by its process group.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use idlefarm_agent::presence::cpu::{Hysteresis, OtherCpu};

const SECOND: Duration = Duration::from_secs(1);

/// Feeds `values`, one per second from `start`, and returns what each update said.
fn feed(h: &mut Hysteresis, start: Instant, values: &[f32]) -> Vec<bool> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| h.update(v, start + SECOND * i as u32))
        .collect()
}

#[test]
fn cpu_hysteresis_ignores_a_spike_shorter_than_rise() {
    let mut h = Hysteresis::new(50.0, 3 * SECOND, 5 * SECOND);
    let busy = feed(
        &mut h,
        Instant::now(),
        &[0.0, 90.0, 90.0, 90.0, 10.0, 90.0, 90.0, 0.0],
    );
    assert_eq!(busy, [false; 8]);
    assert!(!h.busy());
}

#[test]
fn cpu_hysteresis_becomes_busy_after_rise_and_idle_after_fall() {
    let mut h = Hysteresis::new(50.0, 3 * SECOND, 5 * SECOND);
    let start = Instant::now();
    // High from 0 s: busy at 3 s. A dip of 2 s (< fall) keeps it busy; low from 8 s to 13 s
    // (= fall) ends it.
    let values = [
        60.0, 60.0, 50.0, 70.0, 90.0, 10.0, 10.0, 80.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 99.0,
    ];
    let busy = feed(&mut h, start, &values);
    let expected = [
        false, false, false, true, true, true, true, true, true, true, true, true, true, false,
        false,
    ];
    assert_eq!(busy, expected);
    assert!(!h.busy());
    // High again from 14 s: busy once that has lasted `rise`.
    assert!(!h.update(99.0, start + 16 * SECOND));
    assert!(h.update(99.0, start + 17 * SECOND));
}

#[test]
fn cpu_hysteresis_without_delays_follows_the_value() {
    let mut h = Hysteresis::new(25.0, Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    assert_eq!(
        feed(&mut h, start, &[30.0, 10.0, 25.0, 24.9]),
        [true, false, true, false]
    );
    // An unknown value is not idle.
    assert!(h.update(f32::NAN, start + 10 * SECOND));
}

/// A shell spinning in a loop, in its own process group, killed on drop.
struct BusyLoop(Child);

impl BusyLoop {
    fn start() -> BusyLoop {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        BusyLoop(child)
    }

    fn pgid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cpu_other_use_counts_a_busy_process_unless_its_group_is_excluded() {
    let busy = BusyLoop::start();
    let pgid = busy.pgid();
    // Meters sampling side by side: same processes, nearly the same intervals.
    let mut everything = OtherCpu::new();
    let mut but_group = OtherCpu::new();
    let mut but_pid = OtherCpu::new();
    let mut seen = Vec::new();
    for _ in 0..20 {
        sleep(Duration::from_millis(500));
        let all = everything.sample(&|_, _| false);
        let group = but_group.sample(&|_, group| group == pgid);
        let pid = but_pid.sample(&|pid, _| pid == pgid);
        for share in [all, group, pid] {
            assert!((0.0..=100.0).contains(&share), "{share}");
        }
        seen.push((all, group, pid));
        // The loop uses (up to) a whole core, 50 % of a two-core machine; a 10 % share
        // survives heavy contention from other work on the machine.
        if all - group >= 10.0 && all - pid >= 10.0 {
            return;
        }
    }
    panic!("excluding the busy loop changed nothing: (all, but group, but pid) = {seen:?}");
}
