//! Benchmark: the coordinator at campus scale. The real `idlefarm serve` binary runs as its own
//! process on 127.0.0.1 with a fresh data directory; this process enrols AGENTS simulated lab
//! PCs through the real enrolment (token → register route), then each heartbeats every 5 s,
//! long-polls for leases while its PC is free, "renders" and uploads a real ~1 MB PNG per frame
//! (paced to a steady rate over the campus) and ends its leases (see `campus/agent.rs`). POV-Ray
//! jobs are submitted through the API during the run and finish in it. After a warm-up, SECS
//! seconds are measured: requests/s and p50/p90/p99/max per route, errors by kind, the
//! coordinator's RSS and CPU and the generator's own CPU from `/proc`. Asserts nothing; stops
//! by itself.
//!
//! `cargo bench -p idlefarm-coordinator --bench campus_load [-- AGENTS SECS [pin]]` (default
//! 10000 agents, 90 s). `pin` runs the coordinator on CPU 0 and the generator on CPU 1, so
//! neither takes the other's core; without it both share the machine and the report says how
//! much each used. `IDLEFARM_BIN=path` measures another build of the coordinator.

#[path = "campus/agent.rs"]
mod agent;
#[path = "campus/proc.rs"]
mod proc;
#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;
#[path = "support/served_farm.rs"]
mod served_farm;
#[path = "campus/stats.rs"]
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{
    JobState, RegisterRequest, RegisterResponse, Renderer, RendererInfo, routes,
};

use agent::{Agent, Campus};

/// The jobs' frame size: noise of this size makes a PNG of about 1 MB.
const W: u32 = 600;
const H: u32 = 600;
/// Frames of each submitted job.
const JOB_FRAMES: i64 = 120;
/// A job is submitted this often during the window.
const JOB_EVERY: Duration = Duration::from_secs(15);
/// Frame uploads per second over the whole campus, at most.
const UPLOADS_PER_SEC: f64 = 10.0;
/// Time after the last agent started before the window opens.
const WARM_UP: Duration = Duration::from_secs(10);
/// Enrolments in flight at once during the ramp-up.
const ENROLMENT_CONCURRENCY: usize = 100;

fn main() -> anyhow::Result<()> {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let agents = numbers.first().copied().unwrap_or(10_000) as usize;
    let secs = numbers.get(1).copied().unwrap_or(90);
    let pin = std::env::args().any(|a| a == "pin");
    let open_files = proc::raise_open_files();
    if pin {
        proc::pin_to(1)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(agents, Duration::from_secs(secs), pin, open_files))
}

