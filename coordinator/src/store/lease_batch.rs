//! Group commit for new leases. When work appears, thousands of waiting PCs ask for it at
//! once; saving each lease in a transaction of its own while the scheduler lock is held would
//! hand the leases out one fsync at a time. Instead the scheduler queues the lease's rows,
//! exactly as they are at that moment, under its lock, and the request waits for them after
//! letting go of the lock: whoever commits first writes every lease queued so far in one
//! transaction. A PC is answered only once its lease is on disk, as before.
//!
//! Order is kept: every other write of frames or leases first commits what is queued (see
//! [`Store::save_queued_leases`]), so a later change of the same frames (done, released,
//! deleted) can never be overwritten by an older queued lease.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::jobs::{FrameRow, frame_rows, write_frame_rows};
use super::{Store, decode_err};
use crate::schedule::{Board, LeaseId, LeaseSlot};

/// Leases queued and not yet committed; the lock held while committing.
#[derive(Debug, Default)]
pub(super) struct LeaseBatch {
    /// Queued leases, oldest first.
    queued: Mutex<Vec<NewLease>>,
    /// Held by whoever commits, so commits follow the queue's order.
    committing: tokio::sync::Mutex<()>,
}

/// A new lease's row and its frames' rows, as they were when it was taken, and where to say
/// how its commit went.
#[derive(Debug)]
struct NewLease {
    job: i64,
    lease: LeaseId,
    agent: i64,
    frames: String,
    started_at: i64,
    expires_at: i64,
    rows: Vec<FrameRow>,
    /// When the job started (Unix seconds), for its first lease.
    job_started: Option<i64>,
    saved: oneshot::Sender<Result<(), String>>,
}

/// A queued lease; [`Store::lease_saved`] waits until it is committed.
#[derive(Debug)]
pub struct LeaseTicket(oneshot::Receiver<Result<(), String>>);

impl Store {
    /// Queues a new lease and the frames it took, as `board` has them now, for the next
    /// commit, with when the job started (Unix seconds) if it is the job's first lease. Call it
    /// where the lease was taken (under the scheduler lock), then wait for
    /// [`Store::lease_saved`] before telling the agent.
    pub fn queue_lease(
        &self,
        job: i64,
        lease: LeaseId,
        slot: &LeaseSlot,
        board: &Board,
        job_started: Option<i64>,
    ) -> Result<LeaseTicket, sqlx::Error> {
        let (saved, ticket) = oneshot::channel();
        let new = NewLease {
            job,
            lease,
            agent: slot.agent,
            frames: serde_json::to_string(&slot.frames).map_err(|e| decode_err("frames", e))?,
            started_at: slot.started_at,
            expires_at: slot.expires_at,
            rows: frame_rows(board, &slot.frames)?,
            job_started,
            saved,
        };
        self.leases.queued.lock().expect("not poisoned").push(new);
        Ok(LeaseTicket(ticket))
    }

    /// Waits until the lease of `ticket` is committed, committing it (and every other queued
    /// one) if nobody has yet.
    pub async fn lease_saved(&self, mut ticket: LeaseTicket) -> Result<(), sqlx::Error> {
        let _committing = self.leases.committing.lock().await;
        if let Ok(saved) = ticket.0.try_recv() {
            return saved.map_err(sqlx::Error::Protocol);
        }
        // Not committed yet, so still queued: this commit takes it.
        self.commit_queued().await
    }

    /// Commits every queued lease. Every other write of frames or leases calls this first.
    pub(super) async fn save_queued_leases(&self) -> Result<(), sqlx::Error> {
        let _committing = self.leases.committing.lock().await;
        self.commit_queued().await
    }

    /// Commits the queued leases in one transaction and tells each how it went (a lease that
    /// could not be saved is never handed out; in memory it expires like any lease).
    async fn commit_queued(&self) -> Result<(), sqlx::Error> {
        let batch = std::mem::take(&mut *self.leases.queued.lock().expect("not poisoned"));
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.write_leases(&batch).await;
        let told = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        for new in batch {
            // The request may be gone (its agent hung up); nothing to tell then.
            let _ = new.saved.send(told.clone());
        }
        result
    }

