//! Benchmark: what a warm Blender saves per chunk. The frames of an animation are rendered
//! in chunks through the render module, once starting Blender for every chunk (cold) and once
//! on one warm Blender, with plain `blender -b FILE -a` over all frames for reference. Prints
//! per-chunk times (p50, p90, max) and the saving; asserts nothing.
//!
//! `cargo bench -p idlefarm-agent --bench warm_blender [-- FRAMES CHUNK WIDTH HEIGHT SAMPLES]`
//! (default: the tests' tiny scene, 12 frames of 32×18, the coordinator bench's scene, 48
//! frames of 64×36, and the same in Eevee, 16 frames of 64×64; in chunks of 4 frames with 2
//! samples; a custom scene is Cycles).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use idlefarm_agent::Availability;
use idlefarm_agent::render::warm::WarmBlenders;
use idlefarm_agent::render::{self, RenderControl, RenderEnv, RenderJob, RenderOutcome};
use idlefarm_protocol::{ImageFormat, RenderSettings, Renderer};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// One scene to measure.
struct Scene {
    name: &'static str,
    /// `CYCLES` or `BLENDER_EEVEE`.
    engine: &'static str,
    frames: i64,
    chunk: usize,
    width: u32,
    height: u32,
    samples: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let numbers: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let scenes = match numbers.as_slice() {
        [frames, chunk, width, height, samples, ..] => vec![Scene {
            name: "custom",
            engine: "CYCLES",
            frames: i64::from(*frames),
            chunk: *chunk as usize,
            width: *width,
            height: *height,
            samples: *samples,
        }],
        _ => vec![
            Scene {
                name: "tiny (tests)",
                engine: "CYCLES",
                frames: 12,
                chunk: 4,
                width: 32,
                height: 18,
                samples: 2,
            },
            Scene {
                name: "cycles 64x36 (the end-to-end scene)",
                engine: "CYCLES",
                frames: 48,
                chunk: 4,
                width: 64,
                height: 36,
                samples: 2,
            },
            Scene {
                name: "eevee 64x64",
                engine: "BLENDER_EEVEE",
                frames: 16,
                chunk: 4,
                width: 64,
                height: 64,
                samples: 2,
            },
        ],
    };
    println!(
        "warm Blender: seconds per chunk (the machine may be busy; chunks run at SCHED_IDLE, plain \
         `blender` at normal priority: compare cold with warm)"
    );
    println!(
        "{:<16} {:>6} {:>5} | {:>21} | {:>21} | {:>8} | {:>7} {:>7} {:>7}",
        "scene",
        "frames",
        "chunk",
        "cold p50/p90/max",
        "warm p50/p90/max",
        "saved/ch",
        "cold",
        "warm",
        "plain"
    );
    for scene in &scenes {
        measure(scene).await?;
    }
    println!(
        "warm: chunks after the first (which starts the Blender); saved/ch: cold p50 - warm p50; \
         cold, warm, plain: whole animation in s (plain: one `blender -b -a`)"
    );
    Ok(())
}

