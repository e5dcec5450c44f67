//! The whole agent ([`idlefarm_agent::run`]) against a small in-process stand-in for the
//! coordinator that speaks the protocol crate's types over real HTTP.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use idlefarm_agent::{AgentConfig, AlwaysAvailable, Availability, ManualPresence, Presence};
use idlefarm_protocol::routes;
use idlefarm_protocol::{
    ErrorBody, HeartbeatRequest, HeartbeatResponse, InputKind, Lease, LeaseEnd, LeaseOutcome,
    LeaseRequest, LeaseResponse, PresenceState, RegisterRequest, RegisterResponse, RenderSettings,
};
use tokio::sync::oneshot;

use crate::support::*;

pub(crate) const TOKEN: &str = "enrol-me";

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) agents: Vec<(i64, String)>,
    pub(crate) registrations: Vec<RegisterRequest>,
    pub(crate) blobs: HashMap<String, Vec<u8>>,
    pub(crate) pending: VecDeque<Lease>,
    pub(crate) heartbeats: Vec<(i64, HeartbeatRequest)>,
    pub(crate) uploads: Vec<(i64, String, Vec<u8>)>,
    pub(crate) ends: Vec<(i64, LeaseEnd)>,
    pub(crate) revoke: Vec<i64>,
    pub(crate) blob_downloads: usize,
    /// Lease requests received, with or without work to hand out.
    pub(crate) lease_requests: usize,
    /// Leases handed out, by id, so an ended one can be offered again.
    pub(crate) handed_out: HashMap<i64, Lease>,
    /// Offer every lease that does not complete again, as a coordinator re-queues its frames.
    pub(crate) requeue: bool,
}

pub(crate) type Shared = Arc<Mutex<Fake>>;
type Answer = (StatusCode, Json<serde_json::Value>);

fn error(status: StatusCode, message: &str) -> Answer {
    let body = ErrorBody {
        error: message.into(),
        field: None,
    };
    (status, Json(serde_json::to_value(body).unwrap()))
}

fn ok(value: impl serde::Serialize) -> Answer {
    (StatusCode::OK, Json(serde_json::to_value(value).unwrap()))
}

fn agent_of(fake: &Fake, headers: &HeaderMap) -> Option<i64> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (id, secret) = value.strip_prefix("Bearer ")?.split_once('.')?;
    let id: i64 = id.parse().ok()?;
    fake.agents
        .iter()
        .any(|(a, s)| *a == id && s == secret)
        .then_some(id)
}

async fn register(State(fake): State<Shared>, Json(req): Json<RegisterRequest>) -> Answer {
    let mut fake = fake.lock().unwrap();
    if req.token != TOKEN {
        return error(StatusCode::UNAUTHORIZED, "unknown enrolment token");
    }
    let id = fake.agents.len() as i64 + 1;
    let secret = format!("secret-{id}");
    fake.agents.push((id, secret.clone()));
    fake.registrations.push(req);
    ok(RegisterResponse {
        agent_id: id,
        secret,
    })
}

async fn heartbeat(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<HeartbeatRequest>,
) -> Answer {
    let mut fake = fake.lock().unwrap();
    let Some(agent) = agent_of(&fake, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    };
    let revoked = req
        .leases
        .iter()
        .copied()
        .filter(|l| fake.revoke.contains(l))
        .collect();
    fake.heartbeats.push((agent, req));
    ok(HeartbeatResponse {
        revoked,
        lease_ttl_secs: 30,
    })
}

