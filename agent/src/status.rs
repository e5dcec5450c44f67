//! The agent's local status socket: a Unix socket that tells whoever connects what the agent is
//! doing (`idlefarm-agent status`) and streams [`StatusEvent`]s as JSON lines to the desktop
//! companion (`idlefarm-notify`), which turns them into notifications for the person at the PC.
//!
//! Every connection first receives the current [`StatusEvent::Snapshot`], then the events meant
//! for a person ([`StatusEvent::Paused`], [`StatusEvent::Welcome`]) published in the last
//! [`REPLAY_WINDOW`], then live events. The replay exists because the companion starts with the
//! desktop session, a few seconds *after* the login that paused the render and triggered the
//! welcome. A client that writes the line `metrics` gets the agent's metrics
//! ([`crate::metrics`]) as one more event, for itself alone; otherwise the socket only writes,
//! and a slow client misses events rather than slowing the agent down.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use idlefarm_protocol::PresenceState;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::metrics::{AgentMetrics, METRICS_REQUEST};

/// Socket of an agent running as root (the system service).
pub const SYSTEM_SOCKET_PATH: &str = "/run/idlefarm-agent/status.sock";

/// How long events meant for a person are replayed to clients that connect later.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(120);

/// Longest line a status client accepts; events are a few hundred bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Events a client can miss before the hub drops the oldest for it.
const CHANNEL_CAPACITY: usize = 64;

/// Most person events kept for replay.
const MAX_REPLAY: usize = 8;

/// Longest request line a client may send (requests are one word).
const MAX_REQUEST: usize = 1024;

/// One line on the status socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum StatusEvent {
    /// Sent first on every connection: what the agent is doing and why, for
    /// `idlefarm-agent status` and the companion.
    Snapshot {
        /// The agent's presence state.
        presence: PresenceState,
        /// Why the agent is in that state, for a person.
        reason: String,
        /// What each presence source last said.
        sources: Vec<SourceStatus>,
        /// Frames rendered since the last person's session started (filled in by the hub).
        frames_since_login: u64,
        /// Jobs those frames belong to (filled in by the hub).
        jobs_since_login: u64,
        /// While the coordinator cannot be reached: why, and when the agent tries again (filled
        /// in by the hub). Absent for older agents and while all is well.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coordinator_problem: Option<String>,
        /// The coordinator in use and how it was found (filled in by the hub). Absent for
        /// older agents and before it is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coordinator: Option<String>,
    },
    /// A render was stopped because a person came back.
    Paused {
        /// What showed the person was back, e.g. "keyboard or mouse input on :0".
        reason: String,
    },
    /// The render continued (the person left before the maximum suspend time).
    Resumed,
    /// The render was ended and its work given back.
    Yielded,
    /// The agent's metrics in the Prometheus text format; sent only to a client that asked
    /// with a [`METRICS_REQUEST`] line.
    Metrics {
        /// The exposition.
        text: String,
    },
    /// A person's session started; the counts cover the time since the previous person's
    /// session ended.
    Welcome {
        /// Frames rendered while nobody was here.
        frames: u64,
        /// Jobs those frames belong to.
        jobs: u64,
    },
}

impl StatusEvent {
    /// A snapshot with no sources and zero counts.
    pub fn snapshot(presence: PresenceState, reason: impl Into<String>) -> StatusEvent {
        StatusEvent::Snapshot {
            presence,
            reason: reason.into(),
            sources: Vec::new(),
            frames_since_login: 0,
            jobs_since_login: 0,
            coordinator_problem: None,
            coordinator: None,
        }
    }

    /// Whether the event is news for the person at the PC, worth replaying to late clients.
    fn is_for_person(&self) -> bool {
        matches!(
            self,
            StatusEvent::Paused { .. } | StatusEvent::Welcome { .. }
        )
    }
}

/// What one presence source last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source, e.g. `logind`, `x11 :0`, `cpu`.
    pub source: String,
    /// Its reading for a person, e.g. "idle 3m12s" or "unknown: cannot reach the system bus".
    pub reading: String,
}

impl SourceStatus {
    /// A source and its reading.
    pub fn new(source: impl Into<String>, reading: impl Into<String>) -> SourceStatus {
        SourceStatus {
            source: source.into(),
            reading: reading.into(),
        }
    }
}

