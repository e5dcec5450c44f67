//! Benchmark: the farm on one PC against the plain renderer, side by side in one run, for a
//! small Eevee animation, a Cycles scene and a POV-Ray animation. Prints plain seconds, farm
//! seconds (submit → every frame stored) and their ratio per pair, and where the time goes
//! (plain: until the first frame is written; farm: until the submission is accepted, which
//! includes the coordinator's inspection, and until the first frame is stored); asserts nothing.
//! With `RUST_LOG` set (e.g. `RUST_LOG=idlefarm_agent=debug`) the farm's log goes to stderr,
//! timed from the start.
//!
//! `cargo bench -p idlefarm-coordinator --bench one_pc [-- SCALE] [NAME…]`: SCALE (default 1)
//! scales every scene's frame count; at 1 each plain render takes about 20–60 s on a quiet
//! 2-core PC. NAMEs (e.g. `cycles`) run only the scenes whose name holds one of them.
//! The farm is a coordinator and one in-process agent with their defaults (parallel chunks up
//! to one per core, the coordinator's own chunk sizes, a spare Blender for inspections). Renders through the farm run at the
//! lowest priority (nice 19, `SCHED_IDLE`), the plain ones at normal priority: on a machine
//! busy with other work the farm's ratios mean nothing, so run it on a quiet one.

#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_coordinator::client::{Client, SubmitOptions};
use idlefarm_coordinator::server::{self, Coordinator, ServerConfig};
use idlefarm_coordinator::submit::BlendInspector;

/// One scene and how to render it plainly.
struct Pair {
    name: String,
    scene: PathBuf,
    frames: u32,
    options: SubmitOptions,
    plain: Plain,
}

/// The plain renderer's command for a scene.
enum Plain {
    /// `blender -b FILE -a`, with the flags the agent uses for safety.
    Blender(PathBuf),
    /// `povray INI +IPOV`.
    Povray { ini: PathBuf, pov: PathBuf },
}

impl Plain {
    /// The command writing its frames into `out`.
    fn command(&self, out: &Path) -> Command {
        match self {
            Plain::Blender(blend) => {
                let mut command = Command::new("blender");
                command
                    .args(["-b", "--factory-startup", "--disable-autoexec"])
                    .arg(blend)
                    .arg("-o")
                    .arg(out.join("frame_#####"))
                    .args(["-F", "PNG", "-x", "1", "-a"]);
                command
            }
            Plain::Povray { ini, pov } => {
                let mut command = Command::new("povray");
                command
                    .arg(ini)
                    .arg(format!("+I{}", pov.display()))
                    .arg(format!("+O{}", out.join("frame.png").display()))
                    .arg("-D");
                command
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scale: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1.0);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .init();
    }
    let only: Vec<String> = (std::env::args().skip(1))
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .map(|a| a.to_lowercase())
        .collect();
    let frames = |n: f64| ((n * scale).round() as u32).max(8);
    let dir = tempfile::Builder::new()
        .prefix("idlefarm-bench-")
        .tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let pairs = [
        eevee(dir.path(), frames(400.0)),
        cycles(dir.path(), frames(48.0)),
        povray(dir.path(), frames(150.0))?,
    ];

    // The farm: a coordinator and one in-process agent with its defaults.
    let config = ServerConfig::new(dir.path().join("data"));
    // As `idlefarm serve` does: a spare Blender waits for the first .blend to inspect.
    config.blend_inspector.keep_ready(&config.blender);
    let inspector = config.blend_inspector.clone();
    let coord = Coordinator::open(config).await?;
    let token = coord.enrolment_token().await?.0;
    let (admin, password) = idlefarm_coordinator::accounts::first_run_admin(coord.store())
        .await?
        .ok_or_else(|| anyhow::anyhow!("a fresh data directory has no users"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(server::run(listener, coord, std::future::pending()));
    let mut config = idlefarm_agent::AgentConfig::new(url.clone(), token, dir.path().join("agent"));
    config.heartbeat_interval = Duration::from_secs(2);
    // The bench machine's disk may be fuller than the 10 % a lab PC keeps free.
    config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
    let max_parallel = config.parallel.max_parallel;
    tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(idlefarm_agent::AlwaysAvailable),
        std::future::pending(),
    ));
    let client = Client::new(&url).login(&admin, &password, "bench").await?;

    // What the coordinator and agent cost while they wait: heartbeats, long polls, timers.
    let (t, cpu) = (Instant::now(), own_cpu());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (own_cpu() - cpu).as_secs_f64() / t.elapsed().as_secs_f64();
    println!(
        "one PC ({} cores, agent max_parallel {max_parallel}): the farm against the plain renderer",
        idlefarm_agent::parallel::cores()
    );
    println!(
        "  the farm waiting for work uses {:.1} ms of CPU per second",
        idle_cpu * 1000.0
    );
    println!(
        "  {:<26} {:>7} {:>7} {:>6}   {:>7} {:>8} {:>7} {:>8}",
        "scene", "plain s", "farm s", "ratio", "plain 1", "accepted", "farm 1", "farm cpu"
    );
    for (i, pair) in pairs.iter().enumerate() {
        let name = pair.name.to_lowercase();
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let out = dir.path().join(format!("plain-{i}"));
        std::fs::create_dir_all(&out)?;
        let plain = plain(pair, &out)?;
        let farm = farm(&client, pair).await?;
        settle(&client, &inspector).await?;
        println!(
            "  {:<26} {:>7.1} {:>7.1} {:>6.2}   {:>7.2} {:>8.2} {:>7.2} {:>8.2}   ({} frames)",
            pair.name,
            plain.all.as_secs_f64(),
            farm.all.as_secs_f64(),
            farm.all.as_secs_f64() / plain.all.as_secs_f64(),
            plain.first.as_secs_f64(),
            farm.accepted.as_secs_f64(),
            farm.first.as_secs_f64(),
            farm.cpu.as_secs_f64(),
            pair.frames,
        );
    }
    println!("  farm s: submit (with inspection) → every frame stored; the video is not counted");
    println!("  plain 1: until the first frame is written; accepted: until the submission is");
    println!("  accepted (upload and inspection); farm 1: until the first frame is stored;");
    println!("  farm cpu: CPU time of the coordinator and agent themselves (not the renderers)");
    Ok(())
}

/// When a render's frames were there, from its start.
struct Times {
    /// The submission accepted (the farm only).
    accepted: Duration,
    /// The first frame written (plain) or stored (farm).
    first: Duration,
    /// Every frame.
    all: Duration,
    /// CPU time of this process (the coordinator and the agent, not the renderers) meanwhile.
    cpu: Duration,
}

/// CPU time this process used so far (children not included).
fn own_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// How often the benchmark asks for the job's progress until its first frame is stored.
/// Asking costs the coordinator CPU the renderer would use, so after that it asks about eight
/// times over the time the frames left should take at the pace so far, at most every
/// [`POLL_MIDDLE`] and at least every [`POLL_AT_END`].
const POLL_START: Duration = Duration::from_millis(100);
/// The longest wait for the farm to settle between scenes.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// The longest wait between two questions once frames arrive.
const POLL_MIDDLE: Duration = Duration::from_millis(500);
/// The shortest (and how often the plain renderer's folder is looked at).
const POLL_AT_END: Duration = Duration::from_millis(20);

/// Renders `pair` plainly into `out`.
fn plain(pair: &Pair, out: &Path) -> anyhow::Result<Times> {
    let log = std::fs::File::create(out.join("renderer.log"))?;
    let t = Instant::now();
    let mut child = pair
        .plain
        .command(out)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut first = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // Any file beside the log is a frame.
        if first.is_none() && std::fs::read_dir(out)?.count() > 1 {
            first = Some(t.elapsed());
        }
        std::thread::sleep(POLL_AT_END);
    };
    let all = t.elapsed();
    anyhow::ensure!(
        status.success(),
        "plain {} failed: {}",
        pair.name,
        std::fs::read_to_string(out.join("renderer.log")).unwrap_or_default()
    );
    Ok(Times {
        accepted: Duration::ZERO,
        first: first.unwrap_or(all),
        all,
        cpu: Duration::ZERO,
    })
}

