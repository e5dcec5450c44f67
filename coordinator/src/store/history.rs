//! Per-agent presence history: every change of an agent's presence state with its time, so a
//! page can draw each PC's idle / away / rendering / off timeline. `offline` entries are the
//! coordinator's: it writes one when an agent falls silent.

use idlefarm_protocol::PresenceState;
use idlefarm_protocol::events::PresenceChange;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, decode_err, presence_str};

fn change(row: &SqliteRow) -> Result<PresenceChange, sqlx::Error> {
    let state: String = row.try_get(1)?;
    Ok(PresenceChange {
        at_ms: row.try_get(0)?,
        state: serde_json::from_value::<PresenceState>(serde_json::Value::String(state))
            .map_err(|e| decode_err("presence state", e))?,
    })
}

impl Store {
    /// Records that `agent` entered `state` at `at_ms`. Call it on changes only: every call is a
    /// row.
    pub async fn record_presence(
        &self,
        agent: i64,
        state: PresenceState,
        at_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO presence_log (agent_id, at_ms, state) VALUES (?, ?, ?)")
            .bind(agent)
            .bind(at_ms)
            .bind(presence_str(state))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The agent's latest recorded change, if any.
    pub async fn last_presence(&self, agent: i64) -> Result<Option<PresenceChange>, sqlx::Error> {
        sqlx::query(
            "SELECT at_ms, state FROM presence_log WHERE agent_id = ?
             ORDER BY at_ms DESC, rowid DESC LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(change)
        .transpose()
    }

    /// The agent's changes after `since_ms`, oldest first, preceded by its last change at or
    /// before `since_ms` (the state it was in at `since_ms`) when there is one.
    pub async fn presence_history(
        &self,
        agent: i64,
        since_ms: i64,
    ) -> Result<Vec<PresenceChange>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at_ms, state, seq FROM (
                 SELECT at_ms, state, rowid AS seq FROM presence_log
                 WHERE agent_id = ?1 AND at_ms <= ?2
                 ORDER BY at_ms DESC, rowid DESC LIMIT 1)
             UNION ALL
             SELECT at_ms, state, rowid AS seq FROM presence_log
             WHERE agent_id = ?1 AND at_ms > ?2
             ORDER BY at_ms, seq",
        )
        .bind(agent)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change).collect()
    }

    /// When the agent was last heard from, Unix seconds (`None`: never, or no such agent).
    pub async fn agent_last_seen(&self, agent: i64) -> Result<Option<i64>, sqlx::Error> {
        let seen: Option<Option<i64>> =
            sqlx::query_scalar("SELECT last_seen FROM agents WHERE id = ?")
                .bind(agent)
                .fetch_optional(&self.pool)
                .await?;
        Ok(seen.flatten())
    }

    /// Sets the presence the agents list shows without touching when it was last seen (for
    /// [`PresenceState::Offline`], which no agent reports).
    pub async fn set_agent_presence(
        &self,
        agent: i64,
        state: PresenceState,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET presence = ? WHERE id = ?")
            .bind(presence_str(state))
            .bind(agent)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes changes older than `before_ms`, except each agent's last one before it (which
    /// still says what state the agent was in at `before_ms`). Returns how many rows went.
    pub async fn prune_presence(&self, before_ms: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM presence_log WHERE rowid IN (
                 SELECT rowid FROM (
                     SELECT rowid, ROW_NUMBER() OVER (
                         PARTITION BY agent_id ORDER BY at_ms DESC, rowid DESC) AS newest
                     FROM presence_log WHERE at_ms < ?)
                 WHERE newest > 1)",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::PresenceState::{Idle, Rendering, Suspended, UserPresent};

    use super::*;

    async fn store_with_agents(dir: &std::path::Path, n: usize) -> (Store, Vec<i64>) {
        let store = Store::open(dir).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(
                store
                    .insert_agent(&format!("pc-{i}"), "hash", &[], 0)
                    .await
                    .unwrap(),
            );
        }
        (store, ids)
    }

    fn at(at_ms: i64, state: PresenceState) -> PresenceChange {
        PresenceChange { at_ms, state }
    }

    #[tokio::test]
    async fn history_is_oldest_first_and_starts_with_the_state_at_its_left_edge() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with_agents(dir.path(), 2).await;
        let (a, b) = (ids[0], ids[1]);
        let log = [
            at(1_000, Idle),
            at(2_000, Rendering),
            at(3_000, UserPresent),
            at(4_000, Suspended),
            at(5_000, Idle),
        ];
        // Recorded out of order to show the answer is sorted by time, not by insertion.
        for c in [log[2], log[0], log[4], log[1], log[3]] {
            store.record_presence(a, c.state, c.at_ms).await.unwrap();
        }
        store.record_presence(b, Rendering, 2_500).await.unwrap();

        assert_eq!(store.presence_history(a, 0).await.unwrap(), log);
        assert_eq!(store.presence_history(a, 2_500).await.unwrap(), log[1..]);
        assert_eq!(store.presence_history(a, 3_000).await.unwrap(), log[2..]);
        assert_eq!(store.presence_history(a, 9_000).await.unwrap(), log[4..]);
        assert_eq!(
            store.presence_history(b, 0).await.unwrap(),
            [at(2_500, Rendering)]
        );
        assert_eq!(store.last_presence(a).await.unwrap(), Some(log[4]));
        assert_eq!(store.last_presence(b + 100).await.unwrap(), None);
        assert!(store.presence_history(b + 100, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn changes_in_the_same_millisecond_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with_agents(dir.path(), 1).await;
        store.record_presence(ids[0], Idle, 7).await.unwrap();
        store.record_presence(ids[0], Rendering, 7).await.unwrap();
        assert_eq!(
            store.presence_history(ids[0], 0).await.unwrap(),
            [at(7, Idle), at(7, Rendering)]
        );
        assert_eq!(
            store.last_presence(ids[0]).await.unwrap(),
            Some(at(7, Rendering))
        );
    }

    #[tokio::test]
    async fn pruning_keeps_each_agents_state_at_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with_agents(dir.path(), 3).await;
        let (busy, quiet, fresh) = (ids[0], ids[1], ids[2]);
        for (i, state) in [Idle, Rendering, UserPresent, Idle].into_iter().enumerate() {
            store
                .record_presence(busy, state, 100 * i as i64)
                .await
                .unwrap();
        }
        // Idle for ages: its one old change is all that says so.
        store.record_presence(quiet, Idle, 10).await.unwrap();
        store.record_presence(fresh, Rendering, 500).await.unwrap();

        assert_eq!(store.prune_presence(250).await.unwrap(), 2);
        assert_eq!(
            store.presence_history(busy, 0).await.unwrap(),
            [at(200, UserPresent), at(300, Idle)]
        );
        assert_eq!(
            store.presence_history(quiet, 0).await.unwrap(),
            [at(10, Idle)]
        );
        assert_eq!(
            store.presence_history(fresh, 0).await.unwrap(),
            [at(500, Rendering)]
        );
        // Nothing more to prune at the same cutoff.
        assert_eq!(store.prune_presence(250).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_offline_mark_keeps_when_the_agent_was_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with_agents(dir.path(), 1).await;
        let pc = ids[0];
        // Enrolment counts as being seen (at 0 here).
        assert_eq!(store.agent_last_seen(pc).await.unwrap(), Some(0));
        assert_eq!(store.agent_last_seen(pc + 1).await.unwrap(), None);
        store.agent_seen(pc, Rendering, 1_000).await.unwrap();
        store
            .set_agent_presence(pc, PresenceState::Offline)
            .await
            .unwrap();
        store
            .record_presence(pc, PresenceState::Offline, 61_000)
            .await
            .unwrap();
        assert_eq!(store.agent_last_seen(pc).await.unwrap(), Some(1_000));
        let listed = store.agent_infos(1_100).await.unwrap();
        assert_eq!(listed[0].presence, PresenceState::Offline);
        assert_eq!(listed[0].last_seen_secs_ago, Some(100));
        assert_eq!(
            store.last_presence(pc).await.unwrap(),
            Some(at(61_000, PresenceState::Offline))
        );
    }

    #[tokio::test]
    async fn history_survives_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ids) = store_with_agents(dir.path(), 1).await;
        store.record_presence(ids[0], Suspended, 42).await.unwrap();
        drop(store);
        let store = Store::open(dir.path()).await.unwrap();
        assert_eq!(
            store.last_presence(ids[0]).await.unwrap(),
            Some(at(42, Suspended))
        );
    }
}
