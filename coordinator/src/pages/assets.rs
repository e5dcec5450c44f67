//! The web app's static files (`web/static/`), compiled into the binary: no build step, nothing
//! to install beside the coordinator. Each answer carries an ETag so browsers revalidate cheaply.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Route of the static files.
pub const ROUTE: &str = "/static/{file}";

/// Every static file: (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../web/static/app.css"),
    ),
    ("app.js", JS, include_bytes!("../../../web/static/app.js")),
    ("live.js", JS, include_bytes!("../../../web/static/live.js")),
    (
        "forms.js",
        JS,
        include_bytes!("../../../web/static/forms.js"),
    ),
    ("ago.js", JS, include_bytes!("../../../web/static/ago.js")),
    ("grid.js", JS, include_bytes!("../../../web/static/grid.js")),
    (
        "repeat.js",
        JS,
        include_bytes!("../../../web/static/repeat.js"),
    ),
    (
        "upload.js",
        JS,
        include_bytes!("../../../web/static/upload.js"),
    ),
    ("farm.js", JS, include_bytes!("../../../web/static/farm.js")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../web/static/favicon.svg"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// A short hash over every static file: pages link `/static/app.js?v=VERSION`, so a new binary's
/// files are never mixed with cached old ones.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = blake3::Hasher::new();
    for (name, _, bytes) in FILES {
        hasher.update(name.as_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().to_hex()[..12].to_owned()
});

/// `GET /static/{file}`.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = format!("\"{}\"", *VERSION);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(*bytes))
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}
