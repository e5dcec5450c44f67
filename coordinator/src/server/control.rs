//! Coordinator operations that change jobs and agents as a whole, called by thin HTTP handlers:
//! adding, cancelling, pausing, resuming, retrying, re-prioritising and deleting jobs; draining,
//! disabling, enabling, renaming, tagging, releasing and forgetting agents. The decisions are the
//! scheduling core's (`schedule`); this module applies them, persists them and wakes whoever
//! waits. File work happens outside the scheduler lock; the lock is held only for the in-memory
//! change and its write-through to SQLite.

use idlefarm_protocol::{AgentMode, AgentUpdate, JobInfo, JobState, valid_tag};

use super::Coordinator;
use super::state::{JobEntry, now_ms, now_secs};
use crate::error::ApiError;
use crate::schedule::{Board, LeaseEnding};
use crate::store::JobRow;
use crate::submit::Prepared;

/// Who submits a job and how it competes for the farm.
#[derive(Debug, Clone, Default)]
pub struct JobTerms {
    /// The submitting user.
    pub owner: Option<i64>,
    /// Higher runs first.
    pub priority: i64,
    /// Tags an agent must have.
    pub required_tags: Vec<String>,
}

impl Coordinator {
    /// Stores a prepared submission's input and creates its job with every frame queued.
    pub(crate) async fn add_job(
        &self,
        prepared: Prepared,
        terms: JobTerms,
    ) -> Result<JobInfo, ApiError> {
        let data = self.data.clone();
        let input = prepared.input.clone();
        let hash = tokio::task::spawn_blocking(move || data.put_blob(&input))
            .await
            .map_err(ApiError::internal)??;
        let mut row = JobRow {
            id: 0,
            name: prepared.name,
            state: JobState::Rendering,
            error: None,
            warnings: prepared.warnings,
            settings: prepared.settings,
            input_hash: hash,
            input_kind: prepared.input_kind,
            input_name: prepared.input_name,
            chunk_size: prepared.chunk_size,
            has_video: false,
            created_at: now_secs(),
            owner_id: terms.owner,
            priority: terms.priority,
            required_tags: terms.required_tags,
            started_at: None,
            finished_at: None,
            latest_frame: None,
        };
        // The row is durable before the job is visible in memory: a crash in between loses
        // nothing, the job is loaded at the next start.
        row.id = self.store.insert_job(&row).await?;
        tokio::fs::create_dir_all(self.data.frames_dir(row.id)).await?;
        let entry = JobEntry {
            board: Board::new(row.settings.frames()),
            row,
            speeds: crate::schedule::Speeds::default(),
        };
        let info = entry.row.info(entry.counts());
        tracing::info!(job = info.id, name = %info.name, frames = entry.board.frames.len(), "job submitted");
        let frames = entry.board.frames.len();
        self.sched.lock().await.jobs.insert(info.id, entry);
        self.job_changed(info.id).await;
        self.work.ring(frames);
        Ok(info)
    }

    /// The owner of a job, for permission checks; 404 when there is no such job.
    pub(crate) async fn job_owner(&self, id: i64) -> Result<Option<i64>, ApiError> {
        let sched = self.sched.lock().await;
        let entry = sched.jobs.get(&id).ok_or_else(|| no_job(id))?;
        Ok(entry.row.owner_id)
    }

    /// Cancels a job: its leases are revoked (agents stop at their next heartbeat and keep
    /// nothing), no frame is leased again; finished frames stay downloadable.
    pub(crate) async fn cancel_job(&self, id: i64) -> Result<(), ApiError> {
        self.change_job(id, |state| match state {
            JobState::Rendering | JobState::Paused | JobState::Assembling => {
                Ok(JobState::Cancelled)
            }
            other => Err(format!("job {id} is {} already", other.as_str())),
        })
        .await
    }

    /// Pauses a job: running chunks are revoked and their unfinished frames queued again (never
    /// a failure); nothing is leased until it is resumed.
    pub(crate) async fn pause_job(&self, id: i64) -> Result<(), ApiError> {
        self.change_job(id, |state| match state {
            JobState::Rendering => Ok(JobState::Paused),
            other => Err(format!(
                "only a rendering job can be paused; job {id} is {}",
                other.as_str()
            )),
        })
        .await
    }

