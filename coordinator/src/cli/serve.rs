//! `idlefarm serve` and `idlefarm up`: a coordinator (and, for `up`, a local agent process),
//! the first-run admin and the printed banner.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::default_data_dir;
use super::local_agent::{self, LocalAgent};
use crate::schedule::HealthPolicy;
use crate::server::{self, Coordinator, ServerConfig};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on. `serve` listens on all interfaces so lab PCs can reach it.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (database, inputs, frames, videos).
    #[arg(long, env = "IDLEFARM_DATA")]
    data: Option<PathBuf>,
    /// Largest accepted upload, e.g. `500M`, `4G`.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    max_upload: u64,
    /// Most a submitted zip project may unpack to, e.g. `2G`; each lab PC that renders it
    /// needs this much disk.
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    max_unpacked: u64,
    /// How long a lease lives without a heartbeat from its agent, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = idlefarm_runtime::parse_duration)]
    lease_ttl: Duration,
    /// How long an agent that failed on several jobs stays quarantined, e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = idlefarm_runtime::parse_duration)]
    forgive: Duration,
    /// How long an automatically sized chunk should take on a PC without presence history,
    /// e.g. `2m`; with history, from a quarter to 15 times this, after how long it usually
    /// stays free.
    #[arg(long, default_value = "2m", value_parser = idlefarm_runtime::parse_duration)]
    chunk_target: Duration,
    /// Share of frames rendered on two PCs and compared, e.g. `5%`; a PC whose frames other
    /// PCs outvote is quarantined. Suspicious frames (a single colour among varied neighbours,
    /// a size far off, a renderer error) are always checked this way, whatever this says.
    #[arg(long, default_value = "0%", value_parser = parse_percent)]
    verify: f64,
    /// Serve HTTPS with a self-signed certificate, made on first start in DATA/tls/ and kept;
    /// agents pin its fingerprint when they enrol.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls: bool,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Do not announce the coordinator on the LAN (mDNS `_idlefarm._tcp`), so agents must be
    /// given --coordinator. It is never announced while listening on loopback only.
    #[arg(long)]
    no_announce: bool,
}

pub use idlefarm_runtime::parse_size;

/// `5%`, `0.5%` or `5` (percent) → 5.0; 0 to 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let number = s.trim().strip_suffix('%').unwrap_or(s.trim());
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentage from 0% to 100% (e.g. 5%)"
        )),
    }
}

/// Raises this process's open-files limit to its hard limit (systemd's default is 1024, hard
/// 524288) and returns the limit in force: every enrolled PC keeps up to two connections open
/// (a long-polled lease request and a heartbeat), so a campus needs tens of thousands.
fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the calls to fill and read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    limit.rlim_cur
}

/// Runs a coordinator until Ctrl-C or SIGTERM; `with_agent` (`up`) also runs a local agent.
pub(super) async fn serve(args: ServeArgs, with_agent: bool) -> anyhow::Result<()> {
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
        max_unpacked_bytes: args.max_unpacked,
        lease_ttl: args.lease_ttl,
        chunk_target: args.chunk_target,
        verify_percent: args.verify,
        health: HealthPolicy {
            forgive_ms: args.forgive.as_millis() as i64,
            ..HealthPolicy::default()
        },
        ..ServerConfig::new(data.clone())
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::from_files(cert, key)?),
        _ if args.tls => Some(server::tls::self_signed(&data, certificate_names(listen))?),
        _ => None,
    };
    let config = ServerConfig {
        tls_fingerprint: tls.as_ref().map(|t| t.fingerprint.to_string()),
        ..config
    };
    // So the first submission does not wait for Blender to start.
    config.blend_inspector.keep_ready(&config.blender);
    let coord = Coordinator::open(config).await?;
    let open_files = raise_open_files();
    tracing::info!(open_files, "open files limit");
    let listener = bind(listen)
        .with_context(|| format!("cannot listen on {listen} (is another idlefarm running?)"))?;
    let addr = listener.local_addr()?;
    let (token, created) = coord.enrolment_token().await?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}", addr.port());
    println!("idlefarm coordinator running");
    println!("  dashboard:        {url}/");
    println!("  data directory:   {}", data.display());
    let pin = match &tls {
        Some(tls) => {
            let made = if tls.self_signed { "self-signed, " } else { "" };
            println!(
                "  certificate:      SHA256 {} ({made}{})",
                tls.fingerprint,
                tls.cert_path.display()
            );
            format!(" --fingerprint {}", tls.fingerprint)
        }
        None => String::new(),
    };
    if created {
        println!("  enrolment token:  {token}   (new; `idlefarm token` prints it again)");
    } else {
        println!("  enrolment token:  {token}");
    }
    println!(
        "  add a lab PC:     idlefarm-agent --coordinator {scheme}://<this-pc>:{} --token {token}{pin}",
        addr.port()
    );
    println!("  submit a job:     idlefarm submit scene.blend --wait");
    // Kept for as long as the server runs; dropping it withdraws the announcement.
    let _announcement = match args.no_announce || addr.ip().is_loopback() {
        true => None,
        false => match crate::announce::start(addr.port(), coord.config.tls_fingerprint.as_deref())
        {
            Ok(a) => {
                println!(
                    "  on the LAN:       announced as \"{}\" (agents without --coordinator find it)",
                    a.name
                );
                Some(a)
            }
            Err(e) => {
                println!("  on the LAN:       not announced ({e}); agents need --coordinator");
                None
            }
        },
    };
    for line in first_run_notice(&coord.store, &url).await? {
        println!("{line}");
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
    let server =
        match tls {
            Some(tls) => tokio::spawn(async move {
                server::run_tls(listener, &tls, coord.clone(), shutdown).await
            }),
            None => tokio::spawn(server::run(listener, coord.clone(), shutdown)),
        };
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

/// The names a self-signed certificate is made for: this host's name, `localhost`, the
/// loopback addresses and the listening address when it is a specific one.
fn certificate_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec![
        idlefarm_runtime::hostname(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.retain(|n| !n.is_empty());
    names.dedup();
    names
}

/// On a farm's first start, creates the admin and a setup link and returns the banner lines that
/// show them once (the link on a line of its own, `open URL to …`); nothing on later starts.
pub async fn first_run_notice(
    store: &crate::store::Store,
    url: &str,
) -> Result<Vec<String>, crate::accounts::AccountError> {
    let Some(first) = crate::accounts::first_run(store).await? else {
        return Ok(Vec::new());
    };
    let name = &first.name;
    Ok(vec![
        format!(
            "  admin login:      {name} / {}  (shown once; `idlefarm user passwd {name}` changes it)",
            first.password
        ),
        format!(
            "  first-run setup:  {}",
            setup_link_line(url, &first.setup.key, "the admin password")
        ),
    ])
}

/// `open URL to choose WHAT (works once, for 24 h)` for a setup key, as serve and
/// `user setup-link` print it.
pub(super) fn setup_link_line(url: &str, key: &str, what: &str) -> String {
    let link = format!(
        "{}{}",
        url.trim_end_matches('/'),
        idlefarm_protocol::accounts::setup_page_path(key)
    );
    format!("open {link} to choose {what} (works once, for 24 h)")
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

/// Connections the kernel may queue before they are accepted: a campus of PCs reconnecting at
/// once (the coordinator restarted) overflows the usual 1024 (the kernel caps it at
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with [`LISTEN_BACKLOG`].
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let raised = super::raise_open_files();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid rlimit for the call to fill.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(raised, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