/// Fans status events out to every client of the status socket. Cheap to clone; clones share
/// the same clients, snapshot and counts.
#[derive(Clone)]
pub struct StatusHub {
    inner: Arc<Inner>,
}

struct Inner {
    events: broadcast::Sender<StatusEvent>,
    state: Mutex<HubState>,
    metrics: AgentMetrics,
}

struct HubState {
    snapshot: StatusEvent,
    /// Person events of the last [`REPLAY_WINDOW`], oldest first.
    recent: VecDeque<(Instant, StatusEvent)>,
    /// Frames uploaded since the last person arrived.
    frames: u64,
    /// Jobs of those frames.
    jobs: HashSet<i64>,
    /// Why the coordinator cannot be reached, while it cannot.
    coordinator_problem: Option<String>,
    /// The coordinator in use and how it was found.
    coordinator: Option<String>,
}

impl Default for StatusHub {
    fn default() -> Self {
        StatusHub::new()
    }
}

impl std::fmt::Debug for StatusHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHub")
            .field("clients", &self.inner.events.receiver_count())
            .finish_non_exhaustive()
    }
}

impl StatusHub {
    /// A hub with no clients, an `idle` snapshot and zero counts.
    pub fn new() -> StatusHub {
        let (events, _) = broadcast::channel(CHANNEL_CAPACITY);
        StatusHub {
            inner: Arc::new(Inner {
                events,
                state: Mutex::new(HubState {
                    snapshot: StatusEvent::snapshot(PresenceState::Idle, "starting"),
                    recent: VecDeque::new(),
                    frames: 0,
                    jobs: HashSet::new(),
                    coordinator_problem: None,
                    coordinator: None,
                }),
                metrics: AgentMetrics::new(),
            }),
        }
    }

    /// The agent's metrics, answered to a [`METRICS_REQUEST`] on the socket.
    pub fn metrics(&self) -> &AgentMetrics {
        &self.inner.metrics
    }

    /// Binds the socket (removing a stale one; parent dir created 0755; the socket made
    /// world-connectable 0666 because companions run as the desktop user while the agent may run
    /// as root — events carry no secrets) and serves until the returned task is aborted.
    ///
    /// Fails with `AddrInUse` when another process still serves `path`. Must be called from
    /// within a tokio runtime. Aborting the task disconnects every client and removes the socket.
    pub fn serve(&self, path: &Path) -> io::Result<JoinHandle<()>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
        }
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        tracing::debug!("status socket at {}", path.display());
        let guard = RemoveOnDrop(path.to_owned());
        let hub = self.clone();
        Ok(tokio::spawn(async move {
            let _guard = guard;
            // Dropped with this task on abort, which ends every client's task too.
            let mut clients = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let (first, events) = hub.subscribe();
                            clients.spawn(serve_client(stream, first, events, hub.clone()));
                        }
                        Err(err) => {
                            // Usually out of file descriptors: wait instead of spinning.
                            tracing::warn!("status socket: cannot accept a client: {err}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                    Some(_) = clients.join_next(), if !clients.is_empty() => {}
                }
            }
        }))
    }

    /// Sends an event to every connected client (never blocks; slow clients drop events).
    pub fn publish(&self, event: StatusEvent) {
        match event {
            StatusEvent::Paused { .. } => {
                self.metrics().renderer_stopped(std::time::Instant::now())
            }
            StatusEvent::Yielded => self.metrics().yielded(),
            _ => {}
        }
        let mut state = self.state();
        if event.is_for_person() {
            let now = Instant::now();
            state.prune(now);
            if state.recent.len() == MAX_REPLAY {
                state.recent.pop_front();
            }
            state.recent.push_back((now, event.clone()));
        }
        // Sent under the lock so a connecting client sees each event exactly once: either in
        // its replay or on its channel. Fails only when nobody listens.
        let _ = self.inner.events.send(event);
    }

    /// Replaces the snapshot new connections receive first. Its `frames_since_login` and
    /// `jobs_since_login` are filled in from the hub's own counts when sent.
    pub fn set_snapshot(&self, snapshot: StatusEvent) {
        self.state().snapshot = snapshot;
    }

    /// Records why the coordinator cannot be reached (`None` once it answers again), for the
    /// snapshot's `coordinator_problem`.
    pub fn set_coordinator_problem(&self, problem: Option<String>) {
        self.state().coordinator_problem = problem;
    }

    /// Records the coordinator in use and how it was found, for the snapshot's `coordinator`.
    pub fn set_coordinator(&self, coordinator: String) {
        self.state().coordinator = Some(coordinator);
    }

    /// Counts an uploaded frame of `job_id` towards the next [`StatusEvent::Welcome`].
    pub fn frame_rendered(&self, job_id: i64) {
        self.metrics().frame_uploaded();
        let mut state = self.state();
        state.frames += 1;
        state.jobs.insert(job_id);
    }

    /// A person's session appeared: publishes Welcome{frames, jobs} for the time away and
    /// resets the counts.
    pub fn person_arrived(&self) {
        let welcome = {
            let mut state = self.state();
            let welcome = StatusEvent::Welcome {
                frames: state.frames,
                jobs: state.jobs.len() as u64,
            };
            state.frames = 0;
            state.jobs.clear();
            welcome
        };
        self.publish(welcome);
    }

    /// Frames uploaded since the last person's session started, and the jobs they belong to.
    pub fn counts_since_login(&self) -> (u64, u64) {
        let state = self.state();
        (state.frames, state.jobs.len() as u64)
    }

    /// The events a new client receives first, and its channel for the rest.
    fn subscribe(&self) -> (Vec<StatusEvent>, broadcast::Receiver<StatusEvent>) {
        let mut state = self.state();
        state.prune(Instant::now());
        let mut snapshot = state.snapshot.clone();
        if let StatusEvent::Snapshot {
            frames_since_login,
            jobs_since_login,
            coordinator_problem,
            coordinator,
            ..
        } = &mut snapshot
        {
            // Fresher than whatever the last set_snapshot carried.
            *frames_since_login = state.frames;
            *jobs_since_login = state.jobs.len() as u64;
            coordinator_problem.clone_from(&state.coordinator_problem);
            coordinator.clone_from(&state.coordinator);
        }
        let mut first = vec![snapshot];
        first.extend(state.recent.iter().map(|(_, event)| event.clone()));
        (first, self.inner.events.subscribe())
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HubState {
    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.recent.front() {
            if now.duration_since(*at) < REPLAY_WINDOW {
                break;
            }
            self.recent.pop_front();
        }
    }
}

