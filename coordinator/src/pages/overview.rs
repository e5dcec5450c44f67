//! The overview, the landing page (`/`): what the farm is doing right now. PCs by state, the
//! viewer's jobs rendering and waiting, frames stored per hour over the last day (an SVG bar
//! chart) and thumbnails of what each PC is rendering.
//!
//! Live parts (`?part=`): `counts`, `chart` and `now`, each re-rendered when the events it
//! follows arrive.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use idlefarm_protocol::{JobInfo, JobState};
use serde::Deserialize;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::pc::Pc;
use super::timeline::{Period, Tick, ticks};
use crate::error::ApiError;
use crate::server::now_ms;
use crate::server::{Caller, Coordinator};

/// Hours the frames-per-hour chart shows.
const CHART_HOURS: usize = 24;

/// The page's query: which live part to render (other parameters are ignored).
#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    part: Option<String>,
}

/// PCs by what they do now, and the viewer's jobs by whether a PC works on them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// PCs rendering.
    pub rendering: usize,
    /// PCs waiting for work.
    pub idle: usize,
    /// PCs a person uses (a render of theirs may be suspended).
    pub in_use: usize,
    /// PCs not heard from.
    pub offline: usize,
    /// PCs held back: outside their schedule, draining, disabled or quarantined.
    pub held: usize,
    /// Jobs with frames being rendered.
    pub jobs_running: usize,
    /// Jobs with frames left but none being rendered.
    pub jobs_queued: usize,
}

impl Counts {
    /// Counts `pcs` and `jobs`.
    pub fn new(pcs: &[Pc], jobs: &[JobInfo]) -> Counts {
        let mut c = Counts::default();
        for pc in pcs {
            match pc.state {
                "rendering" => c.rendering += 1,
                "idle" => c.idle += 1,
                "user-present" | "suspended" => c.in_use += 1,
                "offline" => c.offline += 1,
                _ => c.held += 1,
            }
        }
        for job in jobs.iter().filter(|j| j.state == JobState::Rendering) {
            if job.frames.rendering > 0 {
                c.jobs_running += 1;
            } else if job.frames.queued > 0 {
                c.jobs_queued += 1;
            }
        }
        c
    }
}

/// One bar of the chart, in the SVG's user units (240 × 60).
#[derive(Debug, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: f64,
    /// Height.
    pub height: f64,
    /// `12 frames, 5-4 h ago`.
    pub title: String,
}

/// The frames-per-hour chart.
#[derive(Debug, PartialEq)]
pub struct Chart {
    /// One bar per hour, oldest first.
    pub bars: Vec<Bar>,
    /// Frames over the whole chart.
    pub total: u64,
    /// The busiest hour's count (the chart's scale).
    pub peak: u64,
    /// Axis labels.
    pub ticks: Vec<Tick>,
}

/// Height of the chart in SVG units; bars leave 2 at the top.
const CHART_HEIGHT: f64 = 60.0;

impl Chart {
    /// The chart of `per_hour` (oldest first, the last entry the hour up to now).
    pub fn new(per_hour: &[u64]) -> Chart {
        let peak = per_hour.iter().copied().max().unwrap_or(0);
        let hours = per_hour.len();
        let bars = per_hour
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let height = match peak {
                    0 => 0.0,
                    p => ((CHART_HEIGHT - 2.0) * n as f64 / p as f64 * 100.0).round() / 100.0,
                };
                let ago = hours - i;
                let when = match ago {
                    1 => "the last hour".to_owned(),
                    a => format!("{a}-{} h ago", a - 1),
                };
                Bar {
                    x: i as u32 * 10 + 1,
                    y: CHART_HEIGHT - height,
                    height,
                    title: format!("{n} {}, {when}", if n == 1 { "frame" } else { "frames" }),
                }
            })
            .collect();
        Chart {
            bars,
            total: per_hour.iter().sum(),
            peak,
            ticks: ticks(Period::Day),
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    counts: Counts,
    chart: Chart,
    now: Vec<Pc>,
}

#[derive(Template)]
#[template(path = "overview_counts.html")]
struct CountsPart {
    counts: Counts,
}

#[derive(Template)]
#[template(path = "overview_chart.html")]
struct ChartPart {
    chart: Chart,
}

#[derive(Template)]
#[template(path = "overview_now.html")]
struct NowPart {
    now: Vec<Pc>,
}

/// `GET /`, `GET /?part=counts|chart|now`.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> PageResult {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "malformed query: {}; use ?part=counts, chart or now",
            e.body_text()
        ))
    })?;
    match q.part.as_deref() {
        None => {
            let (pcs, jobs) = farm(&coord, &caller).await?;
            render(&OverviewPage {
                chrome: Chrome::new(&caller, Nav::Overview),
                counts: Counts::new(&pcs, &jobs),
                chart: chart(&coord).await?,
                now: rendering_now(pcs),
            })
        }
        Some("counts") => {
            let (pcs, jobs) = farm(&coord, &caller).await?;
            render(&CountsPart {
                counts: Counts::new(&pcs, &jobs),
            })
        }
        Some("chart") => render(&ChartPart {
            chart: chart(&coord).await?,
        }),
        Some("now") => render(&NowPart {
            now: rendering_now(farm(&coord, &caller).await?.0),
        }),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown part `{other}`; use ?part=counts, chart or now"
        ))
        .into()),
    }
}

/// Every PC (with thumbnails of the jobs `caller` may see) and the jobs `caller` may see.
async fn farm(coord: &Coordinator, caller: &Caller) -> Result<(Vec<Pc>, Vec<JobInfo>), ApiError> {
    let jobs = coord.job_infos(|owner| caller.may_see(owner)).await?;
    let names: HashMap<i64, String> = jobs.iter().map(|j| (j.id, j.name.clone())).collect();
    let now = now_ms() / 1000;
    let pcs = coord
        .agent_infos()
        .await?
        .into_iter()
        .map(|info| Pc::new(info, &names, now))
        .collect();
    Ok((pcs, jobs))
}

async fn chart(coord: &Coordinator) -> Result<Chart, ApiError> {
    let per_hour = coord.store.frames_per_hour(now_ms(), CHART_HOURS).await?;
    Ok(Chart::new(&per_hour))
}

/// The PCs at work, for the thumbnails.
fn rendering_now(pcs: Vec<Pc>) -> Vec<Pc> {
    pcs.into_iter().filter(|pc| pc.working).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_busiest_hour() {
        let chart = Chart::new(&[0, 5, 10]);
        assert_eq!((chart.total, chart.peak), (15, 10));
        let bars: Vec<_> = chart.bars.iter().map(|b| (b.x, b.y, b.height)).collect();
        assert_eq!(bars, [(1, 60.0, 0.0), (11, 31.0, 29.0), (21, 2.0, 58.0)]);
        assert_eq!(chart.bars[0].title, "0 frames, 3-2 h ago");
        assert_eq!(chart.bars[2].title, "10 frames, the last hour");
        assert_eq!(chart.ticks.last().map(|t| t.label.as_str()), Some("now"));
    }

    #[test]
    fn an_empty_day_draws_flat_bars() {
        let chart = Chart::new(&[0; 24]);
        assert_eq!(chart.bars.len(), 24);
        assert!(chart.bars.iter().all(|b| b.height == 0.0));
        assert_eq!(chart.bars[23].x, 231);
    }
}
