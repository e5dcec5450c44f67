//! The idlefarm agent: renders chunks of jobs on a lab PC while nobody needs it.
//!
//! [`run`] enrols with the coordinator (or reuses saved credentials), then, while its
//! [`Presence`] says the PC is available, leases work, downloads and caches the job's input,
//! runs Blender or POV-Ray politely (nice 19, `SCHED_IDLE`, idle I/O, never as root), uploads
//! each frame as soon as it exists and reports how the lease ended. A heartbeat keeps leases
//! alive and abandons revoked ones. The agent only makes outbound requests.

mod approval;
pub mod budget;
mod cache;
mod client;
pub mod config;
pub mod discover;
mod heartbeat;
mod input_name;
pub mod metrics;
pub mod notify;
mod pace;
pub mod parallel;
mod passwd;
pub mod presence;
pub mod render;
pub mod status;
mod upload;
mod work;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use idlefarm_runtime::hostname;
use tokio_util::sync::CancellationToken;

pub use client::{CREDENTIALS_FILE, Credentials};
pub use presence::{AlwaysAvailable, Availability, ManualPresence, Presence};
pub use render::RenderUser;

use client::{Client, ClientError};
use heartbeat::{MAX_BACKOFF, Status};

/// Account renderers run as when the agent runs as root and none is configured.
pub const DEFAULT_RENDER_USER: &str = "nobody";

/// How an agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    /// Base URL of the coordinator, e.g. `http://127.0.0.1:7870`; empty: the first one found
    /// on the LAN (mDNS).
    pub coordinator: String,
    /// Enrolment token.
    pub token: String,
    /// Holds the input cache, `credentials.json` and the per-lease output folders.
    pub work_dir: PathBuf,
    /// Name shown to the admin (default: the host name).
    pub name: String,
    /// Blender executable (default `blender`).
    pub blender: PathBuf,
    /// POV-Ray executable (default `povray`).
    pub povray: PathBuf,
    /// Account renderers run as; when the agent runs as root, `None` means `nobody`.
    pub render_user: Option<String>,
    /// Time between heartbeats (default 5 s).
    pub heartbeat_interval: Duration,
    /// How long a render stays stopped for a person before the lease is yielded (default 60 s).
    pub max_suspend: Duration,
    /// First wait before asking for work again after a lease that ended badly (failed, or given
    /// back for a reason that is not a person); it doubles while that goes on, up to 120 times
    /// this (default 1 s).
    pub setback_wait: Duration,
    /// Where pauses, yields and rendered frames are announced to the desktop companion.
    pub status: status::StatusHub,
    /// How much disk the input cache may use (default 10 GiB, keeping 10 % of the disk free).
    pub disk_budget: budget::DiskBudget,
    /// The HTTPS coordinator's certificate to pin; `None` pins the one seen at enrolment.
    pub fingerprint: Option<idlefarm_tls::Fingerprint>,
    /// Keep one Blender per job across its chunks instead of starting one per chunk (default
    /// on; see [`render::warm`]).
    pub warm_blender: bool,
    /// How many chunks may render at once, and in how much memory (default: up to one per
    /// core, taken only while the renderers leave a core idle).
    pub parallel: parallel::ParallelLimits,
}

impl AgentConfig {
    /// A configuration with defaults for everything but the coordinator, token and work dir.
    pub fn new(
        coordinator: impl Into<String>,
        token: impl Into<String>,
        work_dir: PathBuf,
    ) -> Self {
        AgentConfig {
            coordinator: coordinator.into(),
            token: token.into(),
            work_dir,
            name: hostname(),
            blender: PathBuf::from("blender"),
            povray: PathBuf::from("povray"),
            render_user: None,
            heartbeat_interval: Duration::from_secs(5),
            max_suspend: Duration::from_secs(60),
            setback_wait: crate::pace::FIRST_SETBACK_WAIT,
            status: status::StatusHub::new(),
            disk_budget: budget::DiskBudget::default(),
            fingerprint: None,
            warm_blender: true,
            parallel: parallel::ParallelLimits::default(),
        }
    }
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("coordinator", &self.coordinator)
            .field("token", &"<hidden>")
            .field("work_dir", &self.work_dir)
            .field("name", &self.name)
            .field("blender", &self.blender)
            .field("povray", &self.povray)
            .field("render_user", &self.render_user)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_suspend", &self.max_suspend)
            .field("setback_wait", &self.setback_wait)
            .field("disk_budget", &self.disk_budget)
            .field("fingerprint", &self.fingerprint)
            .field("warm_blender", &self.warm_blender)
            .field("parallel", &self.parallel)
            .finish()
    }
}

