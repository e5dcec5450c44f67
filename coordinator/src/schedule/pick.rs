//! Which job an agent gets next, or why it gets nothing.
//!
//! The coordinator fills in plain views of its jobs and of the asking agent; [`pick_order`]
//! returns the jobs worth trying in order (higher priority first; among equal priorities the
//! owner with fewer running leases, so users share the farm fairly; then the job with fewer
//! running leases, so one user's jobs share it too; then first come first served), or a [`NoWork`] a person can read on the dashboard.

use std::collections::HashMap;
use std::fmt;

use idlefarm_protocol::Renderer;

use super::Millis;
use super::health::Health;

/// Where a job stands, as far as handing out chunks goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Frames may be leased.
    Runnable,
    /// A person paused it; no new leases.
    Paused,
    /// A person cancelled it; it will never run again.
    Cancelled,
    /// Assembling, done or failed: nothing to render.
    Finished,
}

/// What [`pick_order`] needs to know about a job.
#[derive(Debug, Clone, Copy)]
pub struct JobView<'a> {
    /// Job id (lower is older).
    pub id: i64,
    /// The user who submitted it, if any.
    pub owner: Option<i64>,
    /// Higher runs first.
    pub priority: i64,
    /// Whether it may be leased.
    pub status: JobStatus,
    /// The renderer it needs.
    pub renderer: Renderer,
    /// Tags an agent must have to take it.
    pub required_tags: &'a [String],
    /// Frames waiting for an agent.
    pub queued: usize,
    /// Its live leases: among jobs of equal priority and owners equally served, the job with
    /// fewer goes first, so the jobs share the PCs rather than the oldest taking them all.
    pub running: usize,
}

pub use idlefarm_protocol::AgentMode;

/// What [`pick_order`] needs to know about the asking agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    /// Agent id.
    pub id: i64,
    /// Renderers it has.
    pub renderers: &'a [Renderer],
    /// Its tags.
    pub tags: &'a [String],
    /// What an admin set it to.
    pub mode: AgentMode,
    /// Whether its presence allows work (nobody is using the PC, within its schedule).
    pub may_take_work: bool,
    /// Its blocklist and quarantine, from [`super::health::assess`].
    pub health: &'a Health,
}

/// Why one job does not suit one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The agent lacks the job's renderer.
    Renderer(Renderer),
    /// The agent lacks a tag the job requires.
    Tag(String),
    /// The agent failed this job too often.
    Blocklisted,
}

/// Why a job does not suit an agent, whatever the job's status; `None` when it does.
pub fn misfit(job: &JobView, agent: &AgentView) -> Option<Misfit> {
    if !agent.renderers.contains(&job.renderer) {
        return Some(Misfit::Renderer(job.renderer));
    }
    if let Some(tag) = job.required_tags.iter().find(|t| !agent.tags.contains(t)) {
        return Some(Misfit::Tag(tag.clone()));
    }
    if agent.health.is_blocklisted(job.id) {
        return Some(Misfit::Blocklisted);
    }
    None
}

/// Queued jobs an agent cannot take, by reason (each job counted once, for its first reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unfit {
    /// The agent's renderers.
    pub agent_renderers: Vec<Renderer>,
    /// How many jobs need a renderer the agent lacks.
    pub renderer: usize,
    /// The renderers those jobs need.
    pub missing_renderers: Vec<Renderer>,
    /// How many jobs need a tag the agent lacks.
    pub tags: usize,
    /// The first missing tag of each such job, sorted, without repeats.
    pub missing_tags: Vec<String>,
    /// Jobs the agent is blocklisted for.
    pub blocklisted: Vec<i64>,
}

/// Why an agent gets no work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoWork {
    /// An admin disabled it.
    Disabled,
    /// An admin is draining it.
    Draining,
    /// Its presence says no (someone is using the PC, or it is outside its schedule).
    Busy,
    /// It failed on too many jobs lately.
    Quarantined {
        /// When it may work again.
        until: Millis,
        /// On how many jobs it failed.
        jobs: usize,
    },
    /// No job has queued frames.
    NothingToDo,
    /// Jobs have queued frames, but none suits this agent.
    NoneFits(Unfit),
    /// The queued frames are left to faster PCs that would finish them first (see
    /// [`super::others_finish_first`]).
    LeftToFaster,
}

