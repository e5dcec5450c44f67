//! The web app: pages rendered on the server from askama templates (`web/templates/`, escaped by
//! default), the static files of `web/static/` embedded in the binary, and the security headers
//! every answer carries.
//!
//! Pages only read, through the same coordinator operations the JSON API answers from. Every
//! action a page offers is a form that `web/static/forms.js` sends to the HTTP API the CLI uses,
//! so there is no page-only way to change anything. Live regions of a page name the events they
//! follow and the URL of their fresh HTML (`web/static/live.js`); that URL is the page itself
//! with `?part=NAME`, rendered from the same template.

mod assets;
mod chrome;
mod farm;
mod login;
mod overview;
mod pc;
mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::server::Coordinator;

pub use chrome::{PageError, PageResult};

/// The page routes and the static files.
pub fn routes() -> Router<Arc<Coordinator>> {
    Router::new()
        .route("/", get(overview::page))
        .route(login::LOGIN_PAGE, get(login::page))
        .route(farm::FARM_PAGE, get(farm::page))
        .route(assets::ROUTE, get(assets::serve))
}

/// The Content-Security-Policy of every answer: scripts, styles and everything else only from
/// this coordinator, never inline; images also as `data:` (none are built, but browsers use them
/// for form controls); no framing, no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

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