/// Removes the socket file when the serving task ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes a socket left behind by an agent that is gone; refuses to touch anything else.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another agent serves {}", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// Writes `first`, then every event from `events`, until the client goes away; answers a
/// [`METRICS_REQUEST`] line with a [`StatusEvent::Metrics`] for this client alone.
async fn serve_client(
    stream: UnixStream,
    first: Vec<StatusEvent>,
    mut events: broadcast::Receiver<StatusEvent>,
    hub: StatusHub,
) {
    let (mut reader, mut writer) = stream.into_split();
    for event in &first {
        if write_event(&mut writer, event).await.is_err() {
            return;
        }
    }
    let mut chunk = [0u8; 256];
    let mut said = Vec::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if write_event(&mut writer, &event).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("a status client is slow; it missed {missed} events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // Reading notices when clients hang up, and hears the rare request.
            read = reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    said.extend_from_slice(&chunk[..n]);
                    while let Some(end) = said.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = said.drain(..=end).collect();
                        if line.trim_ascii() == METRICS_REQUEST.as_bytes() {
                            let text = hub.metrics().render();
                            if write_event(&mut writer, &StatusEvent::Metrics { text }).await.is_err() {
                                return;
                            }
                        }
                    }
                    if said.len() > MAX_REQUEST {
                        return;
                    }
                }
            },
        }
    }
}

async fn write_event(
    writer: &mut (impl AsyncWriteExt + Unpin),
    event: &StatusEvent,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    writer.write_all(&line).await
}

/// Reads one event line; `Ok(None)` at the end of the stream. Lines longer than [`MAX_LINE`]
/// are an error.
pub(crate) async fn read_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<Option<()>> {
    line.clear();
    let read = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a status line is longer than {MAX_LINE} bytes"),
            ));
        }
        // The stream ended in the middle of a line.
        return Ok(None);
    }
    line.pop();
    Ok(Some(()))
}

/// Default socket path of an agent with the default work dir: [`SYSTEM_SOCKET_PATH`] when root,
/// else `$XDG_RUNTIME_DIR/idlefarm-agent.sock`, or `status.sock` in the agent's default work dir
/// ([`idlefarm_runtime::default_agent_work_dir`]) when there is no runtime dir.
pub fn default_socket_path() -> PathBuf {
    if idlefarm_runtime::is_root() {
        return PathBuf::from(SYSTEM_SOCKET_PATH);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(runtime) => PathBuf::from(runtime).join("idlefarm-agent.sock"),
        None => idlefarm_runtime::default_agent_work_dir().join("status.sock"),
    }
}