    /// Resumes a paused job.
    pub(crate) async fn resume_job(&self, id: i64) -> Result<(), ApiError> {
        self.change_job(id, |state| match state {
            JobState::Paused => Ok(JobState::Rendering),
            other => Err(format!("job {id} is not paused but {}", other.as_str())),
        })
        .await
    }

    /// Moves a job to the state `decide` picks for its current one, revoking every lease when
    /// it stops rendering.
    async fn change_job(
        &self,
        id: i64,
        decide: impl FnOnce(JobState) -> Result<JobState, String>,
    ) -> Result<(), ApiError> {
        {
            let mut guard = self.sched.lock().await;
            let entry = guard.jobs.get_mut(&id).ok_or_else(|| no_job(id))?;
            let next = decide(entry.row.state).map_err(ApiError::conflict)?;
            if next != JobState::Rendering {
                let (leases, changed) = entry.board.revoke_all_changed();
                if !leases.is_empty() {
                    self.store
                        .end_leases(id, &leases, &entry.board, &changed)
                        .await?;
                    tracing::info!(job = id, ?leases, "leases revoked");
                }
            }
            self.set_state(entry, next, None).await?;
        }
        self.job_changed(id).await;
        self.work.ring_all();
        Ok(())
    }

    /// Retries a job's failed frames (`frames: None`) or renders chosen frames again.
    pub(crate) async fn retry_job(
        &self,
        id: i64,
        frames: Option<Vec<i64>>,
    ) -> Result<(), ApiError> {
        {
            let mut guard = self.sched.lock().await;
            let entry = guard.jobs.get_mut(&id).ok_or_else(|| no_job(id))?;
            match entry.row.state {
                JobState::Cancelled => {
                    return Err(ApiError::conflict(format!(
                        "job {id} is cancelled; submit it again instead"
                    )));
                }
                JobState::Assembling => {
                    return Err(ApiError::conflict(format!(
                        "job {id} is being assembled; retry when it is done"
                    )));
                }
                _ => {}
            }
            let changed = match &frames {
                None => {
                    let changed = entry.board.retry_failed();
                    if changed.is_empty() {
                        return Err(ApiError::conflict(format!("job {id} has no failed frames")));
                    }
                    changed
                }
                Some(list) => entry.board.rerender(list).map_err(|e| {
                    ApiError::unprocessable(format!("frame {} is not part of job {id}", e.0))
                })?,
            };
            self.store.write_frames(id, &entry.board, &changed).await?;
            if matches!(entry.row.state, JobState::Done | JobState::Failed) {
                entry.row.has_video = false;
                self.set_state(entry, JobState::Rendering, None).await?;
            }
        }
        self.job_changed(id).await;
        self.work.ring_all();
        Ok(())
    }

    /// Sets a job's priority.
    pub(crate) async fn set_job_priority(&self, id: i64, priority: i64) -> Result<(), ApiError> {
        {
            let mut guard = self.sched.lock().await;
            let entry = guard.jobs.get_mut(&id).ok_or_else(|| no_job(id))?;
            self.store.set_priority(id, priority).await?;
            entry.row.priority = priority;
        }
        self.job_changed(id).await;
        self.work.ring_all();
        Ok(())
    }

    /// Deletes a job: leases revoked, rows removed, then its files (outside the lock). The input
    /// blob stays: another job may share it.
    pub(crate) async fn delete_job(&self, id: i64) -> Result<(), ApiError> {
        let owner = {
            let mut guard = self.sched.lock().await;
            let sched = &mut *guard;
            let entry = sched.jobs.get_mut(&id).ok_or_else(|| no_job(id))?;
            entry.board.revoke_all();
            let owner = entry.row.owner_id;
            self.store.delete_job(id).await?;
            sched.jobs.remove(&id);
            sched.lease_owner.retain(|_, owner| owner.job != id);
            owner
        };
        // With its owner, so the owner's event stream (not only admins') hears of it.
        self.job_deleted(id, owner);
        let dir = self.data.job_dir(id);
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
        .map_err(ApiError::internal)??;
        tracing::info!(job = id, "job deleted");
        Ok(())
    }

