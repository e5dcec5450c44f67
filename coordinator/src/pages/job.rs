//! The job page: its progress and ETA, a frame grid (one cell per frame, coloured by state; a
//! cell shows its frame's thumbnail, render time, PC and attempts, and selected cells can be
//! rendered again), the latest frame, a filmstrip, the video and downloads once assembled,
//! warnings, the failures' log tails, and the actions this person may take.
//!
//! Each part is a live region rendered by this module alone (`?part=summary|grid|latest|strip|
//! output|failures|frame`), so a refresh is the same template as the first render.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use idlefarm_protocol::{FailureInfo, FrameInfo, JobInfo, JobState, Renderer, routes};
use serde::Deserialize;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::view::{Bar, duration_ms, iso_time, now_secs};
use crate::error::ApiError;
use crate::server::{Coordinator, authorize_job};

/// Route of a job's page.
pub const JOB_PAGE: &str = "/jobs/{id}";

/// The page of job `id`.
pub fn job_page_url(id: i64) -> String {
    format!("/jobs/{id}")
}

/// Most thumbnails the filmstrip shows; longer jobs are sampled evenly.
const STRIP_MAX: usize = 24;

#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    #[serde(default)]
    part: String,
    /// The frame `part=frame` shows.
    frame: Option<i64>,
}

/// What the person may do with the job, as API URLs (`None`: not offered now).
pub struct Actions {
    pub cancel: Option<String>,
    pub pause: Option<String>,
    pub resume: Option<String>,
    pub retry_failed: Option<String>,
    pub priority: Option<String>,
    pub delete: String,
}

impl Actions {
    fn of(job: &JobInfo) -> Actions {
        let url = |template| routes::with_id(template, job.id);
        let active = !job.state.is_final();
        Actions {
            cancel: active.then(|| url(routes::JOB_CANCEL)),
            pause: (job.state == JobState::Rendering).then(|| url(routes::JOB_PAUSE)),
            resume: (job.state == JobState::Paused).then(|| url(routes::JOB_RESUME)),
            retry_failed: (job.frames.failed > 0 && job.state != JobState::Cancelled)
                .then(|| url(routes::JOB_RETRY)),
            priority: active.then(|| url(routes::JOB_PRIORITY)),
            delete: routes::job(job.id),
        }
    }
}

/// The summary: state, progress, times and actions.
#[derive(Template)]
#[template(path = "job_summary.html")]
struct Summary {
    id: i64,
    src: String,
    state: &'static str,
    error: Option<String>,
    bar: Bar,
    counts: idlefarm_protocol::FrameCounts,
    percent: u64,
    eta: Option<String>,
    started: Option<String>,
    finished: Option<String>,
    priority: i64,
    actions: Actions,
}

/// One cell of the frame grid.
pub struct Cell {
    pub frame: i64,
    pub state: String,
}

#[derive(Template)]
#[template(path = "job_grid.html")]
struct Grid {
    id: i64,
    src: String,
    cells: Vec<Cell>,
    retry: String,
    may_retry: bool,
}

/// A done frame shown as a thumbnail.
pub struct Shot {
    pub frame: i64,
    pub thumbnail: String,
    pub file: String,
}

#[derive(Template)]
#[template(path = "job_latest.html")]
struct Latest {
    id: i64,
    src: String,
    shot: Option<Shot>,
}

#[derive(Template)]
#[template(path = "job_strip.html")]
struct Strip {
    id: i64,
    src: String,
    shots: Vec<Shot>,
    done: u64,
}

#[derive(Template)]
#[template(path = "job_output.html")]
struct Output {
    id: i64,
    src: String,
    has_video: bool,
    video: String,
    frames_zip: String,
    state: &'static str,
}

/// A failed lease as the page shows it.
pub struct Failure {
    pub lease: i64,
    pub at: String,
    pub agent: String,
    pub frames: String,
    pub message: String,
    pub log_tail: Option<String>,
}

#[derive(Template)]
#[template(path = "job_failures.html")]
struct Failures {
    id: i64,
    src: String,
    failures: Vec<Failure>,
}

/// The detail of one frame (a grid cell's).
#[derive(Template)]
#[template(path = "job_frame.html")]
struct FrameDetail {
    frame: i64,
    state: String,
    agent: Option<String>,
    attempts: u32,
    failures: u32,
    failed_on: Vec<String>,
    render_time: Option<String>,
    source: Option<String>,
    shot: Option<Shot>,
}

