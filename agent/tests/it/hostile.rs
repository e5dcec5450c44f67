//! Hostile leases and a coordinator that does not answer (issue 11): a lease the agent cannot
//! even prepare fails with its reason instead of going back to the queue, an agent whose leases
//! keep ending badly slows down instead of asking again at once (while it still takes the other
//! jobs), and an unreachable coordinator is named in the log at each retry and by
//! `idlefarm-agent status`.

use std::sync::Arc;
use std::time::Duration;

use idlefarm_agent::status::{StatusEvent, StatusHub};
use idlefarm_agent::{AgentConfig, AlwaysAvailable};
use idlefarm_protocol::{InputKind, LeaseOutcome};

use crate::coordinator::{
    Agent, TOKEN, add_lease, lease_end, serve_coordinator, start_coordinator, wait_for,
};
use crate::support::*;

/// The name from the reproducer: 10,000 characters and `.pov`.
fn hostile_name() -> String {
    format!("{}.pov", "a".repeat(10_000))
}

#[tokio::test]
async fn a_lease_whose_input_cannot_be_created_fails_with_the_reason_and_does_not_spin() {
    let (url, fake) = start_coordinator().await;
    // Like a coordinator that re-queues the frames of every lease that does not complete.
    fake.lock().unwrap().requeue = true;
    let dir = open_tempdir();
    let name = hostile_name();
    add_lease(
        &fake,
        1,
        ball_scene(false).into_bytes(),
        InputKind::File,
        &name,
        povray_settings(&name, 32, 24, 1),
        vec![1],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(30), |f| lease_end(f, 1)).await;
    assert_eq!(end.outcome, LeaseOutcome::Failed, "{end:?}");
    let message = end.message.unwrap_or_default();
    assert!(
        message.contains("10004 bytes") && message.contains("at most 255"),
        "{message}"
    );
    assert!(message.len() < 300, "the report quotes the whole name");

    // The same lease keeps coming back: the agent waits longer each time instead of spinning.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let work_dir = agent.work_dir.clone();
    agent.shutdown().await.unwrap();
    let fake = fake.lock().unwrap();
    assert!(fake.ends.len() >= 2, "the agent stopped asking for work");
    assert!(
        fake.lease_requests <= 5,
        "{} lease requests in about 4 s",
        fake.lease_requests
    );
    assert!(
        fake.ends
            .iter()
            .all(|(_, e)| e.outcome == LeaseOutcome::Failed),
        "{:?}",
        fake.ends
    );
    assert_eq!(fake.blob_downloads, 0, "the input was downloaded anyway");
    let cached = std::fs::read_dir(work_dir.join("cache")).unwrap().count();
    assert_eq!(cached, 0, "something was stored in the cache");
}

#[tokio::test]
async fn an_agent_slowed_by_a_bad_job_still_renders_the_others() {
    let (url, fake) = start_coordinator().await;
    fake.lock().unwrap().requeue = true;
    let dir = open_tempdir();
    let name = hostile_name();
    add_lease(
        &fake,
        1,
        ball_scene(false).into_bytes(),
        InputKind::File,
        &name,
        povray_settings(&name, 32, 24, 1),
        vec![1],
    );
    add_lease(
        &fake,
        2,
        ball_scene(false).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 32, 24, 2),
        vec![1, 2],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 2)).await;
    assert_eq!(end.outcome, LeaseOutcome::Complete, "{end:?}");
    let first = lease_end(&fake.lock().unwrap(), 1).expect("the bad lease was not reported");
    assert_eq!(first.outcome, LeaseOutcome::Failed);
    agent.shutdown().await.unwrap();
}

/// A loopback port nothing listens on (bound, then freed).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the status socket's snapshot says about the coordinator.
async fn coordinator_problem(socket: &std::path::Path) -> Option<String> {
    match idlefarm_agent::status::read_snapshot(socket).await {
        Ok(StatusEvent::Snapshot {
            coordinator_problem,
            ..
        }) => coordinator_problem,
        other => panic!("no snapshot: {other:?}"),
    }
}

#[tokio::test]
async fn the_status_socket_says_while_the_coordinator_cannot_be_reached() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = open_tempdir();
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    let mut config = AgentConfig::new(&url, TOKEN, dir.path().join("work"));
    config.heartbeat_interval = Duration::from_millis(200);
    config.status = hub;
    // The test machine's disk may be fuller than the 10 % a lab PC keeps free; the disk
    // budget has tests of its own.
    config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(AlwaysAvailable),
        async {
            let _ = stopped.await;
        },
    ));

    let expected = format!("cannot reach the coordinator at {url} (");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let problem = loop {
        if let Some(problem) = coordinator_problem(&socket).await {
            break problem;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no problem reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        problem.starts_with(&expected) && problem.contains("next try in"),
        "{problem}"
    );

    // The coordinator comes up: the problem goes away.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (_, fake) = serve_coordinator(listener);
    wait_for(&fake, Duration::from_secs(20), |f| {
        (!f.heartbeats.is_empty()).then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Some(problem) = coordinator_problem(&socket).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still reported: {problem}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    agent.await.unwrap().unwrap();
    server.abort();
}

#[tokio::test]
async fn the_binary_warns_at_each_retry_and_status_names_the_coordinator() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let url = format!("http://127.0.0.1:{}", free_port());
    let dir = open_tempdir();
    let socket = dir.path().join("status.sock");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idlefarm-agent"))
        .args(["--coordinator", &url, "--policy", "always", "--work-dir"])
        .arg(dir.path().join("work"))
        .arg("--status-socket")
        .arg(&socket)
        .env("IDLEFARM_TOKEN", TOKEN)
        // What a person sees at the default log level.
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let expected = format!("cannot reach the coordinator at {url} (");
    let mut warnings = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while warnings.len() < 2 {
            let line = lines.next_line().await.unwrap().expect("the agent stopped");
            if line.contains(&expected) && line.contains("next try in") {
                warnings.push(line);
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no warning at each retry: {warnings:?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert_ne!(warnings[0], warnings[1]);

    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_idlefarm-agent"))
        .arg("status")
        .arg("--status-socket")
        .arg(&socket)
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{shown}");
    assert!(shown.contains(&format!("problem:  {expected}")), "{shown}");
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
