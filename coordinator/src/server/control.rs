//! Coordinator operations that change jobs as a whole, called by thin HTTP handlers: adding a
//! job. File work (blob storage, folders) happens before the scheduler lock is taken; the lock is
//! held only for the in-memory change.

use std::collections::HashMap;

use idlefarm_protocol::{JobInfo, JobState};

use super::Coordinator;
use super::state::{JobEntry, now_secs};
use crate::error::ApiError;
use crate::schedule::Board;
use crate::store::JobRow;
use crate::submit::Prepared;

impl Coordinator {
    /// Stores a prepared submission's input and creates its job with every frame queued.
    pub(crate) async fn add_job(&self, prepared: Prepared) -> Result<JobInfo, ApiError> {
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
        };
        // The row is durable before the job is visible in memory: a crash in between loses
        // nothing, the job is loaded at the next start.
        row.id = self.store.insert_job(&row).await?;
        tokio::fs::create_dir_all(self.data.frames_dir(row.id)).await?;
        let entry = JobEntry {
            board: Board::new(row.settings.frames()),
            row,
            speed: HashMap::new(),
        };
        let info = entry.row.info(entry.counts());
        tracing::info!(job = info.id, name = %info.name, frames = entry.board.frames.len(), "job submitted");
        self.sched.lock().await.jobs.insert(info.id, entry);
        self.work_queued.notify_waiters();
        Ok(info)
    }
}