async fn lease(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<LeaseRequest>,
) -> Answer {
    let mut fake = fake.lock().unwrap();
    if agent_of(&fake, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    assert_eq!(req.presence, PresenceState::Idle);
    fake.lease_requests += 1;
    let lease = fake.pending.pop_front();
    if let Some(lease) = &lease {
        fake.handed_out.insert(lease.id, lease.clone());
    }
    ok(LeaseResponse {
        lease,
        retry_after_secs: 0,
    })
}

async fn blob(
    State(fake): State<Shared>,
    method: axum::http::Method,
    headers: HeaderMap,
    UrlPath(hash): UrlPath<String>,
) -> Result<Vec<u8>, Answer> {
    let mut fake = fake.lock().unwrap();
    if agent_of(&fake, &headers).is_none() {
        return Err(error(StatusCode::UNAUTHORIZED, "bad credentials"));
    }
    // The agent asks for the size first (HEAD, for its disk budget): not a download.
    if method == axum::http::Method::GET {
        fake.blob_downloads += 1;
    }
    fake.blobs
        .get(&hash)
        .cloned()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such blob"))
}

async fn upload(
    State(fake): State<Shared>,
    headers: HeaderMap,
    UrlPath((lease, frame)): UrlPath<(i64, String)>,
    body: Bytes,
) -> Answer {
    let mut fake = fake.lock().unwrap();
    if agent_of(&fake, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    if fake.ends.iter().any(|(l, _)| *l == lease) || fake.revoke.contains(&lease) {
        return error(StatusCode::CONFLICT, "lease is gone");
    }
    fake.uploads.push((lease, frame, body.to_vec()));
    ok(serde_json::json!({}))
}

async fn end(
    State(fake): State<Shared>,
    headers: HeaderMap,
    UrlPath(lease): UrlPath<i64>,
    Json(end): Json<LeaseEnd>,
) -> Answer {
    let mut fake = fake.lock().unwrap();
    if agent_of(&fake, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "bad credentials");
    }
    if fake.requeue
        && end.outcome != LeaseOutcome::Complete
        && let Some(again) = fake.handed_out.get(&lease).cloned()
    {
        fake.pending.push_back(again);
    }
    fake.ends.push((lease, end));
    ok(serde_json::json!({}))
}

/// Starts the stand-in on 127.0.0.1:0; returns its base URL and state.
pub(crate) async fn start_coordinator() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_coordinator(listener)
}

/// Serves the stand-in on `listener`; returns its base URL and state.
pub(crate) fn serve_coordinator(listener: tokio::net::TcpListener) -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route(routes::AGENT_REGISTER, post(register))
        .route(routes::AGENT_HEARTBEAT, post(heartbeat))
        .route(routes::AGENT_LEASE, post(lease))
        .route(routes::AGENT_BLOB, get(blob))
        .route(routes::AGENT_FRAME, put(upload))
        .route(routes::AGENT_LEASE_END, post(end))
        .with_state(fake.clone());
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

/// A running agent and the means to stop it.
pub(crate) struct Agent {
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub(crate) work_dir: PathBuf,
}

impl Agent {
    pub(crate) fn start(url: &str, work_dir: &Path, presence: Arc<dyn Presence>) -> Agent {
        let mut config = AgentConfig::new(url, TOKEN, work_dir.to_path_buf());
        config.heartbeat_interval = Duration::from_millis(200);
        config.max_suspend = Duration::from_secs(60);
        // The test machine's disk may be fuller than the 10 % a lab PC keeps free; the disk
        // budget has tests of its own.
        config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(idlefarm_agent::run(config, presence, async {
            let _ = stopped.await;
        }));
        Agent {
            stop: Some(stop),
            task,
            work_dir: work_dir.to_path_buf(),
        }
    }

    pub(crate) async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("agent did not shut down")
            .unwrap()
    }
}

/// Adds a lease over `frames` of a job whose input is `input` (saved as a blob).
pub(crate) fn add_lease(
    fake: &Shared,
    id: i64,
    input: Vec<u8>,
    kind: InputKind,
    name: &str,
    settings: RenderSettings,
    frames: Vec<i64>,
) -> String {
    let hash = blake3::hash(&input).to_hex().to_string();
    let mut fake = fake.lock().unwrap();
    fake.blobs.insert(hash.clone(), input);
    fake.pending.push_back(Lease {
        id,
        job_id: id * 10,
        frames,
        input_hash: hash.clone(),
        input_kind: kind,
        input_name: name.into(),
        settings,
        ttl_secs: 30,
    });
    hash
}

