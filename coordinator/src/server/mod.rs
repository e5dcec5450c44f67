//! The coordinator's HTTP server: shared state, the router, background tasks (lease expiry,
//! assembly) and the `run` entry point tests call with a bound listener.

mod accounts;
mod actions;
mod agents;
pub mod api;
mod bell;
mod caller;
mod checks;
mod connections;
mod control;
mod declines;
pub mod events;
mod frame_upload;
mod frame_verdict;
mod heard;
mod image_end;
mod jobs;
mod leases;
pub mod metrics;
mod multipart;
pub mod openapi;
mod placement;
mod publish;
mod requests;
mod state;
pub mod tls;
mod uploads;
mod views;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};
use idlefarm_protocol::routes::{self, API_PREFIX};
use tokio::net::TcpListener;

pub(crate) use actions::authorize_job;
pub use caller::{Caller, Login, OptionalCaller};
pub use requests::{
    MAX_WAITING as MAX_ENROLMENT_REQUESTS, REQUEST_TTL_SECS as ENROLMENT_REQUEST_TTL_SECS,
};
pub use state::Coordinator;
pub(crate) use state::{now_ms, now_secs};
pub use uploads::MAX_STAGED_PER_USER;

use crate::schedule::HealthPolicy;

/// How the coordinator is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database, blobs and frames live.
    pub data_dir: PathBuf,
    /// Blender, for inspecting submitted `.blend` files.
    pub blender: PathBuf,
    /// Whether a spare Blender waits for the next `.blend` to inspect (the default: yes, started
    /// after an inspection once a core is idle; `idlefarm serve` starts the first at once).
    pub blend_inspector: crate::submit::BlendInspector,
    /// ffmpeg, for assembling videos.
    pub ffmpeg: PathBuf,
    /// Largest accepted upload (job submission) in bytes.
    pub max_upload_bytes: u64,
    /// Most bytes a submitted zip project may unpack to.
    pub max_unpacked_bytes: u64,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl: Duration,
    /// How long an automatically sized chunk should take.
    pub chunk_target: Duration,
    /// When failures blocklist an agent for a job or quarantine it.
    pub health: HealthPolicy,
    /// How often the event stream sends a keep-alive comment.
    pub events_keepalive: Duration,
    /// How long a staged upload waits for its submission.
    pub upload_ttl: Duration,
    /// Share of frames (percent, 0–100) rendered on two PCs and compared (`--verify`).
    pub verify_percent: f64,
    /// The HTTPS certificate's fingerprint, when served over HTTPS (shown with the enrolment
    /// command line, for agents to pin).
    pub tls_fingerprint: Option<String>,
}

impl ServerConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            blender: "blender".into(),
            blend_inspector: crate::submit::BlendInspector::with_spare(),
            ffmpeg: "ffmpeg".into(),
            max_upload_bytes: 4 << 30,
            max_unpacked_bytes: idlefarm_archive::DEFAULT_MAX_TOTAL_BYTES,
            lease_ttl: Duration::from_secs(60),
            chunk_target: Duration::from_secs(120),
            health: HealthPolicy::default(),
            events_keepalive: events::DEFAULT_KEEPALIVE,
            upload_ttl: Duration::from_secs(24 * 3600),
            verify_percent: 0.0,
            tls_fingerprint: None,
        }
    }
}

/// Builds the router over an opened coordinator: the API from its table ([`api::endpoints`]),
/// the metrics, the pages. Paths come from [`routes`].
pub fn router(coord: Arc<Coordinator>) -> Router {
    let limit = usize::try_from(coord.config.max_upload_bytes).unwrap_or(usize::MAX);
    let mut app = Router::new();
    for endpoint in api::endpoints() {
        let handler = match endpoint.large_body {
            true => endpoint.handler.layer(DefaultBodyLimit::max(limit)),
            false => endpoint.handler,
        };
        app = app.route(&endpoint.path, handler);
    }
    app.route(&format!("{API_PREFIX}/{{*rest}}"), any(jobs::api_not_found))
        .route(routes::METRICS, get(metrics::serve))
        .merge(crate::pages::routes())
        // Applied to each route, so it sees the matched route template.
        .layer(axum::middleware::from_fn_with_state(
            coord.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::map_response(
            crate::pages::security_headers,
        ))
        .layer(crate::pages::compression())
        .layer(axum::middleware::from_fn(
            connections::close_after_refused_body,
        ))
        .with_state(coord)
}

/// Serves the coordinator on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    coord: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(listener, coord, shutdown).await
}

/// Like [`run`], over HTTPS with `tls`'s certificate.
pub async fn run_tls(
    listener: TcpListener,
    tls: &tls::TlsIdentity,
    coord: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tls::TlsListener::new(listener, tls.acceptor.clone())?;
    serve(listener, coord, shutdown).await
}

async fn serve<L>(
    listener: L,
    coord: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    uploads::remove_expired(&coord.data, coord.config.upload_ttl, true).await;
    let background = coord.clone().start_background();
    let closing = coord.closing.clone();
    let shutdown = async move {
        shutdown.await;
        // Long-polled lease requests answer at once so the graceful shutdown does not wait.
        closing.cancel();
    };
    connections::serve(listener, router(coord), shutdown).await;
    background.abort();
    Ok(())
}
