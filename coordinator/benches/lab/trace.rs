//! The simulated lab's PCs: speeds spread over 1:4 and seeded availability traces (classes with
//! people at the PCs 09:00–17:00 on weekdays, short absences during them, some evening use, a
//! few PCs switched off), what the coordinator's presence history would hold of them, and the
//! ideal finish time a schedule is measured against.

use idlefarm_coordinator::schedule::Millis;
use idlefarm_coordinator::schedule::availability::Change;

pub const SECOND: Millis = 1000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;
/// How many days the traces cover: two weeks of history, then the two weeks a run may take.
pub const DAYS: i64 = 28;
/// How far the simulation runs before it gives up on a scenario.
pub const HORIZON: Millis = DAYS * DAY;

/// SplitMix64: small, seedable, good enough for traces.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: Millis, hi: Millis) -> Millis {
        lo + (self.unit() * (hi - lo) as f64) as Millis
    }
}

/// A PC of the lab: its speed (1.0 = the fastest) and when a person uses it or it is off.
#[derive(Debug, Clone)]
pub struct Pc {
    /// Reference work per second.
    pub speed: f64,
    /// Sorted, disjoint intervals in which it is not available.
    pub busy: Vec<(Millis, Millis)>,
}

impl Pc {
    /// Whether it may render at `t`.
    pub fn available(&self, t: Millis) -> bool {
        let i = self.busy.partition_point(|&(a, _)| a <= t);
        i == 0 || self.busy[i - 1].1 <= t
    }

    /// The first moment after `t` at which its availability changes (or the horizon).
    pub fn next_change(&self, t: Millis) -> Millis {
        let i = self.busy.partition_point(|&(_, b)| b <= t);
        match self.busy.get(i) {
            Some(&(a, _)) if a > t => a,
            Some(&(_, b)) => b,
            None => HORIZON,
        }
    }

    /// What the coordinator's presence history holds of it before `now`: each change of its
    /// availability, oldest first.
    pub fn history(&self, now: Millis) -> Vec<Change> {
        let mut out = vec![Change {
            at: 0,
            free: self.available(0),
        }];
        for &(a, b) in &self.busy {
            for (at, free) in [(a, false), (b, true)] {
                if at > 0 && at <= now {
                    out.push(Change { at, free });
                }
            }
        }
        out
    }

    /// How long it is available within [from, to).
    pub fn available_within(&self, from: Millis, to: Millis) -> Millis {
        let busy: Millis = (self.busy.iter())
            .map(|&(a, b)| (b.min(to) - a.max(from)).max(0))
            .sum();
        (to - from) - busy
    }
}

/// The lab's PCs for `seed`: speeds spread evenly over 1:4, one in eight switched off for the
/// whole run and one in eight switched off every night, the others used in classes.
pub fn lab(pcs: usize, rng: &mut Rng) -> Vec<Pc> {
    let mut out = Vec::with_capacity(pcs);
    for i in 0..pcs {
        let speed = 0.25 + 0.75 * i as f64 / (pcs.max(2) - 1) as f64;
        let mut busy = Vec::new();
        match i % 8 {
            3 => busy.push((0, HORIZON)),
            5 => {
                for day in 0..DAYS {
                    busy.push((day * DAY + 19 * HOUR, day * DAY + 32 * HOUR));
                }
            }
            _ => {}
        }
        for day in 0..DAYS {
            let base = day * DAY;
            let weekday = day % 7 < 5;
            for (from, to) in [
                (9 * 60, 10 * 60 + 30),
                (10 * 60 + 45, 12 * 60 + 15),
                (13 * 60 + 15, 14 * 60 + 45),
                (15 * 60, 16 * 60 + 30),
            ] {
                if !weekday || rng.unit() > 0.7 {
                    continue;
                }
                let start = base + from * MINUTE + rng.range(-5 * MINUTE, 10 * MINUTE);
                let end = base + to * MINUTE - rng.range(0, 20 * MINUTE);
                // A short absence mid-class: the PC is free for a few minutes, then reclaimed.
                if rng.unit() < 0.3 {
                    let away = rng.range(start + 10 * MINUTE, end - 20 * MINUTE);
                    let back = away + rng.range(3 * MINUTE, 12 * MINUTE);
                    busy.push((start, away));
                    busy.push((back, end));
                } else {
                    busy.push((start, end));
                }
            }
            if rng.unit() < 0.15 {
                let start = base + 18 * HOUR + rng.range(0, 2 * HOUR);
                busy.push((start, start + rng.range(20 * MINUTE, 2 * HOUR)));
            }
        }
        busy.sort_unstable();
        out.push(Pc {
            speed,
            busy: merge(busy),
        });
    }
    out
}

fn merge(sorted: Vec<(Millis, Millis)>) -> Vec<(Millis, Millis)> {
    let mut out: Vec<(Millis, Millis)> = Vec::new();
    for (a, b) in sorted {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// When the available capacity (speed × available time, summed over the PCs) from `start`
/// first covers `work` reference ms, as a duration from `start`.
pub fn ideal(pcs: &[Pc], start: Millis, work: f64) -> Millis {
    let mut t = start;
    let mut done = 0.0;
    while t < HORIZON {
        let next = pcs
            .iter()
            .map(|pc| pc.next_change(t))
            .min()
            .unwrap_or(HORIZON);
        let rate: f64 = pcs
            .iter()
            .filter(|pc| pc.available(t))
            .map(|pc| pc.speed)
            .sum();
        let gain = rate * (next - t) as f64;
        if rate > 0.0 && done + gain >= work {
            return (t + ((work - done) / rate).ceil() as Millis) - start;
        }
        done += gain;
        t = next;
    }
    HORIZON - start
}

/// When the PCs' free spells from `start` could first hold `frames` frames of `work` reference
/// ms each, every frame within one spell, as a duration from `start`: what any scheduler needs
/// at least when a frame a person interrupts is lost.
pub fn whole_frames(pcs: &[Pc], start: Millis, frames: usize, work: f64) -> Millis {
    let fit = |end: Millis| -> usize {
        (pcs.iter())
            .map(|pc| {
                let mut count = 0;
                let mut t = start;
                while t < end {
                    let next = pc.next_change(t).min(end);
                    if pc.available(t) {
                        count += (pc.speed * (next - t) as f64 / work).floor() as usize;
                    }
                    t = next;
                }
                count
            })
            .sum()
    };
    let (mut lo, mut hi) = (start, HORIZON);
    while hi - lo > SECOND {
        let mid = lo + (hi - lo) / 2;
        if fit(mid) >= frames {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi - start
}
