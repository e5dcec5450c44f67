//! The coordinator's HTTP server: shared state, the router, background tasks (lease expiry,
//! assembly) and the `run` entry point tests call with a bound listener.

mod accounts;
mod agents;
mod caller;
mod jobs;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use idlefarm_protocol::API_PREFIX;
use tokio::net::TcpListener;

pub use caller::{Caller, Login, OptionalCaller};
pub use state::Coordinator;

/// How the coordinator is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database, blobs and frames live.
    pub data_dir: PathBuf,
    /// Blender, for inspecting submitted `.blend` files.
    pub blender: PathBuf,
    /// ffmpeg, for assembling videos.
    pub ffmpeg: PathBuf,
    /// Largest accepted upload (job submission) in bytes.
    pub max_upload_bytes: u64,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl: Duration,
    /// How long an automatically sized chunk should take.
    pub chunk_target: Duration,
}

impl ServerConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            blender: "blender".into(),
            ffmpeg: "ffmpeg".into(),
            max_upload_bytes: 4 << 30,
            lease_ttl: Duration::from_secs(60),
            chunk_target: Duration::from_secs(120),
        }
    }
}

/// Builds the router over an opened coordinator.
pub fn router(coord: Arc<Coordinator>) -> Router {
    let limit = usize::try_from(coord.config.max_upload_bytes).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/agents/register", post(agents::register))
        .route("/agent/heartbeat", post(agents::heartbeat))
        .route("/agent/lease", post(agents::lease))
        .route("/agent/blobs/{hash}", get(agents::blob))
        .route(
            "/agent/leases/{lease}/frames/{file}",
            put(agents::upload_frame).layer(DefaultBodyLimit::max(agents::MAX_FRAME_BYTES)),
        )
        .route("/agent/leases/{lease}/end", post(agents::end_lease))
        .route("/agents", get(jobs::list_agents))
        .route(
            "/jobs",
            get(jobs::list_jobs)
                .post(jobs::submit)
                .layer(DefaultBodyLimit::max(limit)),
        )
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/frames", get(jobs::list_frames))
        .route("/jobs/{id}/frames/{file}", get(jobs::frame_file))
        .route("/jobs/{id}/video.mp4", get(jobs::video))
        .route("/jobs/{id}/frames.zip", get(jobs::frames_zip))
        .merge(accounts::routes())
        .fallback(jobs::api_not_found);
    Router::new()
        .route("/", get(jobs::index_page))
        .nest(API_PREFIX, api)
        .with_state(coord)
}

/// Serves the coordinator on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    coord: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let background = coord.clone().start_background();
    let closing = coord.closing.clone();
    let shutdown = async move {
        shutdown.await;
        // Long-polled lease requests answer at once so the graceful shutdown does not wait.
        closing.cancel();
    };
    let app = router(coord).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    result.map_err(Into::into)
}
