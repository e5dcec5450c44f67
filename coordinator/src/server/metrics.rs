//! The coordinator's Prometheus metrics, `GET /metrics` (admins only: an admin's API token or
//! session; job and user names never appear in labels either). Counters move where things
//! happen (a frame stored, a lease ended, a video assembled, a request answered); the gauges
//! (jobs by state, leases outstanding, agents by presence) are read from the scheduler's state
//! when Prometheus scrapes. Request metrics are labelled with the route template
//! (`/api/v1/jobs/{id}`), never the raw path, so ids cannot explode the series count.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idlefarm_protocol::{JobState, PresenceState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Coordinator;
use super::caller::Caller;
use crate::error::ApiError;
use crate::schedule::LeaseEnding;

/// The content type of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of request metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    /// The route template, or `unmatched`.
    route: String,
}

/// Labels of the answered-requests counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    method: String,
    route: String,
    status: u16,
}

/// A label with one bounded value (a state, an outcome).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// How something ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Frame outcomes counted by `idlefarm_frames_total`.
const FRAME_OUTCOMES: [&str; 4] = ["done", "failed", "yielded", "expired"];

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one coordinator.
pub struct Metrics {
    registry: Registry,
    request_seconds: Histograms<RouteLabels>,
    requests: Family<StatusLabels, Counter>,
    uploaded_bytes: Family<RouteLabels, Counter>,
    frames: Family<OutcomeLabel, Counter>,
    backups: Counter,
    assembly_seconds: Histograms<OutcomeLabel>,
    jobs: Family<StateLabel, Gauge>,
    leases: Gauge,
    agents: Family<StateLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn request_buckets() -> Histogram {
    // 1 ms to about 33 s: answers, uploads and the 10 s lease long-poll.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn assembly_buckets() -> Histogram {
    // 0.5 s to about 68 minutes.
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("idlefarm");
        let request_seconds = Histograms::new_with_constructor(request_buckets as fn() -> _);
        let assembly_seconds = Histograms::new_with_constructor(assembly_buckets as fn() -> _);
        let requests = Family::default();
        let uploaded_bytes = Family::default();
        let frames: Family<OutcomeLabel, Counter> = Family::default();
        let backups = Counter::default();
        registry.register(
            "backup_leases",
            "Second copies of straggling frames leased to idle PCs near the end of a job",
            backups.clone(),
        );
        let jobs = Family::default();
        let leases = Gauge::default();
        let agents = Family::default();
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to its headers), by route template",
            request_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "Requests answered, by route template and status",
            requests.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Request body bytes received (frames, submissions, staged uploads), by route",
            uploaded_bytes.clone(),
        );
        registry.register(
            "frames",
            "Frames by outcome: done (stored), failed, yielded or expired (back to the queue)",
            frames.clone(),
        );
        registry.register(
            "assembly_duration_seconds",
            "Time ffmpeg took to assemble a job's video, by result",
            assembly_seconds.clone(),
        );
        registry.register("jobs", "Jobs by state", jobs.clone());
        registry.register(
            "leases_outstanding",
            "Leases held by agents",
            leases.clone(),
        );
        registry.register(
            "agents",
            "Enrolled agents by presence state",
            agents.clone(),
        );
        // Every outcome is there from the start, so a rate over it never misses its first step.
        for outcome in FRAME_OUTCOMES {
            let _ = frames.get_or_create(&OutcomeLabel { outcome });
        }
        Metrics {
            registry,
            request_seconds,
            requests,
            uploaded_bytes,
            frames,
            backups,
            assembly_seconds,
            jobs,
            leases,
            agents,
        }
    }

    /// A frame was checked and stored.
    pub(crate) fn frame_done(&self) {
        self.count_frames("done", 1);
    }

    /// A backup copy of a straggling frame was leased.
    pub(crate) fn backup_leased(&self) {
        self.backups.inc();
    }

    /// A lease ended `how`, sending `frames` unfinished frames back to the queue (or to
    /// failure).
    pub(crate) fn lease_ended(&self, how: LeaseEnding, frames: usize) {
        let outcome = match how {
            // A lease reported complete that lacks frames counts them as failures.
            LeaseEnding::Complete | LeaseEnding::Failed => "failed",
            LeaseEnding::Yield => "yielded",
            LeaseEnding::Expired => "expired",
        };
        self.count_frames(outcome, frames);
    }

    fn count_frames(&self, outcome: &'static str, n: usize) {
        if n > 0 {
            self.frames
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n as u64);
        }
    }

    /// ffmpeg assembled (or failed to assemble) a video in `took`.
    pub(crate) fn assembled(&self, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.assembly_seconds
            .get_or_create(&OutcomeLabel { outcome })
            .observe(took.as_secs_f64());
    }

    fn answered(&self, route: RouteLabels, status: u16, took: Duration) {
        self.request_seconds
            .get_or_create(&route)
            .observe(took.as_secs_f64());
        let labels = StatusLabels {
            method: route.method,
            route: route.route,
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// The exposition, with the gauges read from `coord` now.
    async fn render(&self, coord: &Coordinator) -> Result<String, std::fmt::Error> {
        {
            let sched = coord.sched.lock().await;
            let mut leases = 0;
            for state in JOB_STATES {
                let n = sched.jobs.values().filter(|e| e.row.state == state).count();
                self.jobs
                    .get_or_create(&StateLabel {
                        state: state.as_str(),
                    })
                    .set(n as i64);
            }
            for entry in sched.jobs.values() {
                leases += entry.board.leases.len();
            }
            self.leases.set(leases as i64);
        }
        let ids: Vec<i64> = coord.agents.read().await.keys().copied().collect();
        {
            let last = coord
                .last_presence
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for state in PRESENCE_STATES {
                let n = ids
                    .iter()
                    .filter(|id| last.get(id).copied().unwrap_or(PresenceState::Offline) == state)
                    .count();
                self.agents
                    .get_or_create(&StateLabel {
                        state: state.as_str(),
                    })
                    .set(n as i64);
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

const JOB_STATES: [JobState; 6] = [
    JobState::Rendering,
    JobState::Paused,
    JobState::Assembling,
    JobState::Done,
    JobState::Failed,
    JobState::Cancelled,
];

const PRESENCE_STATES: [PresenceState; 7] = [
    PresenceState::Idle,
    PresenceState::Rendering,
    PresenceState::UserPresent,
    PresenceState::Suspended,
    PresenceState::OutsideSchedule,
    PresenceState::Draining,
    PresenceState::Offline,
];

/// `GET /metrics`: admins only.
pub async fn serve(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require_admin_to("read the metrics")?;
    let text = coord
        .metrics
        .render(&coord)
        .await
        .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Middleware: times every request and counts its body bytes, labelled with its route template.
pub async fn track(
    State(coord): State<Arc<Coordinator>>,
    request: Request,
    next: Next,
) -> Response {
    let route = RouteLabels {
        method: request.method().as_str().to_owned(),
        route: request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned(),
    };
    // Only methods that carry bodies get a series, so the counter lists what is uploaded to.
    let carries_body = [Method::POST, Method::PUT, Method::PATCH].contains(request.method());
    let request = match carries_body {
        true => {
            let uploaded = coord.metrics.uploaded_bytes.get_or_create_owned(&route);
            request.map(|body| Body::new(Counted { body, uploaded }))
        }
        false => request,
    };
    let started = Instant::now();
    let response = next.run(request).await;
    coord
        .metrics
        .answered(route, response.status().as_u16(), started.elapsed());
    response
}

/// A request body that counts the bytes read from it.
struct Counted {
    body: Body,
    uploaded: Counter,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.uploaded.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_endings_count_their_unfinished_frames() {
        let m = Metrics::new();
        m.frame_done();
        m.lease_ended(LeaseEnding::Yield, 3);
        m.lease_ended(LeaseEnding::Failed, 2);
        m.lease_ended(LeaseEnding::Expired, 0);
        let count = |outcome| m.frames.get_or_create(&OutcomeLabel { outcome }).get();
        assert_eq!(
            [
                count("done"),
                count("yielded"),
                count("failed"),
                count("expired")
            ],
            [1, 3, 2, 0]
        );
    }
}
