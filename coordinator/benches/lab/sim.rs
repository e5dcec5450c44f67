//! A lab simulator: the real, pure scheduling core ([`pick_order`], [`Board::take_chunk`],
//! [`chunk_size`], availability estimates, speeds, straggler backups) driven by a simulated
//! clock on the lab of `trace.rs`, with agents that behave as the real one does: a person's
//! return stops the renderer, which continues if they leave within the maximum suspend time and
//! otherwise yields, keeping finished frames; a lease the coordinator revokes stops at once.
//!
//! Which of the scheduler's means are used is a [`Policy`], so the bench can show each one's
//! effect. Deterministic for a seed. Used by the `lab_sim` bench (a table) and an invariants
//! test.

use std::collections::HashMap;

use idlefarm_coordinator::schedule::{
    AgentMode, AgentView, Board, ChunkPolicy, FrameReject, FrameState, Health, JobStatus, JobView,
    LeaseEnding, Millis, NoWork, Peer, Speeds, availability, backup, chunk_size,
    others_finish_first, pick_order,
};
use idlefarm_protocol::Renderer;

use super::trace::{self, DAY, HORIZON, HOUR, MINUTE, Pc, Rng};

/// How long a stopped render waits for its person to leave before it yields (the agent's default).
const MAX_SUSPEND: Millis = MINUTE;
/// The coordinator's default chunk target, in seconds.
const CHUNK_TARGET: f64 = 120.0;

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
    /// When they are submitted, from Monday 00:00 two weeks before (so the PCs have history).
    pub start: Millis,
}

/// Which of the scheduler's means a run uses.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Shown in the table.
    pub name: &'static str,
    /// Speeds from each delivered frame (else from each completed lease), and an unmeasured
    /// PC's first chunk of one frame (else two).
    pub frame_speeds: bool,
    /// Chunk targets from each PC's presence history at this time of day.
    pub availability: bool,
    /// Straggler backups once nothing is queued.
    pub backups: bool,
    /// Jobs of equal priority share the PCs.
    pub fair_jobs: bool,
    /// A slow PC leaves a job's last frames to faster ones that would finish them first.
    pub leave_to_faster: bool,
}

/// The scheduler as it was before issue 10, then with each means added in turn.
pub fn policies() -> Vec<Policy> {
    let before = Policy {
        name: "before",
        frame_speeds: false,
        availability: false,
        backups: false,
        fair_jobs: false,
        leave_to_faster: false,
    };
    let speeds = Policy {
        name: "+ speeds per frame",
        frame_speeds: true,
        ..before
    };
    let available = Policy {
        name: "+ availability",
        availability: true,
        ..speeds
    };
    let backups = Policy {
        name: "+ backups",
        backups: true,
        ..available
    };
    let fair = Policy {
        name: "+ fair jobs",
        fair_jobs: true,
        ..backups
    };
    let all = Policy {
        name: "+ faster first (all)",
        leave_to_faster: true,
        ..fair
    };
    vec![before, speeds, available, backups, fair, all]
}

/// Every means the coordinator uses.
pub fn current() -> Policy {
    *policies().last().expect("policies")
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// From submission to the last frame, in ms.
    pub makespan: Millis,
    /// When the capacity actually available (speed × available time over the PCs) first covers
    /// the total work, from submission, in ms.
    pub ideal: Millis,
    /// A bound no scheduler can beat when a frame a person interrupts is lost, unlike `ideal`
    /// when frames are long: the latest of `ideal` and, for each job, when the PCs' free
    /// spells could first hold all its frames whole; from submission, in ms.
    pub whole_frames: Millis,
    /// Frames rendered to the end more than once.
    pub rendered_twice: u64,
    /// Work thrown away when renders yielded, as a share of the total work.
    pub lost_share: f64,
    /// Work thrown away when a backup race was lost, as a share of the total work.
    pub duplicate_share: f64,
    /// Time the PCs rendered, as a share of the time they were available until the end.
    pub utilisation: f64,
    /// Frames done (every frame of every job, once, when the run finished).
    pub frames_done: usize,
    /// Frames of all jobs.
    pub frames_total: usize,
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
    /// When the current frame started (the lease's start, then the last frame's delivery).
    frame_started: Millis,
    done_in_lease: usize,
}

struct JobState {
    spec: JobSpec,
    board: Board,
    /// Seconds per frame from each delivered frame.
    speeds: Speeds,
    /// Seconds per frame from each completed lease (the scheduler before issue 10).
    lease_speeds: HashMap<i64, f64>,
    renders: Vec<u32>,
}