/// The socket of the agent whose work dir is `work_dir` when none is given: the
/// [`default_socket_path`] for the default work dir, else `status.sock` inside the work dir.
/// Two agents on one host differ in their work dirs (they must: credentials and cache live
/// there), so each gets its own socket, and `idlefarm-agent status --work-dir D` finds it.
pub fn socket_path_for(work_dir: &Path) -> PathBuf {
    if work_dir == idlefarm_runtime::default_agent_work_dir() {
        default_socket_path()
    } else {
        work_dir.join("status.sock")
    }
}

/// Connects to the socket and returns the snapshot (for `idlefarm-agent status`).
pub async fn read_snapshot(path: &Path) -> io::Result<StatusEvent> {
    let read = async {
        let stream = UnixStream::connect(path).await?;
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        if read_line(&mut reader, &mut line).await?.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the agent closed the status socket without a snapshot",
            ));
        }
        match serde_json::from_slice(&line)? {
            snapshot @ StatusEvent::Snapshot { .. } => Ok(snapshot),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the agent sent {other:?} instead of a snapshot"),
            )),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the agent at {} did not answer", path.display()),
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_have_stable_json_shapes() {
        let cases = [
            (
                StatusEvent::Snapshot {
                    presence: PresenceState::UserPresent,
                    reason: "alice is logged in".into(),
                    sources: vec![SourceStatus::new(
                        "logind",
                        "1 user session: alice (x11, seat0, active)",
                    )],
                    frames_since_login: 5,
                    jobs_since_login: 1,
                    coordinator_problem: None,
                    coordinator: None,
                },
                json!({
                    "event": "snapshot",
                    "presence": "user-present",
                    "reason": "alice is logged in",
                    "sources": [{"source": "logind", "reading": "1 user session: alice (x11, seat0, active)"}],
                    "frames_since_login": 5,
                    "jobs_since_login": 1,
                }),
            ),
            (
                StatusEvent::Paused {
                    reason: "input on :0".into(),
                },
                json!({"event": "paused", "reason": "input on :0"}),
            ),
            (StatusEvent::Resumed, json!({"event": "resumed"})),
            (StatusEvent::Yielded, json!({"event": "yielded"})),
            (
                StatusEvent::Welcome {
                    frames: 143,
                    jobs: 3,
                },
                json!({"event": "welcome", "frames": 143, "jobs": 3}),
            ),
        ];
        for (event, shape) in cases {
            assert_eq!(serde_json::to_value(&event).unwrap(), shape);
            assert_eq!(serde_json::from_value::<StatusEvent>(shape).unwrap(), event);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_events_rejected() {
        let event: StatusEvent =
            serde_json::from_str(r#"{"event":"welcome","frames":1,"jobs":1,"seconds":60}"#)
                .unwrap();
        assert_eq!(event, StatusEvent::Welcome { frames: 1, jobs: 1 });
        assert!(serde_json::from_str::<StatusEvent>(r#"{"event":"fireworks"}"#).is_err());
    }

    /// Reads events from a client of `hub` until `count` arrived.
    async fn read_events(reader: &mut BufReader<UnixStream>, count: usize) -> Vec<StatusEvent> {
        let mut events = Vec::new();
        let mut line = Vec::new();
        while events.len() < count {
            read_line(reader, &mut line).await.unwrap().unwrap();
            events.push(serde_json::from_slice(&line).unwrap());
        }
        events
    }

    async fn connect(path: &Path) -> BufReader<UnixStream> {
        BufReader::new(UnixStream::connect(path).await.unwrap())
    }

    #[tokio::test]
    async fn welcome_counts_frames_and_jobs_since_the_last_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let hub = StatusHub::new();
        let server = hub.serve(&path).unwrap();
        let mut client = connect(&path).await;
        read_events(&mut client, 1).await;

        for job in [7, 7, 9, 7, 12] {
            hub.frame_rendered(job);
        }
        hub.person_arrived();
        hub.frame_rendered(9);
        hub.person_arrived();
        hub.person_arrived();
        assert_eq!(
            read_events(&mut client, 3).await,
            [
                StatusEvent::Welcome { frames: 5, jobs: 3 },
                StatusEvent::Welcome { frames: 1, jobs: 1 },
                StatusEvent::Welcome { frames: 0, jobs: 0 },
            ]
        );
        server.abort();
    }

    #[tokio::test]
    async fn clients_get_the_snapshot_first_then_live_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/status.sock");
        let hub = StatusHub::new();
        hub.set_snapshot(StatusEvent::Snapshot {
            presence: PresenceState::Rendering,
            reason: "nobody is logged in".into(),
            sources: vec![SourceStatus::new("cpu", "4% other use")],
            frames_since_login: 0,
            jobs_since_login: 0,
            coordinator_problem: None,
            coordinator: None,
        });
        let server = hub.serve(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o666);
        assert_eq!(mode(path.parent().unwrap()), 0o755);

        hub.frame_rendered(4);
        hub.frame_rendered(4);
        let mut first = connect(&path).await;
        let mut second = connect(&path).await;
        for client in [&mut first, &mut second] {
            assert_eq!(
                read_events(client, 1).await,
                [StatusEvent::Snapshot {
                    presence: PresenceState::Rendering,
                    reason: "nobody is logged in".into(),
                    sources: vec![SourceStatus::new("cpu", "4% other use")],
                    frames_since_login: 2,
                    jobs_since_login: 1,
                    coordinator_problem: None,
                    coordinator: None,
                }]
            );
        }
        hub.publish(StatusEvent::Resumed);
        hub.publish(StatusEvent::Yielded);
        for client in [&mut first, &mut second] {
            assert_eq!(
                read_events(client, 2).await,
                [StatusEvent::Resumed, StatusEvent::Yielded]
            );
        }
        let snapshot = read_snapshot(&path).await.unwrap();
        assert!(matches!(
            snapshot,
            StatusEvent::Snapshot {
                frames_since_login: 2,
                ..
            }
        ));

        server.abort();
        let _ = server.await;
        assert!(!path.exists(), "the socket is removed when serving stops");
        let mut line = Vec::new();
        assert!(read_line(&mut first, &mut line).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn late_clients_get_recent_person_events_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let hub = StatusHub::new();
        let server = hub.serve(&path).unwrap();
        hub.frame_rendered(1);
        hub.publish(StatusEvent::Paused {
            reason: "alice logged in".into(),
        });
        hub.publish(StatusEvent::Yielded);
        hub.person_arrived();

        let mut client = connect(&path).await;
        let events = read_events(&mut client, 3).await;
        assert_eq!(
            events[1..],
            [
                StatusEvent::Paused {
                    reason: "alice logged in".into()
                },
                StatusEvent::Welcome { frames: 1, jobs: 1 },
            ]
        );
        server.abort();
    }

    #[test]
    fn replay_forgets_events_older_than_the_window() {
        let hub = StatusHub::new();
        hub.publish(StatusEvent::Paused {
            reason: "old".into(),
        });
        hub.person_arrived();
        let mut state = hub.state();
        let published = state.recent[0].0;
        state.prune(published + REPLAY_WINDOW - Duration::from_millis(1));
        assert_eq!(state.recent.len(), 2);
        state.prune(published + REPLAY_WINDOW);
        assert!(
            !state
                .recent
                .iter()
                .any(|(_, event)| matches!(event, StatusEvent::Paused { .. })),
            "the paused event is forgotten"
        );
    }

    #[tokio::test]
    async fn snapshots_say_while_the_coordinator_cannot_be_reached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let hub = StatusHub::new();
        let server = hub.serve(&path).unwrap();
        let problem =
            "cannot reach the coordinator at http://farm:7870 (timed out); next try in 8s";
        hub.set_coordinator_problem(Some(problem.into()));
        let snapshot = read_snapshot(&path).await.unwrap();
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["coordinator_problem"], problem);
        hub.set_coordinator_problem(None);
        let snapshot = read_snapshot(&path).await.unwrap();
        let json = serde_json::to_value(&snapshot).unwrap();
        assert!(json.get("coordinator_problem").is_none(), "{json}");
        server.abort();
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let hub = StatusHub::new();
        let server = hub.serve(&path).unwrap();
        let err = StatusHub::new().serve(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(read_snapshot(&path).await.is_ok());
        server.abort();

        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").unwrap();
        assert!(StatusHub::new().serve(&file).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
