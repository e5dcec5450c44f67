//! `idlefarm-agent`: parses the command line and config file, sets up logging, starts presence
//! detection and runs the agent until Ctrl-C or SIGTERM. `idlefarm-agent status` asks a running
//! agent what it is doing and why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use idlefarm_agent::budget::MinFree;
use idlefarm_agent::config::FileConfig;
use idlefarm_agent::presence::monitor::{DetectedPresence, PresenceConfig};
use idlefarm_agent::presence::policy::Policy;
use idlefarm_agent::presence::schedule::Schedule;
use idlefarm_agent::status::{self, StatusEvent, StatusHub};
use idlefarm_agent::{AgentConfig, AlwaysAvailable, Presence};
use idlefarm_runtime::{default_agent_work_dir, parse_duration, shutdown_signal};
use idlefarm_tls::Fingerprint;

/// Renders idlefarm jobs on this PC while nobody uses it.
#[derive(Debug, Parser)]
#[command(name = "idlefarm-agent", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML); flags override it.
    #[arg(long, global = true, env = "IDLEFARM_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Base URL of the coordinator, e.g. http://farm.lab:7870 [default: the first one found on
    /// the LAN (mDNS, `_idlefarm._tcp`)].
    #[arg(long, env = "IDLEFARM_COORDINATOR")]
    coordinator: Option<String>,
    /// The HTTPS coordinator's certificate fingerprint (SHA-256, as `idlefarm serve` prints
    /// it) to pin [default: the certificate seen when enrolling].
    #[arg(long, value_parser = str::parse::<Fingerprint>)]
    fingerprint: Option<Fingerprint>,
    /// Enrolment token from `idlefarm token` [default: none: ask to join, and wait until an
    /// admin approves this PC on the dashboard].
    #[arg(long, env = "IDLEFARM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Cache, credentials and render output [default: $XDG_STATE_HOME/idlefarm-agent,
    /// ~/.local/state/idlefarm-agent, or /var/lib/idlefarm-agent as root].
    #[arg(long, global = true)]
    work_dir: Option<PathBuf>,
    /// Name shown on the dashboard [default: host name].
    #[arg(long)]
    name: Option<String>,
    /// Account renderers run as [default as root: nobody].
    #[arg(long)]
    render_user: Option<String>,
    /// Blender executable [default: blender].
    #[arg(long)]
    blender: Option<PathBuf>,
    /// POV-Ray executable [default: povray].
    #[arg(long)]
    povray: Option<PathBuf>,
    /// When to render: no-user (only while nobody is logged in), idle (input idle and CPU
    /// free), always (dedicated node) [default: no-user].
    #[arg(long)]
    policy: Option<Policy>,
    /// Under `idle`: how long input must be idle before rendering, e.g. 5m [default: 5m].
    #[arg(long, value_parser = parse_duration)]
    idle_after: Option<Duration>,
    /// How long the conditions must hold before work starts [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    settle: Option<Duration>,
    /// How long a render stays paused for a person before the work is given back [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    max_suspend: Option<Duration>,
    /// Weekly schedule, e.g. "Mon-Fri 19:00-07:00; Sat-Sun" [default: any time].
    #[arg(long, value_parser = Schedule::parse)]
    schedule: Option<Schedule>,
    /// D-Bus address of the system bus where logind is [default: the system bus].
    #[arg(long)]
    system_bus: Option<String>,
    /// Under `idle`: other programs' CPU use (percent of the machine) that counts as busy [default: 30].
    #[arg(long, value_parser = parse_percent)]
    cpu_threshold: Option<f32>,
    /// Time between heartbeats [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    heartbeat_interval: Option<Duration>,
    /// Most disk the input cache may use, e.g. 20G; least recently used inputs are removed to
    /// stay under it, and a job whose input cannot fit is declined [default: 10G].
    #[arg(long, value_parser = idlefarm_runtime::parse_size)]
    max_cache: Option<u64>,
    /// What must stay free on the disk of the work directory: a percentage of it, e.g. 10%,
    /// or a size, e.g. 20G [default: 10%].
    #[arg(long, value_parser = MinFree::parse)]
    min_free: Option<MinFree>,
    /// Keep one Blender per job running between its chunks, so a chunk does not pay Blender's
    /// start and the loading of the file again: true or false [default: true].
    #[arg(long, value_name = "BOOL", value_parser = clap::value_parser!(bool))]
    warm_blender: Option<bool>,
    /// Most chunks rendering at once; a further chunk is taken only while the renderers leave
    /// a core idle and memory to spare (1: one at a time) [default: the number of cores].
    #[arg(long, value_parser = idlefarm_agent::parallel::parse_max_parallel)]
    max_parallel: Option<usize>,
    /// Most memory all renderers together may use, e.g. 8G [default: three quarters of the
    /// memory available while they run].
    #[arg(long, value_parser = idlefarm_runtime::parse_size)]
    render_memory: Option<u64>,
    /// Local status socket for the desktop companion and `idlefarm-agent status` [default:
    /// status.sock in --work-dir; with the default work dir $XDG_RUNTIME_DIR/idlefarm-agent.sock,
    /// or /run/idlefarm-agent/status.sock as root].
    #[arg(long, global = true)]
    status_socket: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what the running agent is doing and why (reads its status socket; give it the
    /// agent's --config, --work-dir or --status-socket to find an agent started with them).
    Status {
        /// Print the agent's metrics instead, in the Prometheus text format.
        #[arg(long)]
        metrics: bool,
    },
}

