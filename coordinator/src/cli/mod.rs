//! The `idlefarm` command line: `serve`, `up`, `submit`, `status`, `fetch`; the account
//! commands (`login`, `logout`, `user`, `token`, `audit`) in [`accounts`]; job and agent control
//! in [`control`].

mod accounts;
mod control;
mod local_agent;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use idlefarm_protocol::{JobInfo, JobState};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Client, SubmitOptions};
use crate::schedule::HealthPolicy;
use crate::server::{self, Coordinator, ServerConfig};
use local_agent::LocalAgent;

/// idlefarm: a render farm made of lab PCs that renders only while nobody uses them.
#[derive(Debug, Parser)]
#[command(name = "idlefarm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator (web page, API, scheduler).
    Serve(ServeArgs),
    /// Run a coordinator and one local agent on this PC: the quickest way to a working farm.
    Up(ServeArgs),
    /// Submit a .blend, .pov (with --ini) or .zip project.
    Submit(SubmitArgs),
    /// Show jobs and agents, or one job in detail.
    Status {
        /// Job id; all jobs when omitted.
        job: Option<i64>,
        /// Print JSON (`{"jobs": [...], "agents": [...]}`) for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    #[command(flatten)]
    Control(control::ControlCommand),
    /// Download a job's frames and video.
    Fetch {
        /// Job id.
        job: i64,
        /// Folder to write frame_00001.png ... and the .mp4 into (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Log this CLI in to a coordinator (saves an API token in your config directory).
    Login(accounts::LoginArgs),
    /// Log this CLI out of a coordinator (revokes and forgets the saved API token).
    Logout {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Manage users (admins; or on the coordinator's machine with --data DIR).
    User(accounts::UserArgs),
    /// Print the enrolment token agents register with (creates one if there is none), or
    /// create, list and revoke enrolment tokens.
    Token(accounts::TokenArgs),
    /// Show the audit log: who did what, when (admins; or with --data DIR).
    Audit(accounts::AuditArgs),
}

/// The coordinator the CLI talks to unless told otherwise (where `idlefarm up` listens).
const DEFAULT_SERVER: &str = "http://127.0.0.1:7870";

#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// The coordinator's URL.
    #[arg(
        long = "server",
        env = "IDLEFARM_SERVER",
        default_value = DEFAULT_SERVER
    )]
    url: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on. `serve` listens on all interfaces so lab PCs can reach it.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (database, inputs, frames, videos).
    #[arg(long, env = "IDLEFARM_DATA")]
    data: Option<PathBuf>,
    /// Largest accepted upload, e.g. `500M`, `4G`.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    max_upload: u64,
    /// How long a lease lives without a heartbeat from its agent, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = idlefarm_runtime::parse_duration)]
    lease_ttl: Duration,
    /// How long an agent that failed on several jobs stays quarantined, e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = idlefarm_runtime::parse_duration)]
    forgive: Duration,
    /// How long an automatically sized chunk should take, e.g. `2m`.
    #[arg(long, default_value = "2m", value_parser = idlefarm_runtime::parse_duration)]
    chunk_target: Duration,
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// The scene: .blend, .pov or .zip.
    file: PathBuf,
    /// POV-Ray .ini with the animation settings.
    #[arg(long)]
    ini: Option<PathBuf>,
    /// Frames to render: `1-48`, `1-48:2` or `7` (default: from the scene).
    #[arg(long)]
    frames: Option<String>,
    /// Frames per chunk, or `auto` (default).
    #[arg(long)]
    chunk: Option<String>,
    /// Blender scene to render (default: the file's active scene).
    #[arg(long)]
    scene: Option<String>,
    /// Main scene file inside a .zip that holds several.
    #[arg(long)]
    main: Option<String>,
    /// Render a .zip's scene files as one animation, one file per frame in name order.
    #[arg(long, conflicts_with = "main")]
    sequence: bool,
    /// Job name (default: the file name).
    #[arg(long)]
    name: Option<String>,
    /// Frame rate of the video (default: from the scene; 24 for POV-Ray).
    #[arg(long)]
    fps: Option<String>,
    /// Frame image format: png or jpeg (default: from the scene).
    #[arg(long)]
    format: Option<String>,
    /// Priority: higher runs first; equal priorities share the farm between users [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i64>,
    /// Render only on agents with this tag (repeat for several), e.g. `--require-tag room-2`.
    #[arg(long = "require-tag")]
    require_tags: Vec<String>,
    /// Wait for the job to finish, showing progress.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    server: ServerArg,
}

impl ServerArg {
    /// A client for this coordinator that sends the token `idlefarm login` saved for it.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Client::for_cli(&self.url)
    }
}

/// Parses sizes like `4096`, `500K`, `200M`, `4G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size; use e.g. 4096, 500K, 200M or 4G"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("`{s}` must be between 1 byte and 16 EiB"))
}

