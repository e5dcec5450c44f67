//! The job page: its progress and ETA, a frame grid (one cell per frame, coloured by state; a
//! cell shows its frame's thumbnail, render time, PC and attempts, and selected cells can be
//! rendered again), the latest frame, a filmstrip, the video and downloads once assembled,
//! warnings, the failures' log tails, and the actions this person may take.
//!
//! Each part is a live region rendered by this module alone (`?part=summary|grid|latest|strip|
//! output|failures|frame`, in `parts.rs`), so a refresh is the same template as the first render.

mod parts;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use idlefarm_protocol::{JobInfo, Renderer};
use serde::Deserialize;

use self::parts::{
    Failures, Grid, Latest, Loaded, Output, Strip, Summary, failures, frame_detail, grid, latest,
    output, strip, summary,
};
use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::view::iso_time;
use crate::error::ApiError;
use crate::server::{Coordinator, authorize_job};

/// Route of a job's page.
pub const JOB_PAGE: &str = "/jobs/{id}";

/// The page of job `id`.
pub fn job_page_url(id: i64) -> String {
    format!("/jobs/{id}")
}

/// The page's URL query: which part to render.
#[derive(Debug, Default, Deserialize)]
pub struct JobQuery {
    #[serde(default)]
    part: String,
    /// The frame `part=frame` shows.
    frame: Option<i64>,
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

async fn agent_names(coord: &Coordinator) -> Result<HashMap<i64, String>, ApiError> {
    Ok(coord
        .agent_infos()
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

/// The failures part: each failed lease with its PC's name and log tail.
async fn failures_part(coord: &Coordinator, id: i64) -> Result<Failures, ApiError> {
    let names = agent_names(coord).await?;
    let list = coord
        .store()
        .job_failures(id)
        .await
        .map_err(ApiError::from)?;
    Ok(failures(id, list, &names))
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
        "failures" => return render(&failures_part(&coord, id).await?),
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
    let failures = failures_part(&coord, id).await?;
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
        failures,
    })
}
