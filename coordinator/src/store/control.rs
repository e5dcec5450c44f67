//! Queries behind job and agent control: priorities, tags, agent modes, release, forgetting,
//! deleting jobs, failure records for health and for the job page.

use idlefarm_protocol::{AgentMode, FailureInfo};
use sqlx::Row;

use super::jobs::write_frames;
use super::{Store, decode_err};
use crate::schedule::{Board, FailureRecord, LeaseId};

impl Store {
    /// Sets a job's priority.
    pub async fn set_priority(&self, job: i64, priority: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET priority = ? WHERE id = ?")
            .bind(priority)
            .bind(job)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a job and everything recorded about it (not its files).
    pub async fn delete_job(&self, job: i64) -> Result<(), sqlx::Error> {
        self.save_queued_leases().await?;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM leases WHERE job_id = ?",
            "DELETE FROM frames WHERE job_id = ?",
            "DELETE FROM lease_failures WHERE job_id = ?",
            "DELETE FROM jobs WHERE id = ?",
        ] {
            sqlx::query(sql).bind(job).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Sets an agent's mode.
    pub async fn set_agent_mode(&self, agent: i64, mode: AgentMode) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET mode = ? WHERE id = ?")
            .bind(mode.as_str())
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renames an agent and/or replaces its tags.
    pub async fn update_agent(
        &self,
        agent: i64,
        name: &str,
        tags: &[String],
    ) -> Result<(), sqlx::Error> {
        let tags = serde_json::to_string(tags).map_err(|e| decode_err("tags", e))?;
        sqlx::query("UPDATE agents SET name = ?, tags = ? WHERE id = ?")
            .bind(name)
            .bind(tags)
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgives an agent's failures up to `at_ms`.
    pub async fn release_agent(&self, agent: i64, at_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET released_at = ? WHERE id = ?")
            .bind(at_ms)
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an agent: its secret stops working and it leaves the list; its history stays.
    pub async fn forget_agent(&self, agent: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET forgotten = 1, secret_hash = '' WHERE id = ?")
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts a yield for an agent.
    pub async fn count_yield(&self, agent: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET yields = yields + 1 WHERE id = ?")
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every agent's failed leases and wrong frames since its last release, for health.
    pub async fn failure_records(&self) -> Result<Vec<(i64, FailureRecord)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT f.agent_id, f.job_id, f.at_ms, f.wrong_frame FROM lease_failures f
             JOIN agents a ON a.id = f.agent_id
             WHERE f.at_ms >= a.released_at ORDER BY f.at_ms",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    FailureRecord {
                        job: r.try_get(1)?,
                        at: r.try_get(2)?,
                        wrong_frame: r.try_get(3)?,
                    },
                ))
            })
            .collect()
    }

    /// A job's failed leases, newest first.
    pub async fn job_failures(&self, job: i64) -> Result<Vec<FailureInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, agent_id, lease_id, frames, message, log_tail FROM lease_failures
             WHERE job_id = ? ORDER BY id DESC",
        )
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(FailureInfo {
                    at: r.try_get(0)?,
                    agent_id: r.try_get(1)?,
                    lease_id: r.try_get(2)?,
                    frames: serde_json::from_str(&r.try_get::<String, _>(3)?)
                        .map_err(|e| decode_err("frames", e))?,
                    message: r.try_get(4)?,
                    log_tail: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Persists the end of leases (ended, expired or revoked) and the frames they released, in
    /// one transaction.
    pub async fn end_leases(
        &self,
        job_id: i64,
        leases: &[LeaseId],
        board: &Board,
        changed: &[usize],
    ) -> Result<(), sqlx::Error> {
        self.save_queued_leases().await?;
        let mut tx = self.pool.begin().await?;
        for lease in leases {
            sqlx::query("DELETE FROM leases WHERE id = ?")
                .bind(lease)
                .execute(&mut *tx)
                .await?;
        }
        write_frames(&mut tx, job_id, board, changed).await?;
        tx.commit().await
    }

    /// Persists frames whose state changed (retry, re-render).
    pub async fn write_frames(
        &self,
        job_id: i64,
        board: &Board,
        changed: &[usize],
    ) -> Result<(), sqlx::Error> {
        self.save_queued_leases().await?;
        let mut tx = self.pool.begin().await?;
        write_frames(&mut tx, job_id, board, changed).await?;
        tx.commit().await
    }

    /// Every user's name by id (owners of jobs).
    pub async fn user_names(&self) -> Result<std::collections::HashMap<i64, String>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, name FROM users")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
