//! Queries for jobs, their frames and leases, and failed leases: what the scheduler writes
//! through on every change.

use std::collections::BTreeMap;

use idlefarm_protocol::{FailureInfo, InputKind, JobState};
use sqlx::Row;

use super::{JobRow, Store, decode_err, kind_str};
use crate::schedule::{Board, FrameSlot, FrameState, LeaseId, LeaseSlot};

impl Store {
    /// Inserts a job with all its frames queued; returns its id.
    pub async fn insert_job(&self, job: &JobRow) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let settings =
            serde_json::to_string(&job.settings).map_err(|e| decode_err("settings", e))?;
        let warnings =
            serde_json::to_string(&job.warnings).map_err(|e| decode_err("warnings", e))?;
        let id: i64 = sqlx::query(
            "INSERT INTO jobs (name, state, warnings, settings, input_hash, input_kind, input_name,
                               chunk_size, created_at, owner_id, priority, required_tags)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&job.name)
        .bind(job.state.as_str())
        .bind(warnings)
        .bind(settings)
        .bind(&job.input_hash)
        .bind(kind_str(job.input_kind))
        .bind(&job.input_name)
        .bind(job.chunk_size.map(i64::from))
        .bind(job.created_at)
        .bind(job.owner_id)
        .bind(job.priority)
        .bind(serde_json::to_string(&job.required_tags).map_err(|e| decode_err("tags", e))?)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for (idx, frame) in job.settings.frames().into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO frames (job_id, idx, frame, state) VALUES (?, ?, ?, 'queued')",
            )
            .bind(id)
            .bind(idx as i64)
            .bind(frame)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, name, state, error, warnings, settings, input_hash, input_kind, input_name,
                    chunk_size, has_video, created_at, owner_id, priority, required_tags,
                    started_at, finished_at, latest_frame
             FROM jobs ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let state: String = r.try_get(2)?;
                let warnings: String = r.try_get(4)?;
                let settings: String = r.try_get(5)?;
                let kind: String = r.try_get(7)?;
                let chunk: Option<i64> = r.try_get(9)?;
                Ok(JobRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    state: JobState::parse(&state).ok_or_else(|| decode_err("state", &state))?,
                    error: r.try_get(3)?,
                    warnings: serde_json::from_str(&warnings)
                        .map_err(|e| decode_err("warnings", e))?,
                    settings: serde_json::from_str(&settings)
                        .map_err(|e| decode_err("settings", e))?,
                    input_hash: r.try_get(6)?,
                    input_kind: if kind == "zip" {
                        InputKind::Zip
                    } else {
                        InputKind::File
                    },
                    input_name: r.try_get(8)?,
                    chunk_size: chunk.map(|c| c as u32),
                    has_video: r.try_get::<i64, _>(10)? != 0,
                    created_at: r.try_get(11)?,
                    owner_id: r.try_get(12)?,
                    priority: r.try_get(13)?,
                    required_tags: serde_json::from_str(&r.try_get::<String, _>(14)?)
                        .map_err(|e| decode_err("required_tags", e))?,
                    started_at: r.try_get(15)?,
                    finished_at: r.try_get(16)?,
                    latest_frame: r.try_get(17)?,
                })
            })
            .collect()
    }

    /// Changes a job's state, error, video flag and finish time.
    pub async fn set_job_state(&self, job: &JobRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET state = ?, error = ?, has_video = ?, finished_at = ? WHERE id = ?",
        )
        .bind(job.state.as_str())
        .bind(job.error.as_deref())
        .bind(job.has_video)
        .bind(job.finished_at)
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Loads a job's board: its frames and live leases.
    pub async fn board(&self, job_id: i64) -> Result<Board, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT frame, state, lease_id, agent_id, failures, attempts, render_ms, failed_on,
                    look, check_note, checking
             FROM frames WHERE job_id = ? ORDER BY idx",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        let mut frames = Vec::with_capacity(rows.len());
        for r in rows {
            let state: String = r.try_get(1)?;
            let lease: Option<i64> = r.try_get(2)?;
            let agent: Option<i64> = r.try_get(3)?;
            let state = match (state.as_str(), lease) {
                ("done", _) => FrameState::Done(agent.unwrap_or(0)),
                ("failed", _) => FrameState::Failed,
                ("rendering", Some(l)) => FrameState::Leased(l),
                _ => FrameState::Queued,
            };
            let failed_on: String = r.try_get(7)?;
            let look: Option<String> = r.try_get(8)?;
            let checking: Option<String> = r.try_get(10)?;
            frames.push(FrameSlot {
                look: look
                    .map(|l| serde_json::from_str(&l).map_err(|e| decode_err("look", e)))
                    .transpose()?,
                note: r.try_get(9)?,
                check: checking
                    .map(|c| serde_json::from_str(&c).map_err(|e| decode_err("checking", e)))
                    .transpose()?,
                state,
                failures: r.try_get::<i64, _>(4)? as u32,
                attempts: r.try_get::<i64, _>(5)? as u32,
                render_ms: r.try_get(6)?,
                failed_on: serde_json::from_str(&failed_on)
                    .map_err(|e| decode_err("failed_on", e))?,
                ..FrameSlot::queued(r.try_get(0)?)
            });
        }
        let lease_rows = sqlx::query(
            "SELECT id, agent_id, frames, started_at, expires_at FROM leases WHERE job_id = ?",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        let mut leases = BTreeMap::new();
        for r in lease_rows {
            let idx: String = r.try_get(2)?;
            let started_at = r.try_get(3)?;
            leases.insert(
                r.try_get::<i64, _>(0)?,
                LeaseSlot {
                    agent: r.try_get(1)?,
                    frames: serde_json::from_str(&idx)
                        .map_err(|e| decode_err("lease frames", e))?,
                    started_at,
                    expires_at: r.try_get(4)?,
                    last_progress: started_at,
                },
            );
        }
        Ok(Board::restore(frames, leases))
    }

    /// The highest lease id ever used.
    pub async fn max_lease_id(&self) -> Result<i64, sqlx::Error> {
        let a: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM leases")
            .fetch_one(&self.pool)
            .await?;
        let b: Option<i64> = sqlx::query_scalar("SELECT MAX(lease_id) FROM frames")
            .fetch_one(&self.pool)
            .await?;
        let c: Option<i64> = sqlx::query_scalar("SELECT MAX(lease_id) FROM lease_failures")
            .fetch_one(&self.pool)
            .await?;
        Ok(a.unwrap_or(0).max(b.unwrap_or(0)).max(c.unwrap_or(0)))
    }

    /// Persists the new expiry of several leases (lease, Unix millis) in one transaction.
    pub async fn renew_leases(&self, renewed: &[(LeaseId, i64)]) -> Result<(), sqlx::Error> {
        self.save_queued_leases().await?;
        let mut tx = self.pool.begin().await?;
        for &(lease, expires_at) in renewed {
            sqlx::query("UPDATE leases SET expires_at = ? WHERE id = ?")
                .bind(expires_at)
                .bind(lease)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Persists a done frame, stored at `at_ms` (Unix millis), and credits its agent.
    pub async fn frame_done(
        &self,
        job_id: i64,
        board: &Board,
        idx: usize,
        file: &str,
        at_ms: i64,
    ) -> Result<(), sqlx::Error> {
        self.save_queued_leases().await?;
        let mut tx = self.pool.begin().await?;
        write_frames(&mut tx, job_id, board, &[idx]).await?;
        sqlx::query("UPDATE frames SET file = ?, done_at_ms = ? WHERE job_id = ? AND idx = ?")
            .bind(file)
            .bind(at_ms)
            .bind(job_id)
            .bind(idx as i64)
            .execute(&mut *tx)
            .await?;
        if let FrameState::Done(agent) = board.frames[idx].state {
            let frame = board.frames[idx].frame;
            sqlx::query(
                "UPDATE agents SET frames_done = frames_done + 1, latest_job = ?, latest_frame = ?
                 WHERE id = ?",
            )
            .bind(job_id)
            .bind(frame)
            .bind(agent)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE jobs SET latest_frame = ? WHERE id = ?")
                .bind(frame)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Records a failed lease's message and log tail, or (`wrong_frame`) a frame of the lease
    /// that other PCs' renders outvoted.
    pub async fn record_failure(
        &self,
        failure: &FailureInfo,
        job_id: i64,
        at_ms: i64,
        wrong_frame: bool,
    ) -> Result<(), sqlx::Error> {
        let frames = serde_json::to_string(&failure.frames).map_err(|e| decode_err("frames", e))?;
        sqlx::query(
            "INSERT INTO lease_failures
                    (job_id, agent_id, lease_id, message, log_tail, at, frames, at_ms, wrong_frame)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(failure.agent_id)
        .bind(failure.lease_id)
        .bind(&failure.message)
        .bind(failure.log_tail.as_deref())
        .bind(failure.at)
        .bind(frames)
        .bind(at_ms)
        .bind(wrong_frame)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest failure recorded for a job: message and log tail.
    pub async fn last_failure(
        &self,
        job_id: i64,
    ) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT message, log_tail FROM lease_failures WHERE job_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Image file names of a job's done frames, by frame number.
    pub async fn frame_files(&self, job_id: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT frame, file FROM frames WHERE job_id = ? AND state = 'done' ORDER BY frame",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// A frame's row as the scheduler writes it: state, lease, agent, failures, attempts, render
/// time and check.
#[derive(Debug)]
pub(super) struct FrameRow {
    idx: i64,
    state: &'static str,
    lease: Option<LeaseId>,
    agent: Option<i64>,
    failures: i64,
    attempts: i64,
    render_ms: Option<i64>,
    failed_on: String,
    look: Option<String>,
    note: Option<String>,
    checking: Option<String>,
}

/// The rows of the given frames as `board` has them now.
pub(super) fn frame_rows(board: &Board, indices: &[usize]) -> Result<Vec<FrameRow>, sqlx::Error> {
    let json = |what, v: Option<Result<String, serde_json::Error>>| {
        v.transpose().map_err(|e| decode_err(what, e))
    };
    (indices.iter())
        .map(|&i| {
            let f = &board.frames[i];
            let (lease, agent) = match f.state {
                FrameState::Leased(l) => (Some(l), None),
                FrameState::Done(a) => (None, Some(a)),
                _ => (None, None),
            };
            Ok(FrameRow {
                idx: i as i64,
                state: f.state.as_str(),
                lease,
                agent,
                failures: f.failures as i64,
                attempts: f.attempts as i64,
                render_ms: f.render_ms,
                failed_on: serde_json::to_string(&f.failed_on)
                    .map_err(|e| decode_err("failed_on", e))?,
                look: json("look", f.look.as_ref().map(serde_json::to_string))?,
                note: f.note.clone(),
                checking: json("checking", f.check.as_ref().map(serde_json::to_string))?,
            })
        })
        .collect()
}

/// Writes the given frames' state, lease, agent, failures, attempts, render time and check.
pub(super) async fn write_frames(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job_id: i64,
    board: &Board,
    indices: &[usize],
) -> Result<(), sqlx::Error> {
    write_frame_rows(tx, job_id, &frame_rows(board, indices)?).await
}

/// Writes frame rows of a job.
pub(super) async fn write_frame_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job_id: i64,
    rows: &[FrameRow],
) -> Result<(), sqlx::Error> {
    for f in rows {
        sqlx::query(
            "UPDATE frames SET state = ?, lease_id = ?, agent_id = COALESCE(?, agent_id),
                               failures = ?, attempts = ?, render_ms = ?, failed_on = ?,
                               look = ?, check_note = ?, checking = ?
             WHERE job_id = ? AND idx = ?",
        )
        .bind(f.state)
        .bind(f.lease)
        .bind(f.agent)
        .bind(f.failures)
        .bind(f.attempts)
        .bind(f.render_ms)
        .bind(&f.failed_on)
        .bind(f.look.as_deref())
        .bind(f.note.as_deref())
        .bind(f.checking.as_deref())
        .bind(job_id)
        .bind(f.idx)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