/// Waits until the farm's work after the frames (the video, the next spare Blender for
/// inspections) is over, so it does not slow the next plain render down.
async fn settle(client: &Client, inspector: &BlendInspector) -> anyhow::Result<()> {
    let t = Instant::now();
    while t.elapsed() < SETTLE_LIMIT {
        let busy = client.jobs().await?.iter().any(|j| !j.state.is_final());
        if !busy && inspector.spare_pid().is_some() {
            break;
        }
        tokio::time::sleep(POLL_START).await;
    }
    // A spare just started is still loading Blender.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Submits `pair` and waits until every frame is stored; times from submission.
async fn farm(client: &Client, pair: &Pair) -> anyhow::Result<Times> {
    let t = Instant::now();
    let cpu = own_cpu();
    let job = client.submit(&pair.scene, &pair.options).await?;
    let accepted = t.elapsed();
    let mut first = None;
    loop {
        let j = client.job(job.id).await?;
        if first.is_none() && j.frames.done > 0 {
            first = Some(t.elapsed());
        }
        if j.frames.done == j.frames.total() {
            let all = t.elapsed();
            return Ok(Times {
                accepted,
                first: first.unwrap_or(all),
                all,
                cpu: own_cpu() - cpu,
            });
        }
        anyhow::ensure!(
            !j.state.is_final(),
            "farm job {} ended {:?}: {:?}",
            pair.name,
            j.state,
            j.error
        );
        let left = j.frames.total() - j.frames.done;
        let poll = match first {
            None => POLL_START,
            Some(_) => {
                let pace = t.elapsed().as_secs_f64() / j.frames.done.max(1) as f64;
                Duration::from_secs_f64(pace * left as f64 / 8.0).clamp(POLL_AT_END, POLL_MIDDLE)
            }
        };
        tokio::time::sleep(poll).await;
    }
}

fn eevee(dir: &Path, frames: u32) -> Pair {
    let scene = scenes::make_eevee_blend(dir, "eevee.blend", frames, 64, 64, 64);
    Pair {
        name: "Eevee 64×64, 64 samples".into(),
        plain: Plain::Blender(scene.clone()),
        scene,
        frames,
        options: SubmitOptions::default(),
    }
}

fn cycles(dir: &Path, frames: u32) -> Pair {
    let scene = scenes::make_blend_with_samples(dir, "cycles.blend", frames, 320, 180, 64);
    Pair {
        name: "Cycles 320×180, 64 samples".into(),
        plain: Plain::Blender(scene.clone()),
        scene,
        frames,
        options: SubmitOptions::default(),
    }
}

fn povray(dir: &Path, frames: u32) -> anyhow::Result<Pair> {
    let pov = dir.join("ball.pov");
    let ini = dir.join("ball.ini");
    std::fs::write(&pov, scenes::pov_scene(None))?;
    std::fs::write(&ini, scenes::pov_ini(1, i64::from(frames), 64, 48))?;
    Ok(Pair {
        name: "POV-Ray 64×48".into(),
        plain: Plain::Povray {
            ini: ini.clone(),
            pov: pov.clone(),
        },
        scene: pov,
        frames,
        options: SubmitOptions {
            ini: Some(ini),
            ..SubmitOptions::default()
        },
    })
}