/// The account renders run as: `None` keeps the agent's own. Renderers never run as root. An
/// agent may switch renders to another account when it runs as root or holds `CAP_SETUID` and
/// `CAP_SETGID` (the packaged service runs as its own user with those).
fn render_user(config: &AgentConfig) -> anyhow::Result<Option<RenderUser>> {
    let privileged = idlefarm_runtime::can_switch_users();
    match (&config.render_user, privileged) {
        (Some(name), true) => Ok(Some(RenderUser::resolve(name)?)),
        (Some(name), false) => {
            let user = RenderUser::resolve(name)?;
            // SAFETY: geteuid has no preconditions.
            if user.uid != unsafe { libc::geteuid() } {
                bail!(
                    "renders can only run as `{name}` when the agent runs as root (or with \
                     CAP_SETUID and CAP_SETGID); start it so or leave out --render-user"
                );
            }
            Ok(None)
        }
        (None, true) => RenderUser::resolve(DEFAULT_RENDER_USER)
            .map(Some)
            .context("the agent may switch users (root), so renders run as `nobody`; choose another account with --render-user"),
        (None, false) => Ok(None),
    }
}

/// Creates `dir` (0755 when new) and returns its absolute path.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set permissions of {}", dir.display()))?;
    }
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Runs the agent until `shutdown` completes (or the coordinator rejects it for good).
///
/// On shutdown a running render is ended, its finished frames get a few seconds to upload, and
/// the lease is yielded.
pub async fn run(
    config: AgentConfig,
    presence: Arc<dyn Presence>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let work_dir = prepare_dir(&config.work_dir)?;
    let user = render_user(&config)?;
    if let Some(user) = &user {
        user.check_can_reach(&work_dir)?;
        tracing::info!(user = %user.name, "renders run as `{}`", user.name);
    }
    match render::confine::abi_version() {
        Some(abi) if abi >= 4 => tracing::info!("renders are confined with Landlock (ABI {abi})"),
        Some(abi) => tracing::info!(
            "renders are confined with Landlock (ABI {abi}); TCP stays open (needs ABI 4, Linux 6.7)"
        ),
        None => {} // `confine::for_render` warns at the first render.
    }
    let leases_dir = prepare_dir(&work_dir.join("leases"))?;
    // Output of leases from before a crash or restart: those leases are long gone.
    for entry in std::fs::read_dir(&leases_dir)?.flatten() {
        let _ = std::fs::remove_dir_all(entry.path());
    }
    std::fs::set_permissions(&leases_dir, std::fs::Permissions::from_mode(0o755))?;
    let cache = cache::InputCache::open(work_dir.join("cache"), config.disk_budget)
        .with_context(|| format!("cannot open the input cache in {}", work_dir.display()))?;
    let env = render::RenderEnv {
        blender: config.blender.clone(),
        povray: config.povray.clone(),
        user,
        warm: match config.warm_blender {
            true => render::warm::WarmBlenders::new(render::warm::IDLE_TIMEOUT),
            false => render::warm::WarmBlenders::default(),
        },
    };
    let warm = env.warm.clone();

    let stop = CancellationToken::new();
    let agent = async {
        let renderers = render::detect(&env).await;
        let client = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            client = connect(&config, renderers, &work_dir) => Arc::new(client?),
        };
        let status = Arc::new(Status::default());
        let mut heartbeat = tokio::spawn(heartbeat::run(
            client.clone(),
            status.clone(),
            presence.watch(),
            config.heartbeat_interval,
            config.status.clone(),
            stop.clone(),
        ));
        let worker = Arc::new(work::Worker {
            client,
            cache,
            env,
            leases_dir,
            max_suspend: config.max_suspend,
            setback_wait: config.setback_wait,
            parallel: config.parallel,
            hub: config.status.clone(),
            status,
            presence,
            shared: Default::default(),
        });
        // The heartbeat ends the agent only when the coordinator rejects it; when it stops for
        // shutdown the lease loop still has a render to end and report.
        let result = tokio::select! {
            result = worker.run(stop.clone()) => result,
            Ok(Err(err)) = &mut heartbeat => Err(anyhow::Error::new(err).context("heartbeat")),
        };
        stop.cancel();
        heartbeat.abort();
        // No Blender outlives the agent, not even an idle one.
        warm.end_all().await;
        result
    };
    tokio::pin!(agent);
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut agent => result,
        _ = &mut shutdown => {
            tracing::info!("shutting down");
            stop.cancel();
            agent.await
        }
    }
}

