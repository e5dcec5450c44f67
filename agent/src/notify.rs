//! The desktop companion (`idlefarm-notify`): runs inside a person's desktop session, follows the
//! agent's status socket (see [`crate::status`]) and tells the person, through desktop
//! notifications, when farm work was paused for them and what their PC rendered while they were
//! away.
//!
//! The companion must never get in anyone's way: with no notification server it logs once and
//! carries on reading events; with no agent it waits quietly (backoff up to 30 s) and connects
//! when the agent's socket appears. Showing a notification is blocking D-Bus I/O, so it happens
//! on a blocking thread, one at a time, with a time limit, never on the reader's path.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_rust::{Notification, Timeout, Urgency};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::status::{self, StatusEvent};

/// Summary of the notification shown when a render was stopped for the person.
pub const PAUSED_SUMMARY: &str = "Farm work paused — this PC is yours";

/// Body of the notification shown when a render was stopped for the person.
pub const PAUSED_BODY: &str = "idlefarm stopped a render the moment you came back. \
                               It will not use this PC while you are here.";

/// Summary of the notification about the work done while the person was away.
pub const WELCOME_SUMMARY: &str = "Welcome back";

/// Name the notifications are shown under.
pub const APP_NAME: &str = "idlefarm";

/// How long a notification stays on screen (servers may ignore it).
const DISPLAY_TIME: Duration = Duration::from_secs(8);

/// How long the notification server gets to answer before the companion stops waiting.
const SHOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Notifications waiting to be shown; more are dropped, they would be stale anyway.
const QUEUE: usize = 4;

/// First wait before connecting again; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// A connection that lasted this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(5);

/// Longest wait between attempts to reach the agent.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A notification's text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    summary: String,
    body: String,
}

/// What to tell the person about `event`, if anything.
fn message_for(event: &StatusEvent) -> Option<Message> {
    match event {
        StatusEvent::Paused { .. } => Some(Message {
            summary: PAUSED_SUMMARY.to_owned(),
            body: PAUSED_BODY.to_owned(),
        }),
        StatusEvent::Welcome { frames, jobs } if *frames > 0 => {
            let rendered = match jobs {
                0 => count(*frames, "frame"),
                _ => format!("{} for {}", count(*frames, "frame"), count(*jobs, "job")),
            };
            Some(Message {
                summary: WELCOME_SUMMARY.to_owned(),
                body: format!("While you were away, this PC rendered {rendered}."),
            })
        }
        _ => None,
    }
}

fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The socket the companion follows by default: the system agent's
/// ([`status::SYSTEM_SOCKET_PATH`]) unless only a per-user agent's
/// ([`status::default_socket_path`]) exists.
pub fn default_companion_socket() -> PathBuf {
    let system = PathBuf::from(status::SYSTEM_SOCKET_PATH);
    let user = status::default_socket_path();
    if !system.exists() && user.exists() {
        user
    } else {
        system
    }
}

/// Makes this the only companion of the user: holds an exclusive lock on
/// `idlefarm-notify.lock` in `runtime_dir` (the user's `$XDG_RUNTIME_DIR`) for as long as the
/// returned file lives. `Ok(None)` when another companion holds it, so installing both the XDG
/// autostart entry and the systemd user unit never shows a notification twice.
pub fn claim_single_instance(runtime_dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(runtime_dir.join("idlefarm-notify.lock"))?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(lock));
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(err)
    }
}

/// Follows the agent's status socket at `socket` and shows notifications until `shutdown`
/// completes. Waits (quietly, with backoff) while the agent is not there.
pub async fn run_companion(
    socket: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (notifications, queue) = mpsc::channel(QUEUE);
    let shower = tokio::spawn(show_notifications(queue));
    tokio::select! {
        () = follow_agent(&socket, notifications) => {}
        () = shutdown => tracing::debug!("stopping"),
    }
    shower.abort();
    Ok(())
}

