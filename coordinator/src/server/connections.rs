//! The server's connection loop: accepts connections from a listener (plain TCP or TLS) and
//! serves HTTP/1.1 on each until shutdown, then lets every open connection finish its request.
//! What `axum::serve` does, with one setting of our own: each connection's read buffer grows to
//! at most [`MAX_READ_BUFFER`]. Left at hyper's default (about 400 KiB), a connection that once
//! carried a frame upload keeps a buffer of that size for as long as it stays open; on a campus
//! where thousands of agents hold keep-alive connections, that was most of the coordinator's
//! memory.

use std::future::Future;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::Listener;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// The largest read buffer of a connection: a request's head must fit in it; bodies stream
/// through it in pieces of at most this size.
pub(crate) const MAX_READ_BUFFER: usize = 64 * 1024;

/// Serves `app` on every connection `listener` accepts until `shutdown` resolves, then waits
/// for the open connections to finish their requests.
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_READ_BUFFER);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // `accept` retries by itself on errors such as running out of file descriptors.
        let (io, _addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Adds `Connection: close` to an error answer to a request that carried a body. The handler
/// may have refused it before reading the body (a frame for a lease no longer held), and the
/// connection then cannot serve another request; said so, the client does not send its next
/// request on a connection about to close, where it would fail.
pub(crate) async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let declared = (headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let has_body =
        declared.is_some_and(|len| len > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        (response.headers_mut()).insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
