//! `idlefarm-notify`: the desktop companion of the idlefarm agent. Runs in a person's desktop
//! session (XDG autostart or a systemd user unit), follows the agent's status socket and shows
//! desktop notifications until Ctrl-C or SIGTERM. The work is done by
//! [`idlefarm_agent::notify::run_companion`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use idlefarm_agent::notify::claim_single_instance;
use idlefarm_runtime::shutdown_signal;

/// Shows desktop notifications when idlefarm pauses farm work for you, and what this PC
/// rendered while you were away.
#[derive(Debug, Parser)]
#[command(name = "idlefarm-notify", version, about)]
struct Args {
    /// The agent's status socket [default: /run/idlefarm-agent/status.sock, or a per-user
    /// agent's socket when only that one exists].
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty());
    let _instance = match runtime_dir.map(|dir| claim_single_instance(dir.as_ref())) {
        Some(Ok(None)) => {
            tracing::info!("another idlefarm-notify already runs for this user");
            return Ok(());
        }
        Some(Ok(Some(lock))) => Some(lock),
        Some(Err(err)) => {
            tracing::debug!("cannot make sure this is the only idlefarm-notify ({err})");
            None
        }
        None => None,
    };
    let socket = args
        .socket
        .unwrap_or_else(idlefarm_agent::notify::default_companion_socket);
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(idlefarm_agent::notify::run_companion(
        socket,
        shutdown_signal(),
    ));
    // A notification server that never answers leaves a blocking thread behind; don't wait
    // for it on the way out.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}
