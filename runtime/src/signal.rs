//! The signal that ends a long-running binary: Ctrl-C in a terminal or SIGTERM from systemd
//! (or from `idlefarm up`, which stops its local agent that way).

use std::task::Poll;

use tokio::signal::unix::{SignalKind, signal};

/// Completes on Ctrl-C (SIGINT) or SIGTERM. Listening starts when it is first polled, so it can
/// be created outside a runtime.
pub async fn shutdown_signal() {
    let mut listeners = Vec::new();
    for (kind, name) in [
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::terminate(), "SIGTERM"),
    ] {
        match signal(kind) {
            Ok(listener) => listeners.push(listener),
            Err(err) => tracing::warn!("cannot listen for {name}: {err}"),
        }
    }
    if listeners.is_empty() {
        // Nothing can be heard; the process ends only when killed.
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        if listeners.iter_mut().any(|l| l.poll_recv(cx).is_ready()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn completes_on_sigterm_and_on_sigint_and_not_before() {
        for signo in [libc::SIGTERM, libc::SIGINT] {
            let waiting = shutdown_signal();
            tokio::pin!(waiting);
            // The first poll installs the handlers (so the signal below does not kill the test).
            let early = tokio::time::timeout(Duration::from_millis(50), &mut waiting).await;
            assert!(early.is_err(), "completed before signal {signo}");
            // SAFETY: plain system call sending a signal to this process.
            assert_eq!(unsafe { libc::kill(libc::getpid(), signo) }, 0);
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .unwrap_or_else(|_| panic!("signal {signo} was not noticed"));
        }
    }
}