    /// Sets whether an agent may work; disabling revokes its lease at once, draining lets it
    /// finish the chunk in hand.
    pub(crate) async fn set_agent_mode(&self, agent: i64, mode: AgentMode) -> Result<(), ApiError> {
        self.agent_exists(agent).await?;
        self.store.set_agent_mode(agent, mode).await?;
        {
            // Under the scheduler lock, so no lease request in flight misses the change.
            let mut sched = self.sched.lock().await;
            if let Some(a) = self.agents.write().await.get_mut(&agent) {
                a.mode = mode;
            }
            sched.no_work.remove(&agent);
        }
        if mode == AgentMode::Disabled {
            self.revoke_agent_leases(agent).await?;
        }
        self.agent_changed(agent);
        self.work.ring_all();
        Ok(())
    }

    /// Renames and/or re-tags an agent.
    pub(crate) async fn update_agent(
        &self,
        agent: i64,
        update: AgentUpdate,
    ) -> Result<(), ApiError> {
        let mut agents = self.agents.write().await;
        let row = agents.get_mut(&agent).ok_or_else(|| no_agent(agent))?;
        let name = match update.name {
            Some(n) => {
                let n = n.trim().to_owned();
                if n.is_empty() || n.chars().count() > 200 {
                    return Err(ApiError::bad_request("an agent name is 1-200 characters"));
                }
                n
            }
            None => row.name.clone(),
        };
        let tags = match update.tags {
            Some(tags) => checked_tags(tags)?,
            None => row.tags.clone(),
        };
        self.store.update_agent(agent, &name, &tags).await?;
        row.name = name;
        row.tags = tags;
        drop(agents);
        self.agent_changed(agent);
        self.work.ring_all();
        Ok(())
    }

    /// Ends an agent's blocklists and quarantine: its earlier failures are forgiven.
    pub(crate) async fn release_agent(&self, agent: i64) -> Result<(), ApiError> {
        self.agent_exists(agent).await?;
        let now = now_ms();
        self.store.release_agent(agent, now).await?;
        if let Some(a) = self.agents.write().await.get_mut(&agent) {
            a.released_at = now;
        }
        let mut sched = self.sched.lock().await;
        sched.failures.remove(&agent);
        sched.no_work.remove(&agent);
        sched.declines.forget(agent);
        drop(sched);
        self.agent_changed(agent);
        self.work.ring_all();
        Ok(())
    }

    /// Forgets an agent: its secret stops working, its lease is revoked, it leaves the list.
    pub(crate) async fn forget_agent(&self, agent: i64) -> Result<(), ApiError> {
        self.agent_exists(agent).await?;
        self.store.forget_agent(agent).await?;
        self.agents.write().await.remove(&agent);
        self.revoke_agent_leases(agent).await?;
        self.agent_changed(agent);
        Ok(())
    }

    async fn agent_exists(&self, agent: i64) -> Result<(), ApiError> {
        if self.agents.read().await.contains_key(&agent) {
            Ok(())
        } else {
            Err(no_agent(agent))
        }
    }

    /// Ends every live lease of an agent; its unfinished frames are queued again (not a failure).
    async fn revoke_agent_leases(&self, agent: i64) -> Result<(), ApiError> {
        let mut guard = self.sched.lock().await;
        for entry in guard.jobs.values_mut() {
            let held: Vec<_> = entry
                .board
                .leases
                .iter()
                .filter(|(_, slot)| slot.agent == agent)
                .map(|(&id, _)| id)
                .collect();
            for lease in held {
                self.finish_lease(entry, lease, LeaseEnding::Yield).await?;
            }
        }
        Ok(())
    }
}

/// Validates a list of tags (trimmed, lowercase, deduplicated).
pub fn checked_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_ascii_lowercase();
        if !valid_tag(&tag) {
            return Err(ApiError::bad_request(format!(
                "`{tag}` is not a valid tag: use 1-32 of a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit"
            )));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

pub(crate) fn no_job(id: i64) -> ApiError {
    ApiError::not_found(format!("there is no job {id}"))
}

fn no_agent(id: i64) -> ApiError {
    ApiError::not_found(format!(
        "there is no agent {id}; `idlefarm agent list` shows them"
    ))
}