async fn measure(scene: &Scene) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("idlefarm-warm-bench-")
        .tempdir()?;
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input)?;
    let blend = input.join("bench.blend");
    make_blend(&blend, scene)?;

    let t = Instant::now();
    let status = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--disable-autoexec"])
        .arg(&blend)
        .arg("-o")
        .arg(dir.path().join("plain/frame_#####"))
        .args(["-F", "PNG", "-x", "1", "-a"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    ensure!(status.success(), "plain blender failed");
    let plain = t.elapsed();

    let user = idlefarm_runtime::is_root()
        .then(|| render::RenderUser::resolve("nobody"))
        .transpose()?;
    let cold_env = RenderEnv {
        blender: "blender".into(),
        povray: "povray".into(),
        user,
        warm: WarmBlenders::default(),
    };
    let warm_env = RenderEnv {
        warm: WarmBlenders::new(Duration::from_secs(600)),
        ..cold_env.clone()
    };
    let frames: Vec<i64> = (1..=scene.frames).collect();
    let (cold, cold_total) = chunks(scene, &frames, &input, dir.path(), &cold_env, "cold").await?;
    let (warm, warm_total) = chunks(scene, &frames, &input, dir.path(), &warm_env, "warm").await?;
    warm_env.warm.end_all().await;
    let warm_steady = &warm[1.min(warm.len())..];
    let (c, w) = (stats(&cold), stats(warm_steady));
    println!(
        "{:<16} {:>6} {:>5} | {:>6.2} {:>6.2} {:>6.2}   | {:>6.2} {:>6.2} {:>6.2}   | {:>8.2} | {:>7.2} {:>7.2} {:>7.2}",
        scene.name,
        scene.frames,
        scene.chunk,
        c.0,
        c.1,
        c.2,
        w.0,
        w.1,
        w.2,
        c.0 - w.0,
        cold_total.as_secs_f64(),
        warm_total.as_secs_f64(),
        plain.as_secs_f64()
    );
    Ok(())
}

/// Renders `frames` in chunks with `env`; returns each chunk's time and the total.
async fn chunks(
    scene: &Scene,
    frames: &[i64],
    input: &Path,
    dir: &Path,
    env: &RenderEnv,
    label: &str,
) -> anyhow::Result<(Vec<f64>, Duration)> {
    let leases = dir.join(label);
    std::fs::create_dir_all(&leases)?;
    let mut times = Vec::new();
    let start = Instant::now();
    for (i, part) in frames.chunks(scene.chunk).enumerate() {
        let out_dir = leases.join(i.to_string());
        std::fs::create_dir_all(&out_dir)?;
        let job = RenderJob {
            settings: settings(scene),
            frames: part.to_vec(),
            input_root: input.to_path_buf(),
            main_file: input.join("bench.blend"),
            out_dir,
        };
        let (_presence, presence) = watch::channel(Availability::Available);
        let (frames_tx, _frames_rx) = mpsc::unbounded_channel();
        let control = RenderControl {
            presence,
            max_suspend: Duration::from_secs(60),
            cancel: CancellationToken::new(),
            suspended: watch::channel(false).0,
        };
        let t = Instant::now();
        let outcome = render::render(&job, env, frames_tx, control).await;
        ensure!(
            outcome == RenderOutcome::Complete,
            "{label} chunk {i}: {outcome:?}"
        );
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((times, start.elapsed()))
}

/// p50, p90 and max.
fn stats(times: &[f64]) -> (f64, f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.9), sorted.last().copied().unwrap_or(f64::NAN))
}

fn settings(scene: &Scene) -> RenderSettings {
    RenderSettings {
        renderer: Renderer::Blender,
        main_file: "bench.blend".into(),
        scene: None,
        frame_start: 1,
        frame_end: scene.frames,
        frame_step: 1,
        fps: 24.0,
        resolution_x: scene.width,
        resolution_y: scene.height,
        percentage: 100,
        engine: Some(scene.engine.into()),
        format: ImageFormat::Png,
        povray: None,
        sequence: None,
    }
}

/// The coordinator bench's scene: a cube moving across the frame.
fn make_blend(path: &Path, scene: &Scene) -> anyhow::Result<()> {
    let script = format!(
        "import bpy\n\
         s = bpy.context.scene\n\
         s.render.engine = '{engine}'\n\
         s.cycles.samples = {samples}\n\
         s.cycles.use_denoising = False\n\
         s.eevee.taa_render_samples = {samples}\n\
         s.render.resolution_x = {w}\n\
         s.render.resolution_y = {h}\n\
         s.render.resolution_percentage = 100\n\
         s.frame_start = 1\n\
         s.frame_end = {frames}\n\
         c = bpy.data.objects['Cube']\n\
         c.location = (-2, 0, 0)\n\
         c.keyframe_insert(data_path='location', frame=1)\n\
         c.location = (2, 0, 0)\n\
         c.keyframe_insert(data_path='location', frame={frames})\n\
         bpy.ops.wm.save_as_mainfile(filepath={path:?})\n",
        engine = scene.engine,
        samples = scene.samples,
        w = scene.width,
        h = scene.height,
        frames = scene.frames,
        path = path.to_str().context("a UTF-8 temp path")?,
    );
    let status = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--python-expr", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    ensure!(status.success() && path.exists(), "cannot write the scene");
    Ok(())
}
