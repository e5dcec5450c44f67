//! The web app: pages rendered on the server from askama templates (`web/templates/`, escaped by
//! default), the static files of `web/static/` embedded in the binary, and the security headers
//! every answer carries.
//!
//! Pages only read, through the same coordinator operations the JSON API answers from. Every
//! action a page offers is a form that `web/static/forms.js` sends to the HTTP API the CLI uses,
//! so there is no page-only way to change anything. Live regions of a page name the events they
//! follow and the URL of their fresh HTML (`web/static/live.js`); that URL is the page itself
//! with `?part=NAME`, rendered from the same template.

mod admin;
mod assets;
mod chrome;
mod farm;
mod job;
mod jobs;
mod login;
mod overview;
mod pc;
mod setup;
mod stamp;
mod submit;
mod timeline;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, Version, header};
use axum::response::Response;
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{Predicate, SizeAbove};

use idlefarm_protocol::accounts::SETUP_PAGE;

use crate::server::Coordinator;

pub use chrome::{PageError, PageResult};
pub use stamp::Stamp;

/// The page routes and the static files.
pub fn routes() -> Router<Arc<Coordinator>> {
    Router::new()
        .route("/", get(overview::page))
        .route(login::LOGIN_PAGE, get(login::page))
        .route(jobs::JOBS_PAGE, get(jobs::page))
        .route(job::JOB_PAGE, get(job::page))
        .route(SETUP_PAGE, get(setup::page))
        .route(admin::ADMIN_PAGE, get(admin::page))
        .route(submit::SUBMIT_PAGE, get(submit::page))
        .route(submit::STAGED_PAGE, get(submit::staged))
        .route(farm::FARM_PAGE, get(farm::page))
        .route(assets::ROUTE, get(assets::serve))
}

/// The Content-Security-Policy of every answer: scripts, styles and everything else only from
/// this coordinator, never inline; images also as `data:` (none are built, but browsers use them
/// for form controls); no framing, no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Gzips pages, styles, scripts and JSON answers of 1 KiB or more when the browser accepts it (a
/// 1,000-frame job page shrinks about tenfold). Never the event stream (each event must reach
/// the page at once), images, videos, zips or blobs (already compressed, and costly to
/// recompress on a lab's small coordinator).
pub fn compression() -> CompressionLayer<impl Predicate> {
    let text = |_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions| {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        [
            "text/html",
            "text/css",
            "text/javascript",
            "application/json",
            "image/svg+xml",
        ]
        .iter()
        .any(|t| content_type.starts_with(t))
    };
    CompressionLayer::new()
        .gzip(true)
        .compress_when(SizeAbove::new(1024).and(text))
}

/// Adds the security headers to an answer (pages, static files and the API alike).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    for (name, value) in set {
        headers.entry(name).or_insert(value);
    }
    response
}