async fn run(agents: usize, window: Duration, pin: bool, open_files: u64) -> anyhow::Result<()> {
    // Another build of the coordinator (e.g. before a change) can be measured with the same load.
    let binary =
        std::env::var("IDLEFARM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_idlefarm").to_owned());
    let command = match pin {
        true => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", "0", &binary]);
            c
        }
        false => tokio::process::Command::new(&binary),
    };
    let served_farm::ServedFarm {
        dir,
        url,
        token,
        client,
        mut server,
        pid,
    } = served_farm::start("idlefarm-campus-", command).await?;
    let http = reqwest::Client::builder()
        // Long polls (one per free PC) plus this many idle connections stay within both
        // processes' open-files limits (20,000 here); a burst beyond it is closed after use.
        .pool_max_idle_per_host(4_000)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(30))
        .build()?;
    let pov = dir.path().join("campus.pov");
    let ini = dir.path().join("campus.ini");
    std::fs::write(&pov, scenes::pov_scene(None))?;
    std::fs::write(&ini, scenes::pov_ini(1, JOB_FRAMES, W, H))?;
    let opts = SubmitOptions {
        ini: Some(ini),
        ..SubmitOptions::default()
    };
    let png = noisy_png(W, H);
    let mut pacer = tokio::time::interval(Duration::from_secs_f64(1.0 / UPLOADS_PER_SEC));
    pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    println!(
        "idlefarm campus load: {agents} agents over HTTP on 127.0.0.1, heartbeats every {:?}, \
         long-polled leases, {:.1} MB PNG frames ({W}x{H}) at most {UPLOADS_PER_SEC}/s, a job of \
         {JOB_FRAMES} frames every {JOB_EVERY:?}; open files limit {open_files}; {}",
        agent::HEARTBEAT,
        png.len() as f64 / 1e6,
        match pin {
            true => "coordinator pinned to CPU 0, generator to CPU 1",
            false => "coordinator and generator share the machine's cores",
        }
    );
    println!(
        "  one shared HTTP client with keep-alive for all agents (a connection per request in \
         flight, reused)"
    );
    let campus = Arc::new(Campus {
        http,
        url: url.clone(),
        stats: stats::Stats::default(),
        png: png.into(),
        pacer: tokio::sync::Mutex::new(pacer),
        render_ms: (2_000, 6_000),
        people: (0.002, 0.02),
        t0: Instant::now(),
        work_at_ms: AtomicU64::new(0),
        stop: tokio_util::sync::CancellationToken::new(),
        leases: AtomicU64::new(0),
    });

    let ramp = Instant::now();
    let enrolled = enrol(&campus, &token, agents).await;
    println!(
        "  ramp-up: {} of {agents} agents enrolled in {:.1?}",
        enrolled.len(),
        ramp.elapsed()
    );
    let mut tasks = Vec::with_capacity(enrolled.len());
    for agent in enrolled {
        tasks.push(tokio::spawn(agent::run(campus.clone(), Arc::new(agent))));
    }
    tokio::time::sleep(agent::HEARTBEAT + WARM_UP).await;

    campus.stats.record(true);
    let mut sampler = proc::Sampler::start(pid);
    let opened = Instant::now();
    let mut jobs = Vec::new();
    let mut next_job = opened;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The last job goes in early enough to finish inside the window.
    let last_submission = window.saturating_sub(JOB_EVERY + Duration::from_secs(10));
    while opened.elapsed() < window {
        tick.tick().await;
        sampler.tick();
        if Instant::now() >= next_job && (jobs.is_empty() || opened.elapsed() <= last_submission) {
            next_job += JOB_EVERY;
            // In its own task, so a slow submission does not hold up the samples.
            let (campus, client, pov, opts) =
                (campus.clone(), client.clone(), pov.clone(), opts.clone());
            jobs.push(tokio::spawn(async move {
                let submitted = Instant::now();
                // Work appears somewhere inside the submission; leases may be answered before
                // its own answer arrives, so their wait is counted from when it was sent.
                campus.work_appeared();
                match client.submit(&pov, &opts).await {
                    Ok(job) => {
                        let took = submitted.elapsed();
                        campus.stats.sample("job submission", took, false);
                        Some(job.id)
                    }
                    Err(e) => {
                        campus.stats.error("job submission", &format!("{e:#}"));
                        None
                    }
                }
            }));
        }
    }
    campus.stats.record(false);
    let measured = opened.elapsed();
    println!();
    println!("measured window: {measured:.1?}");
    campus.stats.print(measured);
    sampler.print();
    let mut done = 0;
    let submitted = jobs.len();
    for job in jobs {
        let Ok(Some(id)) = job.await else { continue };
        if client
            .job(id)
            .await
            .is_ok_and(|j| j.state == JobState::Done)
        {
            done += 1;
        }
    }
    println!(
        "  jobs: {submitted} submitted, {done} done by the end of the window; {} leases handed out",
        campus.leases.load(Ordering::Relaxed)
    );
    campus.stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    server.kill().await?;
    Ok(())
}

/// Enrols `count` agents with `token`, as `idlefarm-agent` does (its register route); records
/// each enrolment's latency.
async fn enrol(campus: &Campus, token: &str, count: usize) -> Vec<Agent> {
    let url = format!("{}{}", campus.url, routes::AGENT_REGISTER);
    let one = |n: usize| {
        let request = RegisterRequest {
            token: token.to_owned(),
            name: format!("lab-pc-{n:05}"),
            renderers: vec![RendererInfo {
                renderer: Renderer::Povray,
                version: "3.7".into(),
            }],
        };
        let url = url.clone();
        async move {
            let started = Instant::now();
            let answer = campus
                .http
                .post(&url)
                .json(&request)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            let registered: reqwest::Result<RegisterResponse> = match answer {
                Ok(response) => response.json().await,
                Err(e) => Err(e),
            };
            match registered {
                Ok(r) => {
                    campus
                        .stats
                        .sample("register (ramp-up)", started.elapsed(), true);
                    Some(Agent::new(r.agent_id, &r.secret))
                }
                Err(e) => {
                    campus.stats.error("register", &stats::error_kind(&e));
                    None
                }
            }
        }
    };
    futures::stream::iter(0..count)
        .map(one)
        .buffer_unordered(ENROLMENT_CONCURRENCY)
        .filter_map(|a| async move { a })
        .collect()
        .await
}

/// A PNG of `w`×`h` noise: about as large as a real render's (noise does not compress).
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut seed: u32 = 0x2545_F491;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [a, b, _, _] = seed.to_le_bytes();
        image::Rgb([a, b, (x ^ y) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    let _ = img.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}
