//! Benchmark: a Blender job through the farm with one local agent, against plain
//! `blender -b FILE -a` on the same machine. Prints a report; asserts nothing.
//!
//! `cargo bench -p idlefarm-coordinator --bench farm_vs_blender [-- FRAMES WIDTH HEIGHT SAMPLES]`
//! (default 48 frames at 64×36 with 2 samples, the end-to-end test's scene size).

#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_coordinator::client::{Client, SubmitOptions};
use idlefarm_coordinator::server::{self, Coordinator, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let numbers: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, default: u32| numbers.get(i).copied().unwrap_or(default);
    let (frames, w, h, samples) = (arg(0, 48), arg(1, 64), arg(2, 36), arg(3, 2));
    let dir = tempfile::Builder::new()
        .prefix("idlefarm-bench-")
        .tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let blend = scenes::make_blend_with_samples(dir.path(), "bench.blend", frames, w, h, samples);

    // Plain Blender, same flags the agent uses for safety.
    let out = dir.path().join("plain");
    let t = Instant::now();
    let status = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--disable-autoexec"])
        .arg(&blend)
        .arg("-o")
        .arg(out.join("frame_#####"))
        .args(["-F", "PNG", "-x", "1", "-a"])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "plain blender failed");
    let plain = t.elapsed();

    // The farm: coordinator + one in-process agent.
    let coord = Coordinator::open(ServerConfig::new(dir.path().join("data"))).await?;
    let token = coord.enrolment_token().await?.0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(server::run(listener, coord, std::future::pending()));
    let mut config = idlefarm_agent::AgentConfig::new(url.clone(), token, dir.path().join("agent"));
    config.heartbeat_interval = Duration::from_secs(2);
    // The test machine's disk may be fuller than the 10 % a lab PC keeps free; the disk
    // budget has tests of its own.
    config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
    tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(idlefarm_agent::AlwaysAvailable),
        std::future::pending(),
    ));
    let client = Client::new(&url);
    let t = Instant::now();
    let job = client.submit(&blend, &SubmitOptions::default()).await?;
    let submitted = t.elapsed();
    let mut rendered = None;
    let job = loop {
        let j = client.job(job.id).await?;
        if rendered.is_none() && j.frames.done == j.frames.total() {
            rendered = Some(t.elapsed());
        }
        if j.state.is_final() {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total = t.elapsed();
    anyhow::ensure!(
        job.frames.done == u64::from(frames),
        "farm job ended {:?}: {:?}",
        job.state,
        job.error
    );
    let rendered = rendered.unwrap_or(total);

    println!(
        "farm vs plain blender, {frames} frames at {w}x{h} (Cycles, {samples} samples), one local agent"
    );
    println!(
        "  plain `blender -b -a`:          {:>7.2} s",
        plain.as_secs_f64()
    );
    println!(
        "  farm, submit (incl. inspection): {:>7.2} s",
        submitted.as_secs_f64()
    );
    println!(
        "  farm, submit → all frames:       {:>7.2} s  ({:.2}× plain)",
        rendered.as_secs_f64(),
        rendered.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "  farm, submit → video assembled:  {:>7.2} s  ({:.2}× plain)",
        total.as_secs_f64(),
        total.as_secs_f64() / plain.as_secs_f64()
    );
    Ok(())
}
