//! Enrolment requests: PCs without an enrolment token that asked to join, and what an admin
//! decided. A request is `waiting`, then `approved` or `rejected`; an approved one becomes
//! `claimed` when its PC collected its credentials (the agent made then).

use idlefarm_protocol::{EnrolmentRequestInfo, RendererInfo};
use sqlx::Row;

use super::{Store, decode_err};

/// A request as the coordinator checks it.
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// Its id.
    pub id: i64,
    /// The name the PC gave.
    pub name: String,
    /// Its renderers.
    pub renderers: Vec<RendererInfo>,
    /// blake3 of the PC's key.
    pub key_hash: String,
    /// When it asked (Unix seconds).
    pub created_at: i64,
    /// `waiting`, `approved`, `rejected` or `claimed`.
    pub state: String,
}

impl Store {
    /// Records a waiting request; returns its id.
    pub async fn insert_request(
        &self,
        name: &str,
        renderers: &[RendererInfo],
        key_hash: &str,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        let renderers = serde_json::to_string(renderers).map_err(|e| decode_err("renderers", e))?;
        sqlx::query(
            "INSERT INTO enrolment_requests (name, renderers, key_hash, created_at, state)
             VALUES (?, ?, ?, ?, 'waiting') RETURNING id",
        )
        .bind(name)
        .bind(renderers)
        .bind(key_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)
    }

    /// One request, whatever its state.
    pub async fn request(&self, id: i64) -> Result<Option<RequestRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, name, renderers, key_hash, created_at, state
             FROM enrolment_requests WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RequestRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                renderers: serde_json::from_str(&r.try_get::<String, _>(2)?)
                    .map_err(|e| decode_err("renderers", e))?,
                key_hash: r.try_get(3)?,
                created_at: r.try_get(4)?,
                state: r.try_get(5)?,
            })
        })
        .transpose()
    }

    /// Requests still waiting or approved but not claimed, made at or after `since` (Unix
    /// seconds), oldest first.
    pub async fn open_requests(
        &self,
        since: i64,
    ) -> Result<Vec<EnrolmentRequestInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, name, renderers, created_at, state FROM enrolment_requests
             WHERE state IN ('waiting', 'approved') AND created_at >= ? ORDER BY id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(EnrolmentRequestInfo {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    renderers: serde_json::from_str(&r.try_get::<String, _>(2)?)
                        .map_err(|e| decode_err("renderers", e))?,
                    created_at: r.try_get(3)?,
                    state: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Moves a request from state `from` to `to` (an admin's decision, or its claim with the
    /// agent made for it); false when it was not in `from`.
    pub async fn decide_request(
        &self,
        id: i64,
        from: &str,
        to: &str,
        decided_by: Option<i64>,
        agent_id: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE enrolment_requests
             SET state = ?, decided_by = COALESCE(?, decided_by), agent_id = COALESCE(?, agent_id)
             WHERE id = ? AND state = ?",
        )
        .bind(to)
        .bind(decided_by)
        .bind(agent_id)
        .bind(id)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
