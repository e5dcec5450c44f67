//! The scheduling core: plain data and pure functions, no I/O and no clock. The caller passes the
//! time in as [`Millis`], persists what changed, and property tests drive it with random event
//! sequences.
//!
//! - [`availability`]: how long a PC is likely to stay free, from its presence history.
//! - [`backup`]: straggler backups, a second copy of a frame near the end of a job.
//! - [`board`]: one job's frames and the leases that hold them (`Queued → Leased → Done`).
//! - [`check`]: whether a received frame looks like a broken PC's work, and how second
//!   opinions from other PCs settle it.
//! - [`chunk`]: how many frames the next chunk for an agent should hold.
//! - [`pick`]: which job an agent gets next (priority, fair share, tags, pause, drain), or why
//!   it gets nothing.
//! - [`speed`]: seconds per frame of each PC on a job, from each delivered frame.
//! - [`health`]: which agents are blocklisted for a job or quarantined farm-wide, rebuilt from
//!   their failure records.

pub mod availability;
pub mod backup;
pub mod board;
pub mod check;
pub mod chunk;
pub mod health;
pub mod pick;
pub mod speed;

#[cfg(test)]
mod tests;

pub use board::{
    Board, Counts, FrameReject, FrameSlot, FrameState, LeaseEnding, LeaseSlot, MAX_FRAME_FAILURES,
    UnknownFrame,
};
pub use chunk::{ChunkPolicy, Peer, chunk_size, others_finish_first};
pub use health::{FailureRecord, Health, HealthPolicy, all_blocklisted, assess};
pub use pick::{
    AgentMode, AgentView, JobStatus, JobView, Misfit, NoWork, Unfit, misfit, pick_order,
};
pub use speed::Speeds;

/// Lease identifier (unique across jobs).
pub type LeaseId = i64;
/// Agent identifier.
pub type AgentId = i64;
/// Milliseconds since the Unix epoch.
pub type Millis = i64;
