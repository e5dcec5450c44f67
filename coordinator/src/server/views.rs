//! The API's read views of jobs, frames and agents, built from the scheduler's memory and the
//! store: owner names, ETAs, per-frame detail, and why an agent gets no work.

use std::collections::HashMap;

use idlefarm_protocol::{AgentInfo, FrameInfo, JobInfo, JobState, frame_file_name};

use super::Coordinator;
use super::state::{JobEntry, now_ms, now_secs};
use crate::error::ApiError;
use crate::schedule::FrameState;

impl Coordinator {
    /// Jobs whose owner passes `visible`, oldest first.
    pub(crate) async fn job_infos(
        &self,
        visible: impl Fn(Option<i64>) -> bool,
    ) -> Result<Vec<JobInfo>, ApiError> {
        let names = self.store.user_names().await?;
        let available = self.available_agents();
        let sched = self.sched.lock().await;
        Ok(sched
            .jobs
            .values()
            .filter(|e| visible(e.row.owner_id))
            .map(|e| job_info(e, &names, available))
            .collect())
    }

    /// One job.
    pub(crate) async fn job_info(&self, id: i64) -> Result<JobInfo, ApiError> {
        let names = self.store.user_names().await?;
        let available = self.available_agents();
        let sched = self.sched.lock().await;
        let entry = sched
            .jobs
            .get(&id)
            .ok_or_else(|| super::control::no_job(id))?;
        Ok(job_info(entry, &names, available))
    }

    /// A job's frames with their state, agent, attempts and render time.
    pub(crate) async fn frame_infos(&self, id: i64) -> Result<Vec<FrameInfo>, ApiError> {
        let sched = self.sched.lock().await;
        let entry = sched
            .jobs
            .get(&id)
            .ok_or_else(|| super::control::no_job(id))?;
        let settings = &entry.row.settings;
        let format = settings.format;
        let agents = self.agents.read().await;
        let name =
            |id: i64| (agents.get(&id)).map_or_else(|| format!("PC {id}"), |row| row.name.clone());
        Ok(entry
            .board
            .frames
            .iter()
            .map(|f| {
                let done_by = match f.state {
                    FrameState::Done(a) => Some(a),
                    _ => None,
                };
                FrameInfo {
                    frame: f.frame,
                    state: f.state.as_str().to_owned(),
                    agent_id: done_by,
                    file: done_by.map(|_| frame_file_name(f.frame, format)),
                    failures: f.failures,
                    attempts: f.attempts,
                    render_ms: f.render_ms,
                    failed_on: f.failed_on.clone(),
                    source: settings.source_of(f.frame).map(str::to_owned),
                    check: check_text(f, &name),
                }
            })
            .collect())
    }

    /// The farm's agents with their health and why each gets no work.
    pub(crate) async fn agent_infos(&self) -> Result<Vec<AgentInfo>, ApiError> {
        let mut infos = self.store.agent_infos(now_secs()).await?;
        let now = now_ms();
        let sched = self.sched.lock().await;
        for info in &mut infos {
            let health = self.health_of(&sched, info.id, now);
            info.quarantined_until = health
                .quarantined_until
                .filter(|&u| u > now)
                .map(|u| u / 1000);
            info.blocklisted_jobs = health.blocklisted.iter().copied().collect();
            info.no_work_reason = sched.no_work.get(&info.id).map(|why| why.describe(now));
            info.declined = sched.declines.describe(info.id, now);
        }
        Ok(infos)
    }
}

/// The API view of a job: its row, counts, owner's name and ETA.
fn job_info(entry: &JobEntry, names: &HashMap<i64, String>, available: usize) -> JobInfo {
    let mut info = entry.row.info(entry.counts());
    info.owner = entry.row.owner_id.and_then(|o| names.get(&o).cloned());
    info.eta_secs = eta_secs(entry, available);
    info
}

/// Seconds until every frame is rendered: the frames left × the mean measured frame time,
/// shared by the PCs available now (never more PCs than frames). `None` before any frame time is
/// known, when no PC is available, or when the job is not rendering.
fn eta_secs(entry: &JobEntry, available: usize) -> Option<u64> {
    if entry.row.state != JobState::Rendering || available == 0 {
        return None;
    }
    let times: Vec<i64> = entry
        .board
        .frames
        .iter()
        .filter_map(|f| f.render_ms)
        .collect();
    if times.is_empty() {
        return None;
    }
    let mean_ms = times.iter().sum::<i64>() as f64 / times.len() as f64;
    let c = entry.board.counts();
    let left = c.queued + c.leased;
    let pcs = available.min(left).max(1);
    Some((left as f64 * mean_ms / pcs as f64 / 1000.0).ceil() as u64)
}

/// A frame's check for a person: why it waits for another PC, or how its check ended.
fn check_text(f: &crate::schedule::FrameSlot, name: &dyn Fn(i64) -> String) -> Option<String> {
    if let Some(check) = &f.check {
        let by: Vec<String> = check.candidates.iter().map(|c| name(c.agent)).collect();
        return Some(format!(
            "waiting for another PC's render (rendered on {}: {})",
            by.join(" and "),
            check.reason
        ));
    }
    f.note.clone()
}