/// Where the coordinator keeps its data unless told otherwise.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("idlefarm");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/idlefarm"),
        None => PathBuf::from("idlefarm-data"),
    }
}

/// Runs the CLI.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args, false).await,
        Command::Up(args) => serve(args, true).await,
        Command::Submit(args) => submit(args).await,
        Command::Status { job, json, server } => status(&server.client()?, job, json).await,
        Command::Control(command) => control::run(command).await,
        Command::Fetch { job, out, server } => fetch(&server.client()?, job, &out).await,
        Command::Login(args) => accounts::login(args).await,
        Command::Logout { server } => accounts::logout(&server.url).await,
        Command::User(args) => accounts::user(args).await,
        Command::Token(args) => accounts::token(args).await,
        Command::Audit(args) => accounts::audit(args).await,
    }
}

async fn serve(args: ServeArgs, with_agent: bool) -> anyhow::Result<()> {
    let data = args.data.unwrap_or_else(default_data_dir);
    let default_listen = if with_agent {
        "127.0.0.1:7870"
    } else {
        "0.0.0.0:7870"
    };
    let listen = args
        .listen
        .unwrap_or_else(|| default_listen.parse().expect("valid address"));
    let config = ServerConfig {
        max_upload_bytes: args.max_upload,
        lease_ttl: args.lease_ttl,
        chunk_target: args.chunk_target,
        health: HealthPolicy {
            forgive_ms: args.forgive.as_millis() as i64,
            ..HealthPolicy::default()
        },
        ..ServerConfig::new(data.clone())
    };
    let coord = Coordinator::open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another idlefarm running?)"))?;
    let addr = listener.local_addr()?;
    let (token, created) = coord.enrolment_token().await?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{host}:{}", addr.port());
    println!("idlefarm coordinator running");
    println!("  dashboard:        {url}/");
    println!("  data directory:   {}", data.display());
    if created {
        println!("  enrolment token:  {token}   (new; `idlefarm token` prints it again)");
    } else {
        println!("  enrolment token:  {token}");
    }
    println!(
        "  add a lab PC:     idlefarm-agent --coordinator http://<this-pc>:{} --token {token}",
        addr.port()
    );
    println!("  submit a job:     idlefarm submit scene.blend --wait");
    if let Some((name, password)) = crate::accounts::first_run_admin(&coord.store).await? {
        println!(
            "  admin login:      {name} / {password}  (shown once; `idlefarm user passwd {name}` changes it)"
        );
    }
    if with_agent {
        match crate::accounts::login_local_cli(&coord.store, &url).await {
            Ok(path) => println!(
                "  CLI:              logged in as admin (token in {})",
                path.display()
            ),
            Err(e) => println!("  CLI:              not logged in ({e}); use `idlefarm login`"),
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    };
    // Started before the server so a missing agent binary stops `up` before it serves.
    let mut agent = if with_agent {
        let binary = local_agent::find_agent_binary()?;
        let work_dir = local_agent::work_dir(&data);
        println!(
            "  local agent:      work dir {} (renders whenever asked: policy always)",
            work_dir.display()
        );
        Some(LocalAgent::start(&binary, &url, &token, &work_dir)?)
    } else {
        None
    };
    let server = tokio::spawn(server::run(listener, coord.clone(), shutdown));
    tokio::select! {
        _ = idlefarm_runtime::shutdown_signal() => {}
        exited = local_agent_exited(&mut agent) => {
            let _ = stop_tx.send(true);
            server.await??;
            let status = exited.context("cannot wait for the local agent")?;
            if !status.success() {
                bail!("the local agent stopped ({status})");
            }
            return Ok(());
        }
    }
    println!("shutting down…");
    // The agent goes first: it still reports its lease to the coordinator.
    let agent_stopped = match agent {
        Some(agent) => Some(agent.stop().await),
        None => None,
    };
    let _ = stop_tx.send(true);
    server.await??;
    if let Some(stopped) = agent_stopped {
        let status = stopped.context("cannot stop the local agent")?;
        if !status.success() {
            bail!("the local agent did not stop cleanly ({status})");
        }
    }
    Ok(())
}

/// Completes when `up`'s local agent exits on its own; never without one.
async fn local_agent_exited(
    agent: &mut Option<LocalAgent>,
) -> std::io::Result<std::process::ExitStatus> {
    match agent {
        Some(agent) => agent.exited().await,
        None => std::future::pending().await,
    }
}