/// The jobs `agent` may take chunks of, best first, or why it gets none.
///
/// `running_by_owner` counts live leases by job owner, for fair sharing among equal priorities.
pub fn pick_order(
    jobs: &[JobView],
    agent: &AgentView,
    running_by_owner: &HashMap<Option<i64>, usize>,
    now: Millis,
) -> Result<Vec<i64>, NoWork> {
    match agent.mode {
        AgentMode::Disabled => return Err(NoWork::Disabled),
        AgentMode::Draining => return Err(NoWork::Draining),
        AgentMode::Active => {}
    }
    if !agent.may_take_work {
        return Err(NoWork::Busy);
    }
    if let Some(until) = agent.health.quarantined_until.filter(|&u| u > now) {
        let jobs = agent.health.quarantined_for.len();
        return Err(NoWork::Quarantined { until, jobs });
    }
    let mut unfit = Unfit {
        agent_renderers: agent.renderers.to_vec(),
        ..Unfit::default()
    };
    let mut fit: Vec<&JobView> = Vec::new();
    let waiting = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Runnable && j.queued > 0);
    for job in waiting {
        match misfit(job, agent) {
            None => fit.push(job),
            Some(Misfit::Renderer(r)) => {
                unfit.renderer += 1;
                if !unfit.missing_renderers.contains(&r) {
                    unfit.missing_renderers.push(r);
                }
            }
            Some(Misfit::Tag(tag)) => {
                unfit.tags += 1;
                unfit.missing_tags.push(tag);
            }
            Some(Misfit::Blocklisted) => unfit.blocklisted.push(job.id),
        }
    }
    if fit.is_empty() {
        if unfit.renderer + unfit.tags + unfit.blocklisted.len() == 0 {
            return Err(NoWork::NothingToDo);
        }
        unfit.missing_tags.sort();
        unfit.missing_tags.dedup();
        unfit.blocklisted.sort_unstable();
        return Err(NoWork::NoneFits(unfit));
    }
    let running = |owner: Option<i64>| running_by_owner.get(&owner).copied().unwrap_or(0);
    fit.sort_by_key(|j| {
        let priority = std::cmp::Reverse(j.priority);
        (priority, running(j.owner), j.running, j.id)
    });
    Ok(fit.into_iter().map(|j| j.id).collect())
}

impl NoWork {
    /// Like the `Display` text, but says how long a quarantine still lasts as seen at `now`.
    pub fn describe(&self, now: Millis) -> String {
        match self {
            NoWork::Quarantined { until, jobs } => format!(
                "quarantined for another {} (until {}) after failures on {}",
                duration((until - now).max(0)),
                clock(*until),
                plural(*jobs, "job", "jobs"),
            ),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for NoWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoWork::Disabled => f.write_str("disabled by an admin"),
            NoWork::Draining => f.write_str("draining: finishes the chunk in hand, takes no more"),
            NoWork::Busy => f.write_str("busy: someone is using the PC or it is off schedule"),
            NoWork::Quarantined { until, jobs } => write!(
                f,
                "quarantined until {} after failures on {}",
                clock(*until),
                plural(*jobs, "job", "jobs")
            ),
            NoWork::NothingToDo => f.write_str("no queued frames"),
            NoWork::NoneFits(unfit) => unfit.fmt(f),
            NoWork::LeftToFaster => {
                f.write_str("the last frames are left to faster PCs that will finish them first")
            }
        }
    }
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.renderer > 0 {
            let has: Vec<&str> = self.agent_renderers.iter().map(|&r| name(r)).collect();
            let need: Vec<&str> = self.missing_renderers.iter().map(|&r| name(r)).collect();
            let need = format!("{} {}", verb(self.renderer), need.join(" or "));
            parts.push(if has.is_empty() {
                format!("no renderer on this PC; {need}")
            } else {
                format!("no queued job needs {}; {need}", has.join(" or "))
            });
        }
        if self.tags > 0 {
            let label = if self.missing_tags.len() == 1 {
                "tag"
            } else {
                "tags"
            };
            parts.push(format!(
                "{} {label} {}",
                verb(self.tags),
                self.missing_tags.join(", ")
            ));
        }
        if !self.blocklisted.is_empty() {
            let ids: Vec<String> = self.blocklisted.iter().map(|j| j.to_string()).collect();
            let jobs = if ids.len() == 1 { "job" } else { "jobs" };
            parts.push(format!(
                "blocklisted for {jobs} {} after repeated failures",
                ids.join(", ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// "1 queued job needs" / "3 queued jobs need".
fn verb(n: usize) -> String {
    if n == 1 {
        "1 queued job needs".to_owned()
    } else {
        format!("{n} queued jobs need")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A renderer's name as people write it.
fn name(r: Renderer) -> &'static str {
    match r {
        Renderer::Blender => "Blender",
        Renderer::Povray => "POV-Ray",
    }
}

/// Time of day in UTC, "14:05 UTC" (pure code knows no time zone; pages may show local time).
fn clock(ms: Millis) -> String {
    let secs_of_day = ms.div_euclid(1000).rem_euclid(24 * 60 * 60);
    format!(
        "{:02}:{:02} UTC",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60
    )
}

/// A rough length of time, "42 min" or "1 h 5 min" (rounded up: "another 0 min" reads wrong).
fn duration(ms: Millis) -> String {
    let minutes = ms.div_euclid(60_000) + i64::from(ms.rem_euclid(60_000) > 0);
    match minutes {
        m if m < 60 => format!("{m} min"),
        m if m % 60 == 0 => format!("{} h", m / 60),
        m => format!("{} h {} min", m / 60, m % 60),
    }
}
