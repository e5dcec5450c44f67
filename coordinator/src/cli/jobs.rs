//! `idlefarm submit`, `status` and `fetch`: jobs seen from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use idlefarm_protocol::{JobInfo, JobState};
use indicatif::{ProgressBar, ProgressStyle};

use super::{ServerArg, control};
use crate::client::{Client, SubmitOptions};

#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
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
    /// The [Section] of the POV-Ray .ini to read besides its options before the first
    /// section, as in `povray scene.ini[Section]`.
    #[arg(long)]
    ini_section: Option<String>,
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

pub(super) async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let opts = SubmitOptions {
        ini: args.ini,
        frames: args.frames,
        chunk: args.chunk,
        scene: args.scene,
        main: args.main,
        sequence: args.sequence,
        ini_section: args.ini_section,
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

pub(super) async fn status(client: &Client, job: Option<i64>, json: bool) -> anyhow::Result<()> {
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

pub(super) async fn fetch(client: &Client, id: i64, out: &Path) -> anyhow::Result<()> {
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
