//! A lab simulator: the real, pure scheduling core ([`pick_order`], [`Board::take_chunk`],
//! [`chunk_size`]) driven by a simulated clock, PCs of mixed speed (1:4) and seeded
//! availability traces (classes with people at the PCs 09:00–17:00 on weekdays, short
//! absences during them, some evening use, a few PCs switched off), and agents that behave as
//! the real one does: a person's return stops the renderer, which continues if they leave
//! within the maximum suspend time and otherwise yields, keeping finished frames.
//!
//! Deterministic for a seed. Used by the `lab_sim` bench (a table) and an invariants test.

use std::collections::HashMap;

use idlefarm_coordinator::schedule::{
    AgentMode, AgentView, Board, ChunkPolicy, FrameReject, FrameState, Health, JobStatus, JobView,
    LeaseEnding, Millis, chunk_size, pick_order,
};
use idlefarm_protocol::Renderer;

const SECOND: Millis = 1000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;
/// How long a stopped render waits for its person to leave before it yields (the agent's default).
const MAX_SUSPEND: Millis = MINUTE;
/// How far the simulation runs before it gives up on a scenario.
const HORIZON: Millis = 14 * DAY;

/// A job of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct JobSpec {
    /// Frames in the job.
    pub frames: usize,
    /// Seconds one frame takes on the fastest PC.
    pub secs_per_frame: f64,
    /// Higher runs first.
    pub priority: i64,
    /// The submitter (jobs of different owners share the farm).
    pub owner: i64,
}

