//! The farm's throughput: how many frames were stored per hour, for the overview's chart. Read
//! from each frame's `done_at_ms`, written when the frame is stored.

use super::Store;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

impl Store {
    /// Frames stored in each of the `hours` hours up to `now_ms`, oldest hour first: entry `i`
    /// counts frames stored in `(now - (hours - i) h, now - (hours - i - 1) h]`.
    pub async fn frames_per_hour(
        &self,
        now_ms: i64,
        hours: usize,
    ) -> Result<Vec<u64>, sqlx::Error> {
        let since = now_ms - hours as i64 * HOUR_MS;
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT (done_at_ms - ?1 - 1) / ?3 AS hour, COUNT(*) FROM frames
             WHERE done_at_ms > ?1 AND done_at_ms <= ?2 GROUP BY hour",
        )
        .bind(since)
        .bind(now_ms)
        .bind(HOUR_MS)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = vec![0; hours];
        for (hour, n) in rows {
            if let Some(c) = usize::try_from(hour).ok().and_then(|h| counts.get_mut(h)) {
                *c = n.max(0) as u64;
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_frames(dir: &std::path::Path, done_at: &[Option<i64>]) -> Store {
        let store = Store::open(dir).await.unwrap();
        super::super::insert_test_job(&store, "done").await;
        for (idx, at) in done_at.iter().enumerate() {
            sqlx::query(
                "INSERT INTO frames (job_id, idx, frame, state, done_at_ms)
                 VALUES (1, ?1, ?1, 'done', ?2)",
            )
            .bind(idx as i64)
            .bind(at)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store
    }

    #[tokio::test]
    async fn frames_fall_into_the_hour_they_were_stored_in() {
        let dir = tempfile::tempdir().unwrap();
        let now = 100 * HOUR_MS;
        let store = store_with_frames(
            dir.path(),
            &[
                Some(now),                   // the last hour (its right edge)
                Some(now - 1),               // the last hour
                Some(now - HOUR_MS),         // the hour before (its right edge)
                Some(now - 3 * HOUR_MS + 1), // the first hour (its left edge is open)
                Some(now - 3 * HOUR_MS),     // before the window
                Some(now + 1),               // after now (a clock step): not counted
                None,                        // stored before times were kept
            ],
        )
        .await;
        assert_eq!(store.frames_per_hour(now, 3).await.unwrap(), [1, 1, 2]);
        assert_eq!(
            store.frames_per_hour(now, 0).await.unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(
            store.frames_per_hour(now - 50 * HOUR_MS, 2).await.unwrap(),
            [0, 0]
        );
    }
}