pub(crate) async fn wait_for<T>(
    fake: &Shared,
    limit: Duration,
    mut check: impl FnMut(&Fake) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check(&fake.lock().unwrap()) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn lease_end(fake: &Fake, lease: i64) -> Option<LeaseEnd> {
    fake.ends
        .iter()
        .find(|(l, _)| *l == lease)
        .map(|(_, e)| e.clone())
}

fn uploaded_frames(fake: &Fake, lease: i64) -> Vec<String> {
    let mut frames: Vec<String> = fake
        .uploads
        .iter()
        .filter(|(l, _, _)| *l == lease)
        .map(|(_, f, _)| f.clone())
        .collect();
    frames.sort();
    frames
}

#[tokio::test]
async fn agent_renders_a_povray_lease_and_reports_it_complete() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let hash = add_lease(
        &fake,
        1,
        ball_scene(false).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 32, 24, 4),
        vec![1, 2, 3, 4],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 1)).await;
    assert_eq!(end.outcome, LeaseOutcome::Complete, "{end:?}");
    {
        let fake = fake.lock().unwrap();
        assert_eq!(
            uploaded_frames(&fake, 1),
            ["1.png", "2.png", "3.png", "4.png"]
        );
        for (_, _, image) in &fake.uploads {
            assert_eq!(png_size(image), (32, 24));
        }
        let registered = &fake.registrations[0];
        assert!(
            registered
                .renderers
                .iter()
                .any(|r| r.renderer == idlefarm_protocol::Renderer::Povray)
        );
        assert!(
            fake.heartbeats
                .iter()
                .any(|(_, h)| h.presence == PresenceState::Rendering && h.leases == [1])
        );
    }
    let work_dir = agent.work_dir.clone();
    agent.shutdown().await.unwrap();

    assert!(
        work_dir
            .join("cache")
            .join(&hash)
            .join("ball.pov")
            .is_file()
    );
    assert_eq!(
        std::fs::read_dir(work_dir.join("leases")).unwrap().count(),
        0
    );
    let credentials = work_dir.join("credentials.json");
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A restart reuses the saved credentials and the cached input.
    add_lease(
        &fake,
        2,
        ball_scene(false).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 32, 24, 4),
        vec![3, 4],
    );
    let agent = Agent::start(&url, &work_dir, Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 2)).await;
    assert_eq!(end.outcome, LeaseOutcome::Complete, "{end:?}");
    agent.shutdown().await.unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(fake.agents.len(), 1, "the agent enrolled twice");
    assert_eq!(fake.blob_downloads, 1, "the input was downloaded twice");
    assert_eq!(uploaded_frames(&fake, 2), ["3.png", "4.png"]);
}

#[tokio::test]
async fn zip_project_renders_with_includes_beside_the_scene() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("project/scenes/ball.pov", options).unwrap();
    let scene = ball_scene(false).replace(
        "pigment { color rgb <1, 0, 0> }",
        "pigment { color BallColor }",
    );
    write!(zip, "#include \"colors_of_ball.inc\"\n{scene}").unwrap();
    zip.start_file("project/scenes/colors_of_ball.inc", options)
        .unwrap();
    zip.write_all(b"#declare BallColor = rgb <0, 0, 1>;\n")
        .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let mut settings = povray_settings("project/scenes/ball.pov", 32, 24, 2);
    settings.format = idlefarm_protocol::ImageFormat::Jpeg;
    add_lease(
        &fake,
        7,
        bytes,
        InputKind::Zip,
        "project.zip",
        settings,
        vec![1, 2],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 7)).await;
    assert_eq!(end.outcome, LeaseOutcome::Complete, "{end:?}");
    assert_eq!(
        uploaded_frames(&fake.lock().unwrap(), 7),
        ["1.jpg", "2.jpg"]
    );
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn renderer_failure_is_reported_with_its_log() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    add_lease(
        &fake,
        3,
        b"sphere { 0, 1 pigment { colr rgb 1 } }\n".to_vec(),
        InputKind::File,
        "broken.pov",
        povray_settings("broken.pov", 32, 24, 8),
        vec![5, 6, 7, 8],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 3)).await;
    assert_eq!(end.outcome, LeaseOutcome::Failed);
    assert_eq!(
        end.message.as_deref(),
        Some("povray exited with status 1 while rendering frames 5-8")
    );
    assert!(end.log_tail.unwrap().contains("Parse Error"));
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_download_fails_the_lease_after_one_retry() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let hash = add_lease(
        &fake,
        4,
        ball_scene(false).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 32, 24, 4),
        vec![1],
    );
    fake.lock()
        .unwrap()
        .blobs
        .insert(hash.clone(), b"something else".to_vec());
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 4)).await;
    assert_eq!(end.outcome, LeaseOutcome::Failed);
    assert!(end.message.unwrap().contains("does not match its hash"));
    assert_eq!(fake.lock().unwrap().blob_downloads, 2);
    agent.shutdown().await.unwrap();
    assert!(!dir.path().join("cache").join(&hash).exists());
}

