//! The audit log in the database: who did what, on what, when. Append-only.

use idlefarm_protocol::accounts::{AuditEntry, AuditFilter};
use sqlx::Row;

use crate::store::Store;

/// Entries returned when a filter gives no limit.
const DEFAULT_LIMIT: u32 = 100;

impl Store {
    /// Appends to the audit log.
    pub async fn insert_audit(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let filter = AuditFilter {
            limit: Some(limit),
            ..AuditFilter::default()
        };
        self.audit_entries(&filter).await
    }

    /// The audit entries `filter` picks, newest first.
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        // `action.` as a prefix compared with substr, not LIKE, so `_` and `%` in a filter are
        // plain characters.
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail FROM audit_log
             WHERE (?1 IS NULL OR id < ?1)
               AND (?2 IS NULL OR actor = ?2)
               AND (?3 IS NULL OR action = ?3 OR substr(action, 1, length(?3) + 1) = ?3 || '.')
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(filter.before)
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(i64::from(filter.limit.unwrap_or(DEFAULT_LIMIT)))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    target: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// The distinct actors and actions in the audit log, sorted (for the admin page's filter).
    pub async fn audit_names(&self) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
        let actors = sqlx::query_scalar("SELECT DISTINCT actor FROM audit_log ORDER BY actor")
            .fetch_all(&self.pool)
            .await?;
        let actions = sqlx::query_scalar("SELECT DISTINCT action FROM audit_log ORDER BY action")
            .fetch_all(&self.pool)
            .await?;
        Ok((actors, actions))
    }
}
