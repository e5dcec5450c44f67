//! Benchmark: the farm on one PC against the plain renderer, side by side in one run, for a
//! small Eevee animation, a Cycles scene and a POV-Ray animation. Prints plain seconds, farm
//! seconds (submit → every frame stored) and their ratio per pair; asserts nothing.
//!
//! `cargo bench -p idlefarm-coordinator --bench one_pc [-- SCALE]`: SCALE (default 1) scales
//! every scene's frame count; at 1 each plain render takes about 30–60 s on a quiet 2-core PC.
//! The farm is a coordinator and one in-process agent with its defaults (parallel chunks up
//! to one per core, the coordinator's own chunk sizes). Renders through the farm run at the
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
    let coord = Coordinator::open(ServerConfig::new(dir.path().join("data"))).await?;
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

    println!(
        "one PC ({} cores, agent max_parallel {max_parallel}): the farm against the plain renderer",
        idlefarm_agent::parallel::cores()
    );
    println!(
        "  {:<26} {:>7} {:>7} {:>6}",
        "scene", "plain s", "farm s", "ratio"
    );
    for (i, pair) in pairs.iter().enumerate() {
        let out = dir.path().join(format!("plain-{i}"));
        std::fs::create_dir_all(&out)?;
        let log = std::fs::File::create(out.join("renderer.log"))?;
        let t = Instant::now();
        let status = pair
            .plain
            .command(&out)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "plain {} failed: {}",
            pair.name,
            std::fs::read_to_string(out.join("renderer.log")).unwrap_or_default()
        );
        let plain = t.elapsed().as_secs_f64();
        let farm = farm(&client, pair).await?.as_secs_f64();
        println!(
            "  {:<26} {plain:>7.1} {farm:>7.1} {:>6.2}   ({} frames)",
            pair.name,
            farm / plain,
            pair.frames,
        );
    }
    println!("  farm s: submit (with inspection) → every frame stored; the video is not counted");
    Ok(())
}

/// Submits `pair` and waits until every frame is stored; returns the time from submission.
async fn farm(client: &Client, pair: &Pair) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let job = client.submit(&pair.scene, &pair.options).await?;
    loop {
        let j = client.job(job.id).await?;
        if j.frames.done == j.frames.total() {
            return Ok(t.elapsed());
        }
        anyhow::ensure!(
            !j.state.is_final(),
            "farm job {} ended {:?}: {:?}",
            pair.name,
            j.state,
            j.error
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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