impl JobState {
    fn measured(&self, policy: &Policy, pc: usize) -> Option<f64> {
        if policy.frame_speeds {
            self.speeds.of(pc as i64)
        } else {
            self.lease_speeds.get(&(pc as i64)).copied()
        }
    }

    fn view(&self, id: usize, policy: &Policy) -> JobView<'static> {
        JobView {
            id: id as i64,
            owner: Some(self.spec.owner),
            priority: self.spec.priority,
            status: if self.board.is_complete() {
                JobStatus::Finished
            } else {
                JobStatus::Runnable
            },
            renderer: Renderer::Povray,
            required_tags: &[],
            queued: self.board.counts().queued,
            running: if policy.fair_jobs {
                self.board.leases.len()
            } else {
                0
            },
        }
    }
}

/// The simulation's state.
struct Lab<'a> {
    policy: &'a Policy,
    pcs: Vec<Pc>,
    jobs: Vec<JobState>,
    work: Vec<Option<Work>>,
    next_lease: i64,
    now: Millis,
    lost_ref_ms: f64,
    duplicate_ref_ms: f64,
}

impl Lab<'_> {
    /// Gives idle, available PC `p` a chunk, or a backup copy of a straggling frame.
    fn ask(&mut self, p: usize, available: usize) {
        let renderers = [Renderer::Povray];
        let health = Health::default();
        let agent = AgentView {
            id: p as i64,
            renderers: &renderers,
            tags: &[],
            mode: AgentMode::Active,
            may_take_work: true,
            health: &health,
        };
        let views: Vec<JobView> = (self.jobs.iter().enumerate())
            .map(|(id, j)| j.view(id, self.policy))
            .collect();
        let mut running: HashMap<Option<i64>, usize> = HashMap::new();
        for j in &self.jobs {
            *running.entry(Some(j.spec.owner)).or_default() += j.board.leases.len();
        }
        match pick_order(&views, &agent, &running, self.now) {
            Ok(order) => {
                for id in order {
                    if self.take_chunk(p, id as usize, available) {
                        return;
                    }
                }
            }
            Err(NoWork::NothingToDo) if self.policy.backups => {
                let mut order: Vec<usize> = (0..self.jobs.len()).collect();
                order.sort_by_key(|&j| (std::cmp::Reverse(self.jobs[j].spec.priority), j));
                for id in order {
                    if self.take_backup(p, id) {
                        return;
                    }
                }
            }
            Err(_) => {}
        }
    }

    fn take_chunk(&mut self, p: usize, id: usize, available: usize) -> bool {
        let now = self.now;
        let job = &self.jobs[id];
        let guess = self
            .policy
            .frame_speeds
            .then(|| job.speeds.guess())
            .flatten();
        let secs = |pc: usize| job.measured(self.policy, pc).or(guess);
        let spell = (self.policy.availability)
            .then(|| availability::likely_free(&self.pcs[p].history(now), now))
            .flatten();
        let rate = |pcs: &mut dyn Iterator<Item = usize>| {
            (self.policy.frame_speeds)
                .then(|| pcs.map(|q| secs(q).map(|s| 1.0 / s)).sum::<Option<f64>>())
                .flatten()
        };
        let farm_rate = rate(&mut (0..self.pcs.len()).filter(|&q| self.pcs[q].available(now)));
        // PCs that were free at some time in the last day: the ones working on the job,
        // now or when their people leave.
        let online = |q: &usize| self.pcs[*q].available_within(now - DAY, now) > 0;
        let job_left = rate(&mut (0..self.pcs.len()).filter(online))
            .map(|r| job.board.counts().queued as f64 / r);
        if self.policy.leave_to_faster
            && let Some(mine) = secs(p)
        {
            // The free PCs rendering this job (as the coordinator counts them).
            let peers: Option<Vec<Peer>> = (0..self.pcs.len())
                .filter(|&q| q != p && self.pcs[q].available(now))
                .filter(|&q| self.work[q].as_ref().is_some_and(|w| w.job == id))
                .map(|q| {
                    let spf = secs(q)?;
                    let free_in = self.work[q].as_ref().map_or(0.0, |w| {
                        let rendering = (now - w.frame_started) as f64 / 1000.0;
                        (w.frames.len() as f64 * spf - rendering).max(0.0)
                    });
                    Some(Peer {
                        free_in,
                        secs_per_frame: spf,
                    })
                })
                .collect();
            let queued = job.board.counts().queued;
            if peers.is_some_and(|peers| others_finish_first(queued, mine, &peers)) {
                return false;
            }
        }
        let target = availability::chunk_target(spell, job_left, CHUNK_TARGET);

        let policy = ChunkPolicy {
            target_secs: target,
            guess_secs: guess,
            farm_rate,
            // Before issue 10, an unmeasured PC's first chunk held 2 frames.
            probe_frames: if self.policy.frame_speeds { 1 } else { 2 },
            ..ChunkPolicy::default()
        };
        let job = &mut self.jobs[id];
        let queued = job.board.counts().queued;
        let want = chunk_size(&policy, job.measured(self.policy, p), queued, available);
        let lease = self.next_lease;
        let Some(taken) = (job.board).take_chunk(lease, p as i64, want, now, HORIZON, false) else {
            return false;
        };
        let frames = taken.iter().map(|&i| job.board.frames[i].frame).collect();
        self.start(p, id, lease, frames);
        true
    }

    fn take_backup(&mut self, p: usize, id: usize) -> bool {
        let now = self.now;
        let job = &self.jobs[id];
        if job.board.is_complete() {
            return false;
        }
        let secs = |pc: usize| job.measured(self.policy, pc).or_else(|| job.speeds.guess());
        let Some(mine) = secs(p) else { return false };
        let outstanding = job.board.outstanding(p as i64);
        let finish = |o: &backup::Outstanding| {
            let holder = o.holder as usize;
            if self.work[holder]
                .as_ref()
                .is_some_and(|w| w.suspended_since.is_some())
            {
                return Some(Millis::MAX);
            }
            Some(o.since + (secs(holder)? * 1000.0) as Millis)
        };
        let Some(pick) = backup::choose(&outstanding, now + (mine * 1000.0) as Millis, finish)
        else {
            return false;
        };
        let lease = self.next_lease;
        let job = &mut self.jobs[id];
        if !job
            .board
            .take_backup(lease, p as i64, pick.index, now, HORIZON)
        {
            return false;
        }
        let frame = job.board.frames[pick.index].frame;
        self.start(p, id, lease, vec![frame]);
        true
    }

    fn start(&mut self, p: usize, job: usize, lease: i64, frames: Vec<i64>) {
        self.next_lease += 1;
        self.work[p] = Some(Work {
            job,
            lease,
            frames,
            left: self.jobs[job].spec.secs_per_frame * 1000.0,
            spent: 0.0,
            suspended_since: None,
            started: self.now,
            frame_started: self.now,
            done_in_lease: 0,
        });
    }

    /// PC `p` delivered its current frame at `t`: record it, stop the lease that lost a backup
    /// race, go on with the next frame or complete the lease.
    fn deliver(&mut self, p: usize, t: Millis) {
        let Some(mut w) = self.work[p].take() else {
            return; // revoked earlier in this step
        };
        let frame = w.frames.remove(0);
        let job = &mut self.jobs[w.job];
        let i = (frame - 1) as usize;
        job.renders[i] += 1;
        match job.board.frame_done(frame, p as i64, t, None, None) {
            Ok(_) | Err(FrameReject::AlreadyDone) => {}
            Err(other) => panic!("frame {frame}: {other:?}"),
        }
        job.speeds
            .record(p as i64, (t - w.frame_started) as f64 / 1000.0);
        for lease in job.board.superseded(i, p as i64) {
            job.board.end_lease(lease, LeaseEnding::Yield);
            let loser =
                (self.work.iter()).position(|o| o.as_ref().is_some_and(|l| l.lease == lease));
            if let Some(q) = loser {
                self.duplicate_ref_ms += self.work[q].as_ref().map_or(0.0, |l| l.spent);
                self.work[q] = None;
            }
        }
        w.done_in_lease += 1;
        w.spent = 0.0;
        w.left = job.spec.secs_per_frame * 1000.0;
        w.frame_started = t;
        if w.frames.is_empty() {
            let secs = (t - w.started) as f64 / 1000.0 / w.done_in_lease as f64;
            job.lease_speeds.insert(p as i64, secs);
            job.board.end_lease(w.lease, LeaseEnding::Complete);
        } else {
            self.work[p] = Some(w);
        }
    }

    /// Presence changes: stop, continue or yield.
    fn presence(&mut self) {
        for (p, pc) in self.pcs.iter().enumerate() {
            let available = pc.available(self.now);
            let Some(w) = &mut self.work[p] else { continue };
            match (available, w.suspended_since) {
                (false, None) => w.suspended_since = Some(self.now),
                (true, Some(_)) => w.suspended_since = None,
                (false, Some(since)) if self.now - since >= MAX_SUSPEND => {
                    self.lost_ref_ms += w.spent;
                    self.jobs[w.job]
                        .board
                        .end_lease(w.lease, LeaseEnding::Yield);
                    self.work[p] = None;
                }
                _ => {}
            }
        }
    }

    /// The next event: a frame finishing, a presence change or a suspend running out.
    fn next_event(&self) -> Millis {
        let mut next = HORIZON;
        for (p, pc) in self.pcs.iter().enumerate() {
            next = next.min(pc.next_change(self.now));
            if let Some(w) = &self.work[p] {
                match w.suspended_since {
                    Some(since) => next = next.min(since + MAX_SUSPEND),
                    None => {
                        let left = (w.left / pc.speed).ceil().max(1.0) as Millis;
                        next = next.min(self.now + left)
                    }
                }
            }
        }
        next
    }
}