/// A lab and its work.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Shown in the table.
    pub name: &'static str,
    /// How many PCs.
    pub pcs: usize,
    /// The jobs, all submitted at the start.
    pub jobs: Vec<JobSpec>,
    /// When they are submitted, from Monday 00:00.
    pub start: Millis,
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// From submission to the last frame, in ms.
    pub makespan: Millis,
    /// When the capacity actually available (speed × available time over the PCs) first covers
    /// the total work, from submission, in ms.
    pub ideal: Millis,
    /// Frames rendered to the end more than once.
    pub rendered_twice: u64,
    /// Work thrown away when renders yielded, as a share of the total work.
    pub lost_share: f64,
    /// Time the PCs rendered, as a share of the time they were available until the end.
    pub utilisation: f64,
    /// Frames done (every frame of every job, once, when the run finished).
    pub frames_done: usize,
    /// Frames of all jobs.
    pub frames_total: usize,
}

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

    fn range(&mut self, lo: Millis, hi: Millis) -> Millis {
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
        !self.busy.iter().any(|&(a, b)| a <= t && t < b)
    }

    /// The first moment after `t` at which its availability changes (or the horizon).
    fn next_change(&self, t: Millis) -> Millis {
        self.busy
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter(|&x| x > t)
            .min()
            .unwrap_or(HORIZON)
    }

    /// How long it is available within [from, to).
    fn available_within(&self, from: Millis, to: Millis) -> Millis {
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
                for day in 0..14 {
                    busy.push((day * DAY + 19 * HOUR, day * DAY + 32 * HOUR));
                }
            }
            _ => {}
        }
        for day in 0..14 {
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

/// A PC at work: the lease it holds and where its current frame is.
#[derive(Debug, Clone)]
struct Work {
    job: usize,
    lease: i64,
    /// Frame numbers still to render, in order; the first is being rendered.
    frames: Vec<i64>,
    /// Work left on the current frame, in reference milliseconds.
    left: f64,
    /// Work already spent on the current frame.
    spent: f64,
    /// Since when it is stopped for a person.
    suspended_since: Option<Millis>,
    started: Millis,
    done_in_lease: usize,
}

struct JobState {
    spec: JobSpec,
    board: Board,
    /// Measured seconds per frame, by PC.
    speed: HashMap<i64, f64>,
    renders: Vec<u32>,
}

/// Runs `scenario` with the traces of `seed`; `check` is called after every step with the
/// boards, the PCs and the time (for invariant tests).
pub fn run(
    scenario: &Scenario,
    seed: u64,
    mut check: impl FnMut(&[&Board], &[Pc], Millis),
) -> Outcome {
    let mut rng = Rng::new(seed);
    let pcs = lab(scenario.pcs, &mut rng);
    let mut jobs: Vec<JobState> = (scenario.jobs.iter())
        .map(|&spec| JobState {
            spec,
            board: Board::new(1..=spec.frames as i64),
            speed: HashMap::new(),
            renders: vec![0; spec.frames],
        })
        .collect();
    let mut work: Vec<Option<Work>> = vec![None; pcs.len()];
    let renderers = [Renderer::Povray];
    let tags: Vec<String> = Vec::new();
    let health = Health::default();
    let mut next_lease = 1;
    let mut now = scenario.start;
    let mut rendering_ms: Millis = 0;
    let mut lost_ref_ms = 0.0;
    let total_ref_ms: f64 = (scenario.jobs.iter())
        .map(|j| j.frames as f64 * j.secs_per_frame * 1000.0)
        .sum();
    let frames_total: usize = scenario.jobs.iter().map(|j| j.frames).sum();
    let done = |jobs: &[JobState]| jobs.iter().all(|j| j.board.is_complete());

    while !done(&jobs) && now < HORIZON {
        // Presence changes: stop, continue or yield.
        for (p, pc) in pcs.iter().enumerate() {
            let available = pc.available(now);
            let Some(w) = &mut work[p] else { continue };
            match (available, w.suspended_since) {
                (false, None) => w.suspended_since = Some(now),
                (true, Some(_)) => w.suspended_since = None,
                (false, Some(since)) if now - since >= MAX_SUSPEND => {
                    lost_ref_ms += w.spent;
                    jobs[w.job].board.end_lease(w.lease, LeaseEnding::Yield);
                    work[p] = None;
                }
                _ => {}
            }
        }
        // Idle, available PCs ask for work, as the lease loop does.
        let available_count = pcs.iter().filter(|pc| pc.available(now)).count().max(1);
        for (p, pc) in pcs.iter().enumerate() {
            if work[p].is_some() || !pc.available(now) {
                continue;
            }
            let views: Vec<JobView> = (jobs.iter().enumerate())
                .map(|(id, j)| JobView {
                    id: id as i64,
                    owner: Some(j.spec.owner),
                    priority: j.spec.priority,
                    status: if j.board.is_complete() {
                        JobStatus::Finished
                    } else {
                        JobStatus::Runnable
                    },
                    renderer: Renderer::Povray,
                    required_tags: &[],
                    queued: j.board.counts().queued,
                })
                .collect();
            let agent = AgentView {
                id: p as i64,
                renderers: &renderers,
                tags: &tags,
                mode: AgentMode::Active,
                may_take_work: true,
                health: &health,
            };
            let mut running: HashMap<Option<i64>, usize> = HashMap::new();
            for j in &jobs {
                *running.entry(Some(j.spec.owner)).or_default() += j.board.leases.len();
            }
            let Ok(order) = pick_order(&views, &agent, &running, now) else {
                continue;
            };
            for id in order {
                let job = &mut jobs[id as usize];
                let queued = job.board.counts().queued;
                let want = chunk_size(
                    &ChunkPolicy::default(),
                    job.speed.get(&(p as i64)).copied(),
                    queued,
                    available_count,
                );
                let lease = next_lease;
                if let Some(taken) = job
                    .board
                    .take_chunk(lease, p as i64, want, now, HORIZON, false)
                {
                    next_lease += 1;
                    let frames: Vec<i64> =
                        taken.iter().map(|&i| job.board.frames[i].frame).collect();
                    work[p] = Some(Work {
                        job: id as usize,
                        lease,
                        frames,
                        left: job.spec.secs_per_frame * 1000.0,
                        spent: 0.0,
                        suspended_since: None,
                        started: now,
                        done_in_lease: 0,
                    });
                    break;
                }
            }
        }
        check(
            &jobs.iter().map(|j| &j.board).collect::<Vec<_>>(),
            &pcs,
            now,
        );
        // Advance to the next event: a frame finishing, a presence change or a suspend running out.
        let mut next = HORIZON;
        for (p, pc) in pcs.iter().enumerate() {
            next = next.min(pc.next_change(now));
            if let Some(w) = &work[p] {
                match w.suspended_since {
                    Some(since) => next = next.min(since + MAX_SUSPEND),
                    None => next = next.min(now + (w.left / pc.speed).ceil().max(1.0) as Millis),
                }
            }
        }
        let step = (next - now).max(1);
        for (p, pc) in pcs.iter().enumerate() {
            let Some(w) = &mut work[p] else { continue };
            if w.suspended_since.is_some() {
                continue;
            }
            rendering_ms += step;
            let progress = step as f64 * pc.speed;
            w.left -= progress;
            w.spent += progress;
            if w.left <= 1e-6 {
                let frame = w.frames.remove(0);
                let job = &mut jobs[w.job];
                let i = (frame - 1) as usize;
                job.renders[i] += 1;
                match job
                    .board
                    .frame_done(frame, p as i64, now + step, None, None)
                {
                    Ok(_) | Err(FrameReject::AlreadyDone) => {}
                    Err(other) => panic!("frame {frame}: {other:?}"),
                }
                w.done_in_lease += 1;
                w.spent = 0.0;
                w.left = job.spec.secs_per_frame * 1000.0;
                if w.frames.is_empty() {
                    let secs = (now + step - w.started) as f64 / 1000.0 / w.done_in_lease as f64;
                    job.speed.insert(p as i64, secs);
                    job.board.end_lease(w.lease, LeaseEnding::Complete);
                    work[p] = None;
                }
            }
        }
        now += step;
    }
    let makespan = now - scenario.start;
    let available_ms: Millis = (pcs.iter())
        .map(|pc| pc.available_within(scenario.start, now))
        .sum();
    Outcome {
        makespan,
        ideal: ideal(&pcs, scenario.start, total_ref_ms),
        rendered_twice: (jobs.iter())
            .flat_map(|j| j.renders.iter())
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum(),
        lost_share: lost_ref_ms / total_ref_ms,
        utilisation: rendering_ms as f64 / available_ms.max(1) as f64,
        frames_done: (jobs.iter())
            .flat_map(|j| j.board.frames.iter())
            .filter(|f| matches!(f.state, FrameState::Done(_)))
            .count(),
        frames_total,
    }
}

/// When the available capacity (speed × available time, summed over the PCs) from `start`
/// first covers `work` reference ms, as a duration from `start`.
fn ideal(pcs: &[Pc], start: Millis, work: f64) -> Millis {
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

/// The scenarios of the bench: on 12 PCs, submitted Monday 10:00, in the middle of classes.
pub fn scenarios() -> Vec<Scenario> {
    let start = 10 * HOUR;
    let job = |frames, secs_per_frame, priority, owner| JobSpec {
        frames,
        secs_per_frame,
        priority,
        owner,
    };
    vec![
        Scenario {
            name: "200 frames of 30 s",
            pcs: 12,
            jobs: vec![job(200, 30.0, 0, 1)],
            start,
        },
        Scenario {
            name: "2,000 frames of 2 s",
            pcs: 12,
            jobs: vec![job(2000, 2.0, 0, 1)],
            start,
        },
        Scenario {
            name: "24 frames of 10 min",
            pcs: 12,
            jobs: vec![job(24, 600.0, 0, 1)],
            start,
        },
        Scenario {
            name: "three jobs, priorities 2/1/0",
            pcs: 12,
            jobs: vec![
                job(200, 30.0, 2, 1),
                job(2000, 2.0, 1, 2),
                job(24, 600.0, 0, 3),
            ],
            start,
        },
    ]
}
