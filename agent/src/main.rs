//! `idlefarm-agent`: parses the command line, sets up logging and runs the agent until Ctrl-C
//! or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use idlefarm_agent::{AgentConfig, AlwaysAvailable, parse_duration};

/// Renders idlefarm jobs on this PC while nobody uses it.
#[derive(Debug, Parser)]
#[command(name = "idlefarm-agent", version, about)]
struct Args {
    /// Base URL of the coordinator, e.g. http://farm.lab:7870.
    #[arg(long, env = "IDLEFARM_COORDINATOR")]
    coordinator: String,
    /// Enrolment token from `idlefarm token`.
    #[arg(long, env = "IDLEFARM_TOKEN", hide_env_values = true)]
    token: String,
    /// Cache, credentials and render output [default: $XDG_STATE_HOME/idlefarm-agent,
    /// ~/.local/state/idlefarm-agent, or /var/lib/idlefarm-agent as root].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Name shown on the dashboard [default: host name].
    #[arg(long)]
    name: Option<String>,
    /// Account renderers run as [default as root: nobody].
    #[arg(long)]
    render_user: Option<String>,
    /// Blender executable.
    #[arg(long, default_value = "blender")]
    blender: PathBuf,
    /// POV-Ray executable.
    #[arg(long, default_value = "povray")]
    povray: PathBuf,
    /// How long a render stays paused for a person before the work is given back.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    max_suspend: Duration,
    /// Time between heartbeats.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    heartbeat_interval: Duration,
}

fn default_work_dir() -> PathBuf {
    if idlefarm_agent::is_root() {
        return PathBuf::from("/var/lib/idlefarm-agent");
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(state).join("idlefarm-agent");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/idlefarm-agent"),
        None => PathBuf::from("idlefarm-agent"),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!("cannot listen for SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let mut config = AgentConfig::new(
        args.coordinator,
        args.token,
        args.work_dir.unwrap_or_else(default_work_dir),
    );
    if let Some(name) = args.name {
        config.name = name;
    }
    config.blender = args.blender;
    config.povray = args.povray;
    config.render_user = args.render_user;
    config.max_suspend = args.max_suspend;
    config.heartbeat_interval = args.heartbeat_interval;
    idlefarm_agent::run(config, Arc::new(AlwaysAvailable), shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_name_the_flag() {
        let base = [
            "idlefarm-agent",
            "--coordinator",
            "http://h:1",
            "--token",
            "t",
        ];
        let args = Args::try_parse_from(base.iter().chain(&["--max-suspend", "500ms"])).unwrap();
        assert_eq!(args.max_suspend, Duration::from_millis(500));
        let args = Args::try_parse_from(base).unwrap();
        assert_eq!(args.max_suspend, Duration::from_secs(60));
        assert_eq!(args.heartbeat_interval, Duration::from_secs(5));
        let err = Args::try_parse_from(base.iter().chain(&["--max-suspend", "soon"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-suspend"), "{err}");
    }
}