fn parse_percent(s: &str) -> Result<f32, String> {
    match s.trim_end_matches('%').parse::<f32>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!("`{s}` is not a percentage between 0 and 100")),
    }
}

/// The config file named by `--config`, or an empty one.
fn load_file(args: &Args) -> anyhow::Result<FileConfig> {
    match &args.config {
        Some(path) => FileConfig::load(path).map_err(anyhow::Error::msg),
        None => Ok(FileConfig::default()),
    }
}

/// The work dir: flag over file over default.
fn work_dir(args: &Args, file: &FileConfig) -> PathBuf {
    args.work_dir
        .clone()
        .or_else(|| file.work_dir.clone())
        .unwrap_or_else(default_agent_work_dir)
}

/// The status socket, found the same way by the agent and by `idlefarm-agent status`: flag over
/// file over the one that goes with the work dir.
fn socket_path(args: &Args, file: &FileConfig) -> PathBuf {
    args.status_socket
        .clone()
        .or_else(|| file.status_socket.clone())
        .unwrap_or_else(|| status::socket_path_for(&work_dir(args, file)))
}

/// The agent's and the presence monitor's settings: flags over file over defaults.
fn settings(args: Args) -> anyhow::Result<(AgentConfig, PresenceConfig, PathBuf)> {
    let file = load_file(&args)?;
    let socket = socket_path(&args, &file);
    let work_dir = work_dir(&args, &file);
    // None: the agent looks for one on the LAN (mDNS).
    let coordinator = args.coordinator.or(file.coordinator).unwrap_or_default();
    // None: the agent asks to join and an admin approves it on the dashboard.
    let token = args.token.or(file.token).unwrap_or_default();
    let mut agent = AgentConfig::new(coordinator, token, work_dir);
    if let Some(name) = args.name.or(file.name) {
        agent.name = name;
    }
    agent.fingerprint = args
        .fingerprint
        .or_else(|| (file.fingerprint.as_deref()).and_then(|f| f.parse::<Fingerprint>().ok()));
    agent.render_user = args.render_user.or(file.render_user);
    if let Some(b) = args.blender.or(file.blender) {
        agent.blender = b;
    }
    if let Some(p) = args.povray.or(file.povray) {
        agent.povray = p;
    }
    if let Some(d) = args.max_suspend.or(FileConfig::duration(&file.max_suspend)) {
        agent.max_suspend = d;
    }
    if let Some(d) = args
        .heartbeat_interval
        .or(FileConfig::duration(&file.heartbeat_interval))
    {
        agent.heartbeat_interval = d;
    }
    if let Some(max) = args.max_cache.or_else(|| {
        file.max_cache
            .as_deref()
            .and_then(|s| idlefarm_runtime::parse_size(s).ok())
    }) {
        agent.disk_budget.max_cache = max;
    }
    if let Some(min) = args.min_free.or_else(|| {
        file.min_free
            .as_deref()
            .and_then(|s| MinFree::parse(s).ok())
    }) {
        agent.disk_budget.min_free = min;
    }
    if let Some(warm) = args.warm_blender.or(file.warm_blender) {
        agent.warm_blender = warm;
    }
    if let Some(n) = args.max_parallel.or_else(|| {
        (file.max_parallel)
            .and_then(|n| idlefarm_agent::parallel::parse_max_parallel(&n.to_string()).ok())
    }) {
        agent.parallel.max_parallel = n;
    }
    if let Some(bytes) = args.render_memory.or_else(|| {
        (file.render_memory.as_deref()).and_then(|s| idlefarm_runtime::parse_size(s).ok())
    }) {
        agent.parallel.render_memory = Some(bytes);
    }
    let defaults = PresenceConfig::default();
    let schedule = match args.schedule {
        Some(s) => Some(s),
        None => file
            .schedule
            .as_deref()
            .map(Schedule::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let presence = PresenceConfig {
        policy: args.policy.or(file.policy).unwrap_or(defaults.policy),
        idle_after: args
            .idle_after
            .or(FileConfig::duration(&file.idle_after))
            .unwrap_or(defaults.idle_after),
        settle: args
            .settle
            .or(FileConfig::duration(&file.settle))
            .unwrap_or(defaults.settle),
        schedule,
        system_bus: args.system_bus.or(file.system_bus),
        cpu_threshold: args
            .cpu_threshold
            .or(file.cpu_threshold)
            .unwrap_or(defaults.cpu_threshold),
        ..defaults
    };
    Ok((agent, presence, socket))
}

async fn print_status(socket: PathBuf) -> anyhow::Result<()> {
    let snapshot = status::read_snapshot(&socket).await.with_context(|| {
        format!(
            "no agent answers on {} (is idlefarm-agent running?)",
            socket.display()
        )
    })?;
    if let StatusEvent::Snapshot {
        presence,
        reason,
        sources,
        frames_since_login,
        jobs_since_login,
        coordinator_problem,
        coordinator,
    } = snapshot
    {
        let state = serde_json::to_value(presence)?;
        println!("presence: {}", state.as_str().unwrap_or("?"));
        println!("why:      {reason}");
        if let Some(coordinator) = coordinator {
            println!("coordinator: {coordinator}");
        }
        if let Some(problem) = coordinator_problem {
            println!("problem:  {problem}");
        }
        for s in sources {
            println!("  {:<24} {}", s.source, s.reading);
        }
        println!(
            "since the last person left: {frames_since_login} frame(s) for {jobs_since_login} job(s)"
        );
    }
    Ok(())
}

async fn print_metrics(socket: PathBuf) -> anyhow::Result<()> {
    let text = idlefarm_agent::metrics::read_metrics(&socket)
        .await
        .with_context(|| {
            format!(
                "no agent answers on {} (is idlefarm-agent running?)",
                socket.display()
            )
        })?;
    print!("{text}");
    Ok(())
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
    if let Some(Command::Status { metrics }) = args.command {
        let socket = socket_path(&args, &load_file(&args)?);
        if metrics {
            return print_metrics(socket).await;
        }
        return print_status(socket).await;
    }
    let (mut config, presence_config, socket) = settings(args)?;
    let hub = StatusHub::new();
    let _server = match hub.serve(&socket) {
        Ok(server) => server,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "another idlefarm-agent is running with the status socket {} (and so, most likely, with \
             this work dir {}): give this agent its own --work-dir, or its own --status-socket",
            socket.display(),
            config.work_dir.display()
        ),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot open the status socket {}", socket.display()));
        }
    };
    config.status = hub.clone();
    tracing::info!(policy = %presence_config.policy, socket = %socket.display(), "presence policy");
    let presence: Arc<dyn Presence> = match presence_config.policy {
        Policy::Always if presence_config.schedule.is_none() => Arc::new(AlwaysAvailable),
        _ => DetectedPresence::start(presence_config, hub),
    };
    idlefarm_agent::run(config, presence, shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [&str; 5] = [
        "idlefarm-agent",
        "--coordinator",
        "http://h:1",
        "--token",
        "t",
    ];

    #[test]
    fn flags_parse_and_bad_ones_name_the_flag() {
        let args = Args::try_parse_from(BASE.iter().chain(&[
            "--max-suspend",
            "500ms",
            "--policy",
            "idle",
        ]))
        .unwrap();
        assert_eq!(args.max_suspend, Some(Duration::from_millis(500)));
        let (agent, presence, _) = settings(args).unwrap();
        assert_eq!(agent.max_suspend, Duration::from_millis(500));
        assert_eq!(presence.policy, Policy::Idle);
        for (flag, value) in [
            ("--max-suspend", "soon"),
            ("--idle-after", "5 minutes"),
            ("--policy", "lazy"),
            ("--schedule", "Funday"),
            ("--cpu-threshold", "400"),
            ("--max-cache", "lots"),
            ("--max-cache", "0"),
            ("--max-cache", "1.5G"),
            ("--min-free", "150%"),
            ("--min-free", "ten"),
            ("--max-parallel", "0"),
            ("--max-parallel", "many"),
            ("--max-parallel", "1.5"),
            ("--render-memory", "lots"),
        ] {
            let err = Args::try_parse_from(BASE.iter().chain(&[flag, value]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn durations_without_a_unit_are_refused_in_flags_and_the_config_file() {
        for flag in [
            "--idle-after",
            "--settle",
            "--max-suspend",
            "--heartbeat-interval",
        ] {
            let err = Args::try_parse_from(BASE.iter().chain(&[flag, "5"]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(flag) && err.contains("`5` has no unit") && err.contains("5s or 5m"),
                "{flag}: {err}"
            );
        }
        let args = Args::try_parse_from(BASE.iter().chain(&["--settle", "0"])).unwrap();
        assert_eq!(settings(args).unwrap().1.settle, Duration::ZERO);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "idle_after = \"5\"\n").unwrap();
        let args =
            Args::try_parse_from(BASE.iter().chain(&["--config", path.to_str().unwrap()])).unwrap();
        let err = settings(args).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml") && err.contains("idle_after: `5` has no unit"),
            "{err}"
        );
        // A bare TOML number is not a duration either.
        std::fs::write(&path, "idle_after = 5\n").unwrap();
        let args =
            Args::try_parse_from(BASE.iter().chain(&["--config", path.to_str().unwrap()])).unwrap();
        let err = settings(args).unwrap_err().to_string();
        assert!(err.contains("idle_after"), "{err}");
    }

    #[test]
    fn flags_override_the_config_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "coordinator = \"http://file:1\"\ntoken = \"ft\"\npolicy = \"idle\"\nidle_after = \"2m\"\nsettle = \"1s\"\n").unwrap();
        let args = Args::try_parse_from([
            "idlefarm-agent",
            "--config",
            path.to_str().unwrap(),
            "--idle-after",
            "10s",
        ])
        .unwrap();
        let (agent, presence, _) = settings(args).unwrap();
        assert_eq!(agent.coordinator, "http://file:1");
        assert_eq!(
            agent.disk_budget,
            idlefarm_agent::budget::DiskBudget::default()
        );
        assert_eq!(presence.idle_after, Duration::from_secs(10));
        assert_eq!(presence.settle, Duration::from_secs(1));
        assert_eq!(presence.policy, Policy::Idle);

        std::fs::write(
            &path,
            "coordinator = \"http://f:1\"\ntoken = \"t\"\nmax_cache = \"2G\"\nmin_free = \"5G\"\n",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "idlefarm-agent",
            "--config",
            path.to_str().unwrap(),
            "--min-free",
            "20%",
        ])
        .unwrap();
        let (agent, _, _) = settings(args).unwrap();
        assert_eq!(agent.disk_budget.max_cache, 2 << 30);
        assert_eq!(agent.disk_budget.min_free, MinFree::Percent(20.0));
        assert_eq!(
            agent.parallel,
            idlefarm_agent::parallel::ParallelLimits::default()
        );

        std::fs::write(&path, "max_parallel = 3\nrender_memory = \"2G\"\n").unwrap();
        let args = Args::try_parse_from([
            "idlefarm-agent",
            "--config",
            path.to_str().unwrap(),
            "--max-parallel",
            "1",
        ])
        .unwrap();
        let (agent, _, _) = settings(args).unwrap();
        assert_eq!(agent.parallel.max_parallel, 1, "the flag wins");
        assert_eq!(agent.parallel.render_memory, Some(2 << 30));

        std::fs::write(&path, "coordinater = \"typo\"\n").unwrap();
        let args =
            Args::try_parse_from(["idlefarm-agent", "--config", path.to_str().unwrap()]).unwrap();
        let err = settings(args).unwrap_err().to_string();
        assert!(
            err.contains("coordinater") && err.contains("agent.toml"),
            "{err}"
        );

        // No coordinator: found on the LAN; no token: ask an admin to approve this PC.
        let args = Args::try_parse_from(["idlefarm-agent"]).unwrap();
        let (agent, _, _) = settings(args).unwrap();
        assert_eq!((agent.coordinator.as_str(), agent.token.as_str()), ("", ""));
        assert!(agent.warm_blender, "warm Blenders are on by default");

        // Warm Blenders: the flag wins over the file; only true or false.
        std::fs::write(&path, "warm_blender = false\n").unwrap();
        let args =
            Args::try_parse_from(["idlefarm-agent", "--config", path.to_str().unwrap()]).unwrap();
        assert!(!settings(args).unwrap().0.warm_blender);
        let args = Args::try_parse_from([
            "idlefarm-agent",
            "--config",
            path.to_str().unwrap(),
            "--warm-blender",
            "true",
        ])
        .unwrap();
        assert!(settings(args).unwrap().0.warm_blender);
        let err = Args::try_parse_from(["idlefarm-agent", "--warm-blender", "maybe"]).unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
        std::fs::write(&path, "warm_blender = \"off\"\n").unwrap();
        let args =
            Args::try_parse_from(["idlefarm-agent", "--config", path.to_str().unwrap()]).unwrap();
        let err = settings(args).unwrap_err().to_string();
        assert!(err.contains("agent.toml"), "{err}");

        let err = Args::try_parse_from(["idlefarm-agent", "--fingerprint", "12:34"]).unwrap_err();
        assert!(err.to_string().contains("not a SHA-256"), "{err}");
    }
}
