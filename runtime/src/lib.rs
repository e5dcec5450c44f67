//! What both idlefarm binaries (the coordinator's `idlefarm` and the agent's `idlefarm-agent`)
//! need at run time and that is not wire format: durations as people type them, the shutdown
//! signal, facts about this host and the default directories. It lets the coordinator use
//! these without linking the agent, and stays tiny: no HTTP, no X11, no D-Bus.

mod dirs;
mod duration;
mod host;
mod signal;
mod size;

pub use dirs::{SYSTEM_AGENT_WORK_DIR, default_agent_work_dir};
pub use duration::{DurationError, parse_duration};
pub use host::{can_switch_users, hostname, is_root};
pub use signal::shutdown_signal;
pub use size::parse_size;