#[tokio::test]
async fn revoked_lease_is_abandoned_without_a_report() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    add_lease(
        &fake,
        5,
        ball_scene(true).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 192, 144, 8),
        (1..=8).collect(),
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    wait_for(&fake, Duration::from_secs(60), |f| {
        (!f.uploads.is_empty()).then_some(())
    })
    .await;
    fake.lock().unwrap().revoke.push(5);
    let lease_dir = dir.path().join("leases/5");
    let gone = eventually(Duration::from_secs(10), || !lease_dir.exists()).await;
    assert!(gone, "the revoked lease's output is still there");
    assert!(no_renderer_writes_to(&lease_dir));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lease_end(&fake.lock().unwrap(), 5).is_none());
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_during_a_render_yields_the_lease() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    add_lease(
        &fake,
        6,
        ball_scene(true).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 192, 144, 8),
        (1..=8).collect(),
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    wait_for(&fake, Duration::from_secs(60), |f| {
        (!f.uploads.is_empty()).then_some(())
    })
    .await;
    let lease_dir = dir.path().join("leases/6");
    agent.shutdown().await.unwrap();
    let end = lease_end(&fake.lock().unwrap(), 6).expect("no report");
    assert_eq!(end.outcome, LeaseOutcome::Yield);
    assert!(no_renderer_writes_to(&lease_dir));
}

#[tokio::test]
async fn person_staying_too_long_makes_the_agent_yield() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    add_lease(
        &fake,
        8,
        ball_scene(true).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 192, 144, 8),
        (1..=8).collect(),
    );
    let presence = ManualPresence::new(Availability::Available);
    let mut config = AgentConfig::new(&url, TOKEN, dir.path().to_path_buf());
    config.heartbeat_interval = Duration::from_millis(100);
    config.max_suspend = Duration::from_secs(1);
    // The test machine's disk may be fuller than the 10 % a lab PC keeps free; the disk
    // budget has tests of its own.
    config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(presence.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    wait_for(&fake, Duration::from_secs(60), |f| {
        (!f.uploads.is_empty()).then_some(())
    })
    .await;
    presence.set(Availability::Unavailable(PresenceState::UserPresent));
    wait_for(&fake, Duration::from_secs(10), |f| {
        f.heartbeats
            .iter()
            .any(|(_, h)| h.presence == PresenceState::Suspended && h.leases == [8])
            .then_some(())
    })
    .await;
    let end = wait_for(&fake, Duration::from_secs(15), |f| lease_end(f, 8)).await;
    assert_eq!(end.outcome, LeaseOutcome::Yield);
    // Not rendering and still unavailable: heartbeats say why, and no work is asked for.
    wait_for(&fake, Duration::from_secs(5), |f| {
        f.heartbeats
            .last()
            .filter(|(_, h)| h.presence == PresenceState::UserPresent && h.leases.is_empty())
            .map(|_| ())
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn rejected_saved_credentials_lead_to_one_new_enrolment() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let stale = format!(r#"{{"coordinator":"{url}","agent_id":99,"secret":"old"}}"#);
    std::fs::write(dir.path().join("credentials.json"), stale).unwrap();
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    wait_for(&fake, Duration::from_secs(30), |f| {
        f.heartbeats.iter().any(|(a, _)| *a == 1).then_some(())
    })
    .await;
    agent.shutdown().await.unwrap();
    assert_eq!(fake.lock().unwrap().agents.len(), 1);
    let saved: idlefarm_agent::Credentials = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("credentials.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.agent_id, 1);
}

#[tokio::test]
async fn a_bad_enrolment_token_stops_the_agent_with_a_clear_error() {
    let (url, _fake) = start_coordinator().await;
    let dir = open_tempdir();
    let config = AgentConfig::new(&url, "wrong", dir.path().to_path_buf());
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        idlefarm_agent::run(config, Arc::new(AlwaysAvailable), std::future::pending()),
    )
    .await
    .expect("the agent kept going");
    let err = format!("{:#}", result.unwrap_err());
    assert!(err.contains("enrolment token"), "{err}");
}

#[tokio::test]
async fn agent_waits_for_a_coordinator_that_is_down() {
    // Reserve a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = open_tempdir();
    let agent = Agent::start(
        &format!("http://127.0.0.1:{port}"),
        dir.path(),
        Arc::new(AlwaysAvailable),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!agent.task.is_finished(), "the agent gave up");
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_binary_runs_and_stops_cleanly_on_sigterm() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idlefarm-agent"))
        .args([
            "--coordinator",
            &url,
            "--heartbeat-interval",
            "200ms",
            "--work-dir",
        ])
        .arg(dir.path())
        .env("IDLEFARM_TOKEN", TOKEN)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for(&fake, Duration::from_secs(30), |f| {
        (!f.heartbeats.is_empty()).then_some(())
    })
    .await;
    // SAFETY: plain system call on our own child.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the agent did not stop")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Whether no process has `dir` on its command line any more.
fn no_renderer_writes_to(dir: &Path) -> bool {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().all(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| !String::from_utf8_lossy(&c).contains(&needle))
            .unwrap_or(true)
    })
}