/// Runs `scenario` with the traces of `seed` under `policy`; `check` is called after every
/// step with the boards, the PCs and the time (for invariant tests).
pub fn run(
    scenario: &Scenario,
    seed: u64,
    policy: &Policy,
    mut check: impl FnMut(&[&Board], &[Pc], Millis),
) -> Outcome {
    let mut rng = Rng::new(seed);
    let pcs = trace::lab(scenario.pcs, &mut rng);
    let jobs: Vec<JobState> = (scenario.jobs.iter())
        .map(|&spec| JobState {
            spec,
            board: Board::new(1..=spec.frames as i64),
            speeds: Speeds::default(),
            lease_speeds: HashMap::new(),
            renders: vec![0; spec.frames],
        })
        .collect();
    let mut lab = Lab {
        policy,
        work: vec![None; pcs.len()],
        pcs,
        jobs,
        next_lease: 1,
        now: scenario.start,
        lost_ref_ms: 0.0,
        duplicate_ref_ms: 0.0,
    };
    let mut rendering_ms: Millis = 0;
    let total_ref_ms: f64 = (scenario.jobs.iter())
        .map(|j| j.frames as f64 * j.secs_per_frame * 1000.0)
        .sum();
    let frames_total: usize = scenario.jobs.iter().map(|j| j.frames).sum();
    let done = |jobs: &[JobState]| jobs.iter().all(|j| j.board.is_complete());

    while !done(&lab.jobs) && lab.now < HORIZON {
        lab.presence();
        // Idle, available PCs ask for work, as the lease loop does.
        let now = lab.now;
        let available = lab.pcs.iter().filter(|pc| pc.available(now)).count().max(1);
        for p in 0..lab.pcs.len() {
            if lab.work[p].is_none() && lab.pcs[p].available(now) {
                lab.ask(p, available);
            }
        }
        check(
            &lab.jobs.iter().map(|j| &j.board).collect::<Vec<_>>(),
            &lab.pcs,
            now,
        );
        let step = (lab.next_event() - now).max(1);
        let mut delivered = Vec::new();
        for (p, pc) in lab.pcs.iter().enumerate() {
            let Some(w) = &mut lab.work[p] else { continue };
            if w.suspended_since.is_some() {
                continue;
            }
            rendering_ms += step;
            let progress = step as f64 * pc.speed;
            w.left -= progress;
            w.spent += progress;
            if w.left <= 1e-6 {
                delivered.push(p);
            }
        }
        for p in delivered {
            lab.deliver(p, now + step);
        }
        lab.now += step;
    }
    let (pcs, jobs) = (&lab.pcs, &lab.jobs);
    let makespan = lab.now - scenario.start;
    let ideal = trace::ideal(pcs, scenario.start, total_ref_ms);
    let available_ms: Millis = (pcs.iter())
        .map(|pc| pc.available_within(scenario.start, lab.now))
        .sum();
    Outcome {
        makespan,
        ideal,
        whole_frames: (scenario.jobs.iter())
            .map(|j| trace::whole_frames(pcs, scenario.start, j.frames, j.secs_per_frame * 1000.0))
            .fold(ideal, Millis::max),
        rendered_twice: (jobs.iter())
            .flat_map(|j| j.renders.iter())
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum(),
        lost_share: lab.lost_ref_ms / total_ref_ms,
        duplicate_share: lab.duplicate_ref_ms / total_ref_ms,
        utilisation: rendering_ms as f64 / available_ms.max(1) as f64,
        frames_done: (jobs.iter())
            .flat_map(|j| j.board.frames.iter())
            .filter(|f| matches!(f.state, FrameState::Done(_)))
            .count(),
        frames_total,
    }
}

/// The scenarios of the bench: on 12 PCs, submitted Monday 10:00 in the third week of the
/// traces, in the middle of classes.
pub fn scenarios() -> Vec<Scenario> {
    let start = 14 * DAY + 10 * HOUR;
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
            name: "24 frames of 10 min, Saturday",
            pcs: 12,
            jobs: vec![job(24, 600.0, 0, 1)],
            start: start + 5 * DAY,
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