async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let opts = SubmitOptions {
        ini: args.ini,
        frames: args.frames,
        chunk: args.chunk,
        scene: args.scene,
        main: args.main,
        sequence: args.sequence,
        name: args.name,
        fps: args.fps,
        format: args.format,
        priority: args.priority.map(|p| p.to_string()),
        tags: (!args.require_tags.is_empty()).then(|| args.require_tags.join(",")),
    };
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    eprintln!(
        "uploading {} ({:.1} MiB)…",
        args.file.display(),
        size as f64 / (1 << 20) as f64
    );
    let job = client.submit(&args.file, &opts).await?;
    let s = &job.settings;
    let (w, h) = s.frame_size();
    println!(
        "job {} submitted: {} frames {}-{} at {w}x{h}, {} fps",
        job.id,
        s.renderer.as_str(),
        s.frame_start,
        s.frame_end,
        s.fps
    );
    for w in &job.warnings {
        println!("  warning: {w}");
    }
    if !args.wait {
        println!("follow it with: idlefarm status {}", job.id);
        return Ok(());
    }
    let job = wait(&client, job.id).await?;
    report_final(&client, &job)
}

async fn wait(client: &Client, id: i64) -> anyhow::Result<JobInfo> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} frames {msg}",
        )
        .expect("valid template"),
    );
    let mut failures = 0;
    loop {
        match client.job(id).await {
            Ok(job) => {
                failures = 0;
                bar.set_length(job.frames.total());
                bar.set_position(job.frames.done);
                bar.set_message(format!(
                    "({} rendering) {}",
                    job.frames.rendering,
                    job.state.as_str()
                ));
                if job.state.is_final() {
                    bar.finish();
                    return Ok(job);
                }
            }
            Err(e) => {
                failures += 1;
                if failures > 30 {
                    bar.abandon();
                    return Err(e);
                }
                bar.set_message(format!("coordinator unreachable, retrying: {e}"));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn report_final(client: &Client, job: &JobInfo) -> anyhow::Result<()> {
    match job.state {
        JobState::Done => {
            println!("job {} done: {} frames", job.id, job.frames.done);
            println!(
                "  video:  {}",
                client.url(&format!("/jobs/{}/video.mp4", job.id))
            );
            println!(
                "  frames: {}",
                client.url(&format!("/jobs/{}/frames.zip", job.id))
            );
            println!(
                "  fetch everything: idlefarm fetch {} --out ./result",
                job.id
            );
            Ok(())
        }
        state => bail!(
            "job {} is {}: {}",
            job.id,
            state.as_str(),
            job.error.as_deref().unwrap_or("no reason given")
        ),
    }
}

async fn status(client: &Client, job: Option<i64>, json: bool) -> anyhow::Result<()> {
    let jobs = match job {
        Some(id) => vec![client.job(id).await?],
        None => client.jobs().await?,
    };
    let agents = match job {
        Some(_) => Vec::new(),
        None => client.agents().await?,
    };
    if json {
        let out = serde_json::json!({ "jobs": jobs, "agents": agents });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no jobs yet; submit one with `idlefarm submit scene.blend --wait`");
    }
    for j in &jobs {
        let f = &j.frames;
        let eta = j
            .eta_secs
            .map_or(String::new(), |s| format!("  eta {}", human_secs(s)));
        println!(
            "{:>4}  {:<10} {:>5}/{:<5} done  {:>3} rendering  {:>3} failed  prio {:<3} {:<10} {}{eta}",
            j.id,
            j.state.as_str(),
            f.done,
            f.total(),
            f.rendering,
            f.failed,
            j.priority,
            j.owner.as_deref().unwrap_or("-"),
            j.name
        );
        if let Some(e) = &j.error {
            println!("      error: {e}");
        }
        if job.is_some() {
            for w in &j.warnings {
                println!("      warning: {w}");
            }
        }
    }
    if job.is_none() {
        control::print_agents(&agents);
    }
    Ok(())
}

/// `95` → `1m35s`.
fn human_secs(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

async fn fetch(client: &Client, id: i64, out: &Path) -> anyhow::Result<()> {
    let job = client.job(id).await?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let frames: Vec<_> = client
        .frames(id)
        .await?
        .into_iter()
        .filter_map(|f| f.file)
        .collect();
    let bar = ProgressBar::new(frames.len() as u64 + u64::from(job.has_video));
    for file in &frames {
        client
            .download(&format!("/jobs/{id}/frames/{file}"), &out.join(file))
            .await?;
        bar.inc(1);
    }
    let video_name = format!("job-{id}.mp4");
    if job.has_video {
        client
            .download(&format!("/jobs/{id}/video.mp4"), &out.join(&video_name))
            .await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("{} frame(s) written to {}", frames.len(), out.display());
    if job.has_video {
        println!("video: {}", out.join(video_name).display());
    } else {
        println!("no video yet (job is {})", job.state.as_str());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes_and_reject_nonsense() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let err = Cli::try_parse_from(["idlefarm", "serve", "--max-upload", "huge"]).unwrap_err();
        assert!(err.to_string().contains("--max-upload"), "{err}");
        let err = Cli::try_parse_from(["idlefarm", "status", "seven"]).unwrap_err();
        assert!(err.to_string().contains("seven"), "{err}");
        assert!(
            Cli::try_parse_from(["idlefarm", "fetch", "3"]).is_err(),
            "--out is required"
        );
    }
}