/// Looks for a coordinator on the LAN until one answers (an agent with no `--coordinator`),
/// saying so on the status socket meanwhile.
async fn discover_coordinator(config: &AgentConfig) -> discover::Found {
    const LOOK: Duration = Duration::from_secs(5);
    let looking = "no --coordinator: looking for one on the LAN (mDNS _idlefarm._tcp)";
    tracing::info!("{looking}");
    loop {
        config
            .status
            .set_coordinator_problem(Some(looking.to_owned()));
        match discover::find(LOOK).await {
            Ok(Some(found)) => {
                let pin = found
                    .fingerprint
                    .map(|f| format!(", certificate SHA256 {f}"))
                    .unwrap_or_default();
                let how = format!("{} (found on the LAN: {}{pin})", found.url, found.name);
                tracing::info!("coordinator {how}");
                config.status.set_coordinator(how);
                config.status.set_coordinator_problem(None);
                return found;
            }
            Ok(None) => tracing::debug!("no coordinator announced itself yet"),
            Err(e) => {
                tracing::warn!("cannot look for a coordinator on the LAN: {e}");
                tokio::time::sleep(LOOK).await;
            }
        }
    }
}

/// Connects to the coordinator, waiting (with backoff, a warning at each try and the reason on
/// the status socket) while it cannot be reached.
async fn connect(
    config: &AgentConfig,
    renderers: Vec<idlefarm_protocol::RendererInfo>,
    work_dir: &Path,
) -> anyhow::Result<Client> {
    let (coordinator, fingerprint) = match config.coordinator.is_empty() {
        false => (config.coordinator.clone(), config.fingerprint),
        true => {
            let found = discover_coordinator(config).await;
            (found.url, config.fingerprint.or(found.fingerprint))
        }
    };
    let base = client::normalize_base(&coordinator);
    tracing::info!("connecting to the coordinator at {base}");
    if !config.coordinator.is_empty() {
        config.status.set_coordinator(base.clone());
    }
    let mut delay = Duration::from_secs(1);
    loop {
        match Client::connect(
            &coordinator,
            &config.token,
            &config.name,
            renderers.clone(),
            work_dir,
            fingerprint,
            config.status.clone(),
        )
        .await
        {
            Ok(client) => {
                config.status.set_coordinator_problem(None);
                return Ok(client);
            }
            Err(err) if err.is_transient() => {
                let problem = client::trouble_reaching(&base, &err, delay);
                tracing::warn!("cannot enrol: {problem}");
                config.status.set_coordinator_problem(Some(problem));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(err @ ClientError::Unauthorized) => {
                return Err(err).context(format!("enrolling with {}", config.coordinator));
            }
            Err(err) => return Err(err).context(format!("enrolling with {}", config.coordinator)),
        }
    }
}