/// Connects to the agent again and again, forwarding notifications; never returns.
async fn follow_agent(socket: &Path, notifications: mpsc::Sender<Message>) {
    let mut delay = FIRST_BACKOFF;
    let mut said_waiting = false;
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => {
                tracing::info!("following the agent at {}", socket.display());
                let connected = tokio::time::Instant::now();
                match read_events(stream, &notifications).await {
                    Ok(()) => tracing::info!(
                        "the agent at {} went away; waiting for it to come back",
                        socket.display()
                    ),
                    Err(err) => tracing::info!(
                        "lost the agent at {} ({err}); waiting for it to come back",
                        socket.display()
                    ),
                }
                said_waiting = true;
                // An agent that restarts gets followed again at once; one that keeps hanging
                // up keeps the backoff growing.
                if connected.elapsed() >= STABLE_CONNECTION {
                    delay = FIRST_BACKOFF;
                }
            }
            Err(err) if !said_waiting => {
                tracing::info!("waiting for the agent at {} ({err})", socket.display());
                said_waiting = true;
            }
            Err(err) => {
                tracing::debug!(
                    "the agent at {} is still not there ({err})",
                    socket.display()
                );
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// Reads events until the agent closes the connection.
async fn read_events(
    stream: UnixStream,
    notifications: &mpsc::Sender<Message>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while status::read_line(&mut reader, &mut line).await?.is_some() {
        let event = match serde_json::from_slice::<StatusEvent>(&line) {
            Ok(event) => event,
            // A newer agent may send events this companion does not know yet.
            Err(err) => {
                tracing::debug!("ignoring a status line ({err})");
                continue;
            }
        };
        match &event {
            StatusEvent::Snapshot {
                presence, reason, ..
            } => tracing::debug!("the agent is {presence:?}: {reason}"),
            StatusEvent::Paused { reason } => tracing::info!("farm work paused: {reason}"),
            other => tracing::debug!("{other:?}"),
        }
        if let Some(message) = message_for(&event)
            && notifications.try_send(message).is_err()
        {
            tracing::debug!("too many notifications waiting; dropping one");
        }
    }
    Ok(())
}

/// Shows queued notifications one at a time, each on a blocking thread with a time limit.
async fn show_notifications(mut queue: mpsc::Receiver<Message>) {
    let mut failing = false;
    // A show that outlived its time limit; while it hangs, new notifications are dropped so
    // blocking threads cannot pile up behind a wedged server.
    let mut hung: Option<JoinHandle<()>> = None;
    while let Some(message) = queue.recv().await {
        if hung.as_ref().is_some_and(|show| !show.is_finished()) {
            tracing::debug!("the notification server is still busy; not showing {message:?}");
            continue;
        }
        hung = None;
        let (done, outcome) = tokio::sync::oneshot::channel();
        let task = tokio::task::spawn_blocking(move || {
            let _ = done.send(show(&message));
        });
        let why = match tokio::time::timeout(SHOW_TIMEOUT, outcome).await {
            Ok(Ok(Ok(()))) => {
                if failing {
                    tracing::info!("desktop notifications work again");
                    failing = false;
                }
                continue;
            }
            Ok(Ok(Err(err))) => err.to_string(),
            Ok(Err(_)) => "notify-rust panicked".to_owned(),
            Err(_) => {
                hung = Some(task);
                format!("the notification server did not answer within {SHOW_TIMEOUT:?}")
            }
        };
        if failing {
            tracing::debug!("cannot show a notification: {why}");
        } else {
            tracing::info!("cannot show desktop notifications ({why}); carrying on without them");
            failing = true;
        }
    }
}

/// Blocking: talks to the session bus.
fn show(message: &Message) -> notify_rust::error::Result<()> {
    Notification::new()
        .appname(APP_NAME)
        .summary(&message.summary)
        .body(&message.body)
        .urgency(Urgency::Normal)
        .timeout(Timeout::Milliseconds(DISPLAY_TIME.as_millis() as u32))
        .show()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_and_welcome_become_notifications_the_rest_does_not() {
        let paused = message_for(&StatusEvent::Paused {
            reason: "input on :0".into(),
        })
        .unwrap();
        assert_eq!(paused.summary, PAUSED_SUMMARY);
        assert_eq!(paused.body, PAUSED_BODY);

        let welcome =
            |frames, jobs| message_for(&StatusEvent::Welcome { frames, jobs }).map(|m| m.body);
        assert_eq!(
            welcome(143, 3).as_deref(),
            Some("While you were away, this PC rendered 143 frames for 3 jobs.")
        );
        assert_eq!(
            welcome(1, 1).as_deref(),
            Some("While you were away, this PC rendered 1 frame for 1 job.")
        );
        assert_eq!(welcome(0, 0), None);

        for quiet in [
            StatusEvent::Resumed,
            StatusEvent::Yielded,
            StatusEvent::snapshot(idlefarm_protocol::PresenceState::Idle, "nobody here"),
        ] {
            assert_eq!(message_for(&quiet), None);
        }
    }
}
