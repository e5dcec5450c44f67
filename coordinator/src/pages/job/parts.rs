//! The job page's parts, each a live region with its own template: the summary (state,
//! progress, times, actions), the frame grid and one frame's detail, the latest frame, the
//! filmstrip, the video and downloads, and the failures. `super::page` renders them whole or
//! one at a time (`?part=`).

use std::collections::HashMap;

use askama::Template;
use idlefarm_protocol::{FailureInfo, FrameCounts, FrameInfo, JobInfo, JobState, routes};

use super::super::view::{Bar, duration_ms, iso_time};
use super::job_page_url;
use crate::error::ApiError;
use crate::server::now_secs;

/// Most thumbnails the filmstrip shows; longer jobs are sampled evenly.
const STRIP_MAX: usize = 24;

/// What the person may do with the job, as API URLs (`None`: not offered now).
pub(super) struct Actions {
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
pub(super) struct Summary {
    id: i64,
    src: String,
    state: &'static str,
    error: Option<String>,
    bar: Bar,
    counts: FrameCounts,
    percent: u64,
    eta: Option<String>,
    started: Option<String>,
    finished: Option<String>,
    priority: i64,
    actions: Actions,
}

/// One cell of the frame grid.
pub(super) struct Cell {
    pub frame: i64,
    pub state: String,
}

#[derive(Template)]
#[template(path = "job_grid.html")]
pub(super) struct Grid {
    id: i64,
    src: String,
    cells: Vec<Cell>,
    retry: String,
    may_retry: bool,
}

/// A done frame shown as a thumbnail.
pub(super) struct Shot {
    pub frame: i64,
    pub thumbnail: String,
    pub file: String,
}

#[derive(Template)]
#[template(path = "job_latest.html")]
pub(super) struct Latest {
    id: i64,
    src: String,
    shot: Option<Shot>,
}

#[derive(Template)]
#[template(path = "job_strip.html")]
pub(super) struct Strip {
    id: i64,
    src: String,
    shots: Vec<Shot>,
    done: u64,
}

#[derive(Template)]
#[template(path = "job_output.html")]
pub(super) struct Output {
    id: i64,
    src: String,
    has_video: bool,
    video: String,
    frames_zip: String,
    state: &'static str,
}

/// A failed lease as the page shows it.
pub(super) struct Failure {
    pub lease: i64,
    pub at: String,
    pub agent: String,
    pub frames: String,
    pub message: String,
    pub log_tail: Option<String>,
}

#[derive(Template)]
#[template(path = "job_failures.html")]
pub(super) struct Failures {
    id: i64,
    src: String,
    failures: Vec<Failure>,
}

/// The detail of one frame (a grid cell's).
#[derive(Template)]
#[template(path = "job_frame.html")]
pub(super) struct FrameDetail {
    frame: i64,
    state: String,
    agent: Option<String>,
    attempts: u32,
    failures: u32,
    failed_on: Vec<String>,
    render_time: Option<String>,
    source: Option<String>,
    /// Its frame check: why it waits for another PC, or how the check ended.
    check: Option<String>,
    shot: Option<Shot>,
}

pub(super) fn shot(job: i64, f: &FrameInfo) -> Option<Shot> {
    let file = f.file.as_ref()?;
    Some(Shot {
        frame: f.frame,
        thumbnail: routes::job_frame_thumbnail(job, f.frame),
        file: routes::job_frame_file(job, file),
    })
}

/// Up to [`STRIP_MAX`] done frames, evenly spread over all done frames.
pub(super) fn sample<T>(items: &[T]) -> Vec<&T> {
    if items.len() <= STRIP_MAX {
        return items.iter().collect();
    }
    (0..STRIP_MAX)
        .map(|i| &items[i * (items.len() - 1) / (STRIP_MAX - 1)])
        .collect()
}

/// Frame numbers as ranges: `1-3, 7`.
pub(super) fn frame_list(frames: &[i64]) -> String {
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

/// Everything the page needs, read once.
pub(super) struct Loaded {
    pub(super) job: JobInfo,
    pub(super) frames: Vec<FrameInfo>,
}

pub(super) fn part_src(id: i64, part: &str) -> String {
    format!("{}?part={part}", job_page_url(id))
}

pub(super) fn summary(l: &Loaded) -> Summary {
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

pub(super) fn grid(l: &Loaded) -> Grid {
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

pub(super) fn latest(l: &Loaded) -> Latest {
    let frame = l.job.latest_frame;
    Latest {
        id: l.job.id,
        src: part_src(l.job.id, "latest"),
        shot: frame
            .and_then(|n| l.frames.iter().find(|f| f.frame == n))
            .and_then(|f| shot(l.job.id, f)),
    }
}

pub(super) fn strip(l: &Loaded) -> Strip {
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

pub(super) fn output(job: &JobInfo) -> Output {
    Output {
        id: job.id,
        src: part_src(job.id, "output"),
        has_video: job.has_video,
        video: routes::job_video(job.id),
        frames_zip: routes::job_frames_zip(job.id),
        state: job.state.as_str(),
    }
}

pub(super) fn failures(id: i64, list: Vec<FailureInfo>, names: &HashMap<i64, String>) -> Failures {
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

pub(super) fn agent_name(names: &HashMap<i64, String>, id: i64) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("PC {id}"))
}

pub(super) fn frame_detail(
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
        check: f.check.clone(),
        shot: shot(l.job.id, f),
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