    /// Writes leases and their frames in one transaction.
    async fn write_leases(&self, batch: &[NewLease]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for new in batch {
            sqlx::query(
                "INSERT INTO leases (id, job_id, agent_id, frames, started_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(new.lease)
            .bind(new.job)
            .bind(new.agent)
            .bind(&new.frames)
            .bind(new.started_at)
            .bind(new.expires_at)
            .execute(&mut *tx)
            .await?;
            write_frame_rows(&mut tx, new.job, &new.rows).await?;
            if let Some(at) = new.job_started {
                sqlx::query("UPDATE jobs SET started_at = ? WHERE id = ? AND started_at IS NULL")
                    .bind(at)
                    .bind(new.job)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::FrameState;

    const TTL: i64 = 60_000;

    /// A store with one agent and one job of `frames` queued frames, and the job's board.
    async fn store_with_job(dir: &std::path::Path, frames: i64) -> (Store, i64, Board) {
        let store = Store::open(dir).await.unwrap();
        let agent = store.insert_agent("pc1", "hash", &[], 0).await.unwrap();
        super::super::insert_test_job(&store, "rendering").await;
        for idx in 0..frames {
            sqlx::query(
                "INSERT INTO frames (job_id, idx, frame, state) VALUES (1, ?1, ?1, 'queued')",
            )
            .bind(idx)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        (store, agent, Board::new(0..frames))
    }

    #[tokio::test]
    async fn a_later_change_of_a_queued_leases_frame_is_never_overwritten_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, agent, mut board) = store_with_job(dir.path(), 3).await;
        board.take_chunk(1, agent, 3, 1_000, TTL, false).unwrap();
        let ticket = store
            .queue_lease(1, 1, &board.leases[&1], &board, Some(1))
            .unwrap();
        // The frame arrives before the request that took the lease waited for its commit.
        let i = board.frame_done(0, agent, 2_000, None, None).unwrap();
        store
            .frame_done(1, &board, i, "f0.png", 2_000)
            .await
            .unwrap();
        store.lease_saved(ticket).await.unwrap();

        let saved = store.board(1).await.unwrap();
        assert_eq!(saved.frames[0].state, FrameState::Done(agent));
        assert_eq!(saved.frames[1].state, FrameState::Leased(1));
        assert_eq!(saved.leases[&1].frames, vec![0, 1, 2]);
        let started: Option<i64> = sqlx::query_scalar("SELECT started_at FROM jobs WHERE id = 1")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(started, Some(1));
    }

    #[tokio::test]
    async fn leases_queued_together_are_all_committed_and_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let (store, agent, mut board) = store_with_job(dir.path(), 40).await;
        let mut tickets = Vec::new();
        for lease in 1..=40 {
            board
                .take_chunk(lease, agent, 1, 1_000, TTL, false)
                .unwrap();
            tickets.push(
                store
                    .queue_lease(1, lease, &board.leases[&lease], &board, None)
                    .unwrap(),
            );
        }
        let waits = tickets.into_iter().map(|t| {
            let store = store.clone();
            tokio::spawn(async move { store.lease_saved(t).await })
        });
        for wait in waits.collect::<Vec<_>>() {
            wait.await.unwrap().unwrap();
        }
        let saved = store.board(1).await.unwrap();
        assert_eq!(saved.leases.len(), 40);
        assert!(
            saved
                .frames
                .iter()
                .all(|f| matches!(f.state, FrameState::Leased(_)))
        );
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_saved_is_refused_and_does_not_block_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (store, agent, mut board) = store_with_job(dir.path(), 2).await;
        board.take_chunk(1, agent, 1, 1_000, TTL, false).unwrap();
        // Job 7 does not exist: the row breaks a foreign key, so the whole batch fails.
        let bad = store
            .queue_lease(7, 1, &board.leases[&1], &board, None)
            .unwrap();
        let err = store.lease_saved(bad).await.unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");

        board.take_chunk(2, agent, 1, 1_000, TTL, false).unwrap();
        let good = store
            .queue_lease(1, 2, &board.leases[&2], &board, None)
            .unwrap();
        store.lease_saved(good).await.unwrap();
        let saved = store.board(1).await.unwrap();
        assert_eq!(saved.leases.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(saved.frames[1].state, FrameState::Leased(2));
    }
}
