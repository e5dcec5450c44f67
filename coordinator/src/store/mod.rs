//! The coordinator's SQLite database: jobs, frames, leases, agents and (in `accounts`) users,
//! sessions, API tokens, enrolment tokens and the audit log.
//! The only module that knows SQL. WAL mode, migrations embedded in the binary.

mod accounts;

pub use accounts::enrolment::TokenRevocation;
pub use accounts::roles::{RoleUpdate, UserLogins};
pub use accounts::setup::SetupKeyRow;
pub use accounts::{ApiTokenRow, SessionRow, UserRemoval, UserRow};

use std::path::Path;
use std::str::FromStr;

mod control;
mod jobs;
mod lease_batch;

pub use lease_batch::LeaseTicket;

use idlefarm_protocol::{
    AgentInfo, AgentMode, FrameCounts, InputKind, JobInfo, JobState, PresenceState, RenderSettings,
    RendererInfo,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

mod history;
mod requests;
mod throughput;

pub use requests::RequestRow;
pub use throughput::HOUR_MS;

/// Handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// New leases waiting for their group commit.
    leases: std::sync::Arc<lease_batch::LeaseBatch>,
}

/// A job row as the coordinator needs it in memory.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// Why it failed.
    pub error: Option<String>,
    /// Warnings from inspection.
    pub warnings: Vec<String>,
    /// How to render it.
    pub settings: RenderSettings,
    /// blake3 of the input blob.
    pub input_hash: String,
    /// File or zip.
    pub input_kind: InputKind,
    /// Submitted file name.
    pub input_name: String,
    /// Fixed chunk size.
    pub chunk_size: Option<u32>,
    /// Whether the MP4 exists.
    pub has_video: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// The submitting user (`None` for jobs from before accounts).
    pub owner_id: Option<i64>,
    /// Higher runs first.
    pub priority: i64,
    /// Tags an agent must have.
    pub required_tags: Vec<String>,
    /// Unix seconds of the first lease.
    pub started_at: Option<i64>,
    /// Unix seconds of the final state.
    pub finished_at: Option<i64>,
    /// The frame stored most recently.
    pub latest_frame: Option<i64>,
}

impl JobRow {
    /// The API view of the job, with frame counts from its board. The owner's name and the ETA
    /// are filled in by the caller, which knows users and agents.
    pub fn info(&self, counts: FrameCounts) -> JobInfo {
        JobInfo {
            owner_id: self.owner_id,
            owner: None,
            priority: self.priority,
            required_tags: self.required_tags.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            eta_secs: None,
            latest_frame: self.latest_frame,
            id: self.id,
            name: self.name.clone(),
            state: self.state,
            error: self.error.clone(),
            warnings: self.warnings.clone(),
            settings: self.settings.clone(),
            frames: counts,
            has_video: self.has_video,
            created_at: self.created_at,
            chunk_size: self.chunk_size,
        }
    }
}

/// An agent's credentials and the admin's settings for it, as the scheduler needs them.
#[derive(Debug, Clone)]
pub struct AgentRow {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// blake3 of its secret, hex.
    pub secret_hash: String,
    /// Renderers it has.
    pub renderers: Vec<RendererInfo>,
    /// Whether the admin lets it work.
    pub mode: AgentMode,
    /// Tags jobs can require.
    pub tags: Vec<String>,
    /// Unix millis of the admin's last release; failures before it are forgiven.
    pub released_at: i64,
}

fn kind_str(kind: InputKind) -> &'static str {
    match kind {
        InputKind::File => "file",
        InputKind::Zip => "zip",
    }
}

fn presence_str(p: PresenceState) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "idle".into())
}

fn decode_err(what: &str, err: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("{what}: {err}").into())
}

impl Store {
    /// Opens (creating if needed) `idlefarm.db` in `data_dir` and runs the migrations.
    pub async fn open(data_dir: &Path) -> Result<Store, sqlx::Error> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(data_dir.join("idlefarm.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            leases: Default::default(),
        })
    }

    /// Adds an agent; returns its id.
    pub async fn insert_agent(
        &self,
        name: &str,
        secret_hash: &str,
        renderers: &[RendererInfo],
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        let renderers = serde_json::to_string(renderers).map_err(|e| decode_err("renderers", e))?;
        let row = sqlx::query(
            "INSERT INTO agents (name, secret_hash, renderers, last_seen, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(secret_hash)
        .bind(renderers)
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        row.try_get(0)
    }

    /// Every agent that is not forgotten.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, name, secret_hash, renderers, mode, tags, released_at FROM agents
             WHERE forgotten = 0",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let renderers: String = r.try_get(3)?;
                let mode: String = r.try_get(4)?;
                let tags: String = r.try_get(5)?;
                Ok(AgentRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    secret_hash: r.try_get(2)?,
                    renderers: serde_json::from_str(&renderers)
                        .map_err(|e| decode_err("renderers", e))?,
                    mode: AgentMode::parse(&mode).ok_or_else(|| decode_err("mode", &mode))?,
                    tags: serde_json::from_str(&tags).map_err(|e| decode_err("tags", e))?,
                    released_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Records that an agent was heard from.
    pub async fn agent_seen(
        &self,
        id: i64,
        presence: PresenceState,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE agents SET presence = ?, last_seen = ? WHERE id = ?")
            .bind(presence_str(presence))
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records when agents were last heard from (agent, Unix seconds), in one transaction;
    /// never moves a time back.
    pub async fn agents_last_seen(&self, seen: &[(i64, i64)]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for &(id, at) in seen {
            sqlx::query(
                "UPDATE agents SET last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE id = ?",
            )
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Agents for the API.
    pub async fn agent_infos(&self, now: i64) -> Result<Vec<AgentInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, name, presence, last_seen, frames_done, renderers,
                    (SELECT COUNT(*) FROM lease_failures f WHERE f.agent_id = agents.id),
                    yields, mode, tags, latest_job, latest_frame
             FROM agents WHERE forgotten = 0 ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let presence: String = r.try_get(2)?;
                let last_seen: Option<i64> = r.try_get(3)?;
                let renderers: String = r.try_get(5)?;
                Ok(AgentInfo {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    presence: serde_json::from_value(serde_json::Value::String(presence))
                        .unwrap_or(PresenceState::Idle),
                    last_seen_secs_ago: last_seen.map(|t| (now - t).max(0)),
                    frames_done: r.try_get(4)?,
                    failures: r.try_get(6)?,
                    renderers: serde_json::from_str(&renderers).unwrap_or_default(),
                    yields: r.try_get(7)?,
                    mode: AgentMode::parse(&r.try_get::<String, _>(8)?).unwrap_or_default(),
                    tags: serde_json::from_str(&r.try_get::<String, _>(9)?).unwrap_or_default(),
                    quarantined_until: None,
                    blocklisted_jobs: Vec::new(),
                    no_work_reason: None,
                    latest_frame: r
                        .try_get::<Option<i64>, _>(10)?
                        .zip(r.try_get::<Option<i64>, _>(11)?),
                    declined: None,
                })
            })
            .collect()
    }
}

/// Inserts job 1 in `state` with no frames, for the store's own tests.
#[cfg(test)]
async fn insert_test_job(store: &Store, state: &str) {
    sqlx::query(
        "INSERT INTO jobs (id, name, state, warnings, settings, input_hash, input_kind,
                           input_name, created_at)
         VALUES (1, 'j', ?, '[]', '{}', 'h', 'file', 'scene.pov', 0)",
    )
    .bind(state)
    .execute(&store.pool)
    .await
    .unwrap();
}