/// The job's settings, as facts.
pub struct Facts {
    pub renderer: &'static str,
    pub file: String,
    pub frames: String,
    pub size: String,
    pub engine: Option<String>,
    pub format: &'static str,
    pub fps: String,
    pub chunk: String,
    pub tags: String,
    pub owner: String,
    pub submitted: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    id: i64,
    name: String,
    facts: Facts,
    warnings: Vec<String>,
    summary: Summary,
    latest: Latest,
    grid: Grid,
    strip: Strip,
    output: Output,
    failures: Failures,
}

fn shot(job: i64, f: &FrameInfo) -> Option<Shot> {
    let file = f.file.as_ref()?;
    Some(Shot {
        frame: f.frame,
        thumbnail: routes::job_frame_thumbnail(job, f.frame),
        file: routes::job_frame_file(job, file),
    })
}

/// Up to [`STRIP_MAX`] done frames, evenly spread over all done frames.
fn sample<T>(items: &[T]) -> Vec<&T> {
    if items.len() <= STRIP_MAX {
        return items.iter().collect();
    }
    (0..STRIP_MAX)
        .map(|i| &items[i * (items.len() - 1) / (STRIP_MAX - 1)])
        .collect()
}

/// Frame numbers as ranges: `1-3, 7`.
fn frame_list(frames: &[i64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let start = frames[i];
        let mut end = start;
        while i + 1 < frames.len() && frames[i + 1] == end + 1 {
            i += 1;
            end = frames[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

fn facts(job: &JobInfo) -> Facts {
    let s = &job.settings;
    let (w, h) = s.frame_size();
    Facts {
        renderer: match s.renderer {
            Renderer::Blender => "Blender",
            Renderer::Povray => "POV-Ray",
        },
        file: s.main_file.clone(),
        frames: if s.frame_step > 1 {
            format!("{}-{} step {}", s.frame_start, s.frame_end, s.frame_step)
        } else {
            format!("{}-{}", s.frame_start, s.frame_end)
        },
        size: if s.percentage == 100 {
            format!("{w} × {h}")
        } else {
            format!(
                "{w} × {h} ({} × {} at {} %)",
                s.resolution_x, s.resolution_y, s.percentage
            )
        },
        engine: s.engine.clone(),
        format: s.format.extension(),
        fps: format!("{}", s.fps),
        chunk: job
            .chunk_size
            .map_or_else(|| "automatic".to_owned(), |c| format!("{c} frames")),
        tags: if job.required_tags.is_empty() {
            "none".into()
        } else {
            job.required_tags.join(", ")
        },
        owner: job.owner.clone().unwrap_or_else(|| "—".into()),
        submitted: iso_time(job.created_at),
    }
}

/// Everything the page needs, read once.
struct Loaded {
    job: JobInfo,
    frames: Vec<FrameInfo>,
}

fn part_src(id: i64, part: &str) -> String {
    format!("{}?part={part}", job_page_url(id))
}

fn summary(l: &Loaded) -> Summary {
    let job = &l.job;
    let total = job.frames.total().max(1);
    Summary {
        id: job.id,
        src: part_src(job.id, "summary"),
        state: job.state.as_str(),
        error: job.error.clone(),
        bar: Bar::of(&job.frames),
        counts: job.frames,
        percent: job.frames.done * 100 / total,
        eta: job.eta_secs.map(|s| iso_time(now_secs() + s as i64)),
        started: job.started_at.map(iso_time),
        finished: job.finished_at.map(iso_time),
        priority: job.priority,
        actions: Actions::of(job),
    }
}

fn grid(l: &Loaded) -> Grid {
    Grid {
        id: l.job.id,
        src: part_src(l.job.id, "grid"),
        cells: l
            .frames
            .iter()
            .map(|f| Cell {
                frame: f.frame,
                state: f.state.clone(),
            })
            .collect(),
        retry: routes::with_id(routes::JOB_RETRY, l.job.id),
        may_retry: l.job.state != JobState::Cancelled,
    }
}

fn latest(l: &Loaded) -> Latest {
    let frame = l.job.latest_frame;
    Latest {
        id: l.job.id,
        src: part_src(l.job.id, "latest"),
        shot: frame
            .and_then(|n| l.frames.iter().find(|f| f.frame == n))
            .and_then(|f| shot(l.job.id, f)),
    }
}

fn strip(l: &Loaded) -> Strip {
    let done: Vec<&FrameInfo> = l.frames.iter().filter(|f| f.file.is_some()).collect();
    Strip {
        id: l.job.id,
        src: part_src(l.job.id, "strip"),
        shots: sample(&done)
            .into_iter()
            .filter_map(|f| shot(l.job.id, f))
            .collect(),
        done: l.job.frames.done,
    }
}

fn output(job: &JobInfo) -> Output {
    Output {
        id: job.id,
        src: part_src(job.id, "output"),
        has_video: job.has_video,
        video: routes::job_video(job.id),
        frames_zip: routes::job_frames_zip(job.id),
        state: job.state.as_str(),
    }
}

fn failures(id: i64, list: Vec<FailureInfo>, names: &HashMap<i64, String>) -> Failures {
    Failures {
        id,
        src: part_src(id, "failures"),
        failures: list
            .into_iter()
            .map(|f| Failure {
                lease: f.lease_id,
                at: iso_time(f.at),
                agent: agent_name(names, f.agent_id),
                frames: frame_list(&f.frames),
                message: f.message,
                log_tail: f.log_tail,
            })
            .collect(),
    }
}

fn agent_name(names: &HashMap<i64, String>, id: i64) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("PC {id}"))
}

async fn agent_names(coord: &Coordinator) -> Result<HashMap<i64, String>, ApiError> {
    Ok(coord
        .agent_infos()
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

fn frame_detail(
    l: &Loaded,
    frame: i64,
    names: &HashMap<i64, String>,
) -> Result<FrameDetail, ApiError> {
    let f = l
        .frames
        .iter()
        .find(|f| f.frame == frame)
        .ok_or_else(|| ApiError::not_found(format!("job {} has no frame {frame}", l.job.id)))?;
    Ok(FrameDetail {
        frame,
        state: f.state.clone(),
        agent: f.agent_id.map(|a| agent_name(names, a)),
        attempts: f.attempts,
        failures: f.failures,
        failed_on: f.failed_on.iter().map(|&a| agent_name(names, a)).collect(),
        render_time: f.render_ms.map(duration_ms),
        source: f.source.clone(),
        shot: shot(l.job.id, f),
    })
}

/// `GET /jobs/{id}`.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    Path(id): Path<String>,
    Query(q): Query<JobQuery>,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("malformed path: `{id}` is not a job number"))
    })?;
    authorize_job(&coord, &caller, id).await?;
    let job = coord.job_info(id).await?;
    // Parts that need no frames answer without reading them (a 100,000-frame job's list is big).
    match q.part.as_str() {
        "output" => return render(&output(&job)),
        "failures" => {
            let names = agent_names(&coord).await?;
            let list = coord
                .store()
                .job_failures(id)
                .await
                .map_err(ApiError::from)?;
            return render(&failures(id, list, &names));
        }
        _ => {}
    }
    let l = Loaded {
        frames: coord.frame_infos(id).await?,
        job,
    };
    match q.part.as_str() {
        "summary" => return render(&summary(&l)),
        "grid" => return render(&grid(&l)),
        "latest" => return render(&latest(&l)),
        "strip" => return render(&strip(&l)),
        "frame" => {
            let frame = q
                .frame
                .ok_or_else(|| ApiError::bad_request("part=frame needs frame=N"))?;
            let names = agent_names(&coord).await?;
            return render(&frame_detail(&l, frame, &names)?);
        }
        "" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "`{other}` is not a part of the job page; use summary, grid, latest, strip, output, failures or frame"
            ))
            .into());
        }
    }
    let names = agent_names(&coord).await?;
    let list = coord
        .store()
        .job_failures(id)
        .await
        .map_err(ApiError::from)?;
    render(&JobPage {
        chrome: Chrome::new(&caller, Nav::Jobs),
        id,
        name: l.job.name.clone(),
        facts: facts(&l.job),
        warnings: l.job.warnings.clone(),
        summary: summary(&l),
        latest: latest(&l),
        grid: grid(&l),
        strip: strip(&l),
        output: output(&l.job),
        failures: failures(id, list, &names),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists_read_as_ranges() {
        assert_eq!(frame_list(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        assert_eq!(frame_list(&[]), "");
    }

    #[test]
    fn the_strip_samples_evenly_and_keeps_both_ends() {
        let frames: Vec<i64> = (1..=1000).collect();
        let s = sample(&frames);
        assert_eq!(s.len(), STRIP_MAX);
        assert_eq!((*s[0], *s[STRIP_MAX - 1]), (1, 1000));
        assert_eq!(sample(&frames[..5]).len(), 5);
    }
}
