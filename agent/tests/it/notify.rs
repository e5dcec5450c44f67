//! The desktop companion end to end: a [`StatusHub`] serving a temp socket, the real
//! `idlefarm-notify` binary following it, and python-dbusmock's `notification_daemon` template on
//! a private session bus standing in for the desktop's notification server.
//!
//! The companion runs as a child process because notify-rust finds the session bus through
//! `DBUS_SESSION_BUS_ADDRESS`, which a multithreaded test must not set on itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use idlefarm_agent::status::{StatusEvent, StatusHub};

use crate::dbus_support::{DbusMock, PrivateBus};
use crate::support::eventually;

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";

/// How long anything in these tests may take to happen.
const LIMIT: Duration = Duration::from_secs(20);

/// A running `idlefarm-notify`, killed on drop.
struct Companion {
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Companion {
    /// Starts the companion on `socket` with the session bus at `bus_address`; `runtime_dir`
    /// stands in for `$XDG_RUNTIME_DIR` (where its single-instance lock lives).
    fn start(socket: &Path, bus_address: &str, runtime_dir: &Path) -> Companion {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_idlefarm-notify"))
            .arg("--socket")
            .arg(socket)
            .env("DBUS_SESSION_BUS_ADDRESS", bus_address)
            .env("XDG_RUNTIME_DIR", runtime_dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Companion {
            child,
            stderr,
            _dir: dir,
        }
    }

    /// What the companion logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the companion logged `text`, failing the test with its log otherwise.
    async fn wait_for_log(&self, text: &str) {
        if !eventually(LIMIT, || self.log().contains(text)).await {
            panic!(
                "the companion never logged {text:?}; its log:\n{}",
                self.log()
            );
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `Notify` calls in the mock's call log.
fn notify_calls(mock: &DbusMock) -> Vec<String> {
    mock.output()
        .lines()
        .filter(|line| line.contains(" Notify "))
        .map(str::to_owned)
        .collect()
}

async fn notification_daemon(bus: &PrivateBus) -> DbusMock {
    DbusMock::spawn(
        bus,
        false,
        &["--template", "notification_daemon"],
        NOTIFICATIONS,
    )
    .await
}

#[tokio::test]
async fn paused_and_welcome_events_become_desktop_notifications() {
    let bus = PrivateBus::start();
    let mock = notification_daemon(&bus).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    let mut companion = Companion::start(&socket, &bus.address, dir.path());
    companion.wait_for_log("following the agent").await;

    hub.publish(StatusEvent::Paused {
        reason: "keyboard or mouse input on :0".into(),
    });
    hub.publish(StatusEvent::Resumed);
    hub.publish(StatusEvent::Welcome { frames: 0, jobs: 0 });
    hub.publish(StatusEvent::Welcome {
        frames: 143,
        jobs: 3,
    });
    let shown = eventually(LIMIT, || notify_calls(&mock).len() >= 2).await;
    let calls = notify_calls(&mock);
    assert!(
        shown,
        "expected two notifications; mock log:\n{}\ncompanion log:\n{}",
        mock.output(),
        companion.log()
    );
    assert!(calls[0].contains(r#"Notify "idlefarm" 0 "" "Farm work paused — this PC is yours""#));
    assert!(calls[0].contains("It will not use this PC while you are here."));
    assert!(calls[1].contains("143 frames for 3 jobs"), "{}", calls[1]);
    for call in &calls {
        assert!(call.contains(r#""urgency": 1"#), "urgency normal: {call}");
        assert!(call.ends_with(" 8000"), "a short timeout: {call}");
    }
    // A Welcome with nothing rendered says nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notify_calls(&mock).len(), 2, "{}", mock.output());

    // SIGTERM stops it promptly and cleanly.
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(companion.child.id() as i32, libc::SIGTERM) };
    assert!(
        eventually(Duration::from_secs(5), || !companion.is_running()).await,
        "the companion ignores SIGTERM"
    );
    assert!(companion.child.wait().unwrap().success());
    server.abort();
}

#[tokio::test]
async fn without_a_notification_server_the_companion_carries_on_quietly() {
    // A session bus nobody serves notifications on, and no session bus at all.
    let bus = PrivateBus::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    let no_bus = format!("unix:path={}", dir.path().join("no-bus").display());
    let mut companions = Vec::new();
    for (name, address) in [("bare", bus.address.as_str()), ("none", no_bus.as_str())] {
        let runtime_dir = dir.path().join(name);
        std::fs::create_dir(&runtime_dir).unwrap();
        companions.push(Companion::start(&socket, address, &runtime_dir));
    }
    for companion in &companions {
        companion.wait_for_log("following the agent").await;
    }

    for round in 0..4 {
        hub.publish(StatusEvent::Paused {
            reason: format!("round {round}"),
        });
        hub.publish(StatusEvent::Welcome {
            frames: 143,
            jobs: 3,
        });
        for companion in &companions {
            companion.wait_for_log(&format!("round {round}")).await;
        }
        // Let each show fail before the next round rather than being dropped as a backlog.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for companion in &mut companions {
        companion
            .wait_for_log("cannot show desktop notifications")
            .await;
        assert!(companion.is_running(), "log:\n{}", companion.log());
        let log = companion.log();
        let complaints = log
            .lines()
            .map(|line| line.replace("idlefarm_agent::notify:", "").to_lowercase())
            .filter(|line| line.contains("notif") || line.contains("bus"))
            .count();
        assert!(complaints <= 2, "too noisy:\n{log}");
        assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    }

    // Still reading events after all that.
    hub.publish(StatusEvent::Paused {
        reason: "one more".into(),
    });
    for companion in &mut companions {
        companion.wait_for_log("farm work paused: one more").await;
        assert!(companion.is_running());
    }
    server.abort();
}

#[tokio::test]
async fn the_companion_waits_for_the_agent_and_follows_it_across_restarts() {
    let bus = PrivateBus::start();
    let mock = notification_daemon(&bus).await;
    let dir = tempfile::tempdir().unwrap();
    // Not there yet, not even its directory.
    let socket = dir.path().join("run/status.sock");
    let mut companion = Companion::start(&socket, &bus.address, dir.path());
    companion.wait_for_log("waiting for the agent").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    companion.wait_for_log("following the agent").await;
    hub.publish(StatusEvent::Paused {
        reason: "first agent".into(),
    });
    assert!(eventually(LIMIT, || notify_calls(&mock).len() == 1).await);

    // The agent restarts: the companion notices, waits and follows the new one.
    server.abort();
    let _ = server.await;
    companion.wait_for_log("went away").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    hub.publish(StatusEvent::Welcome { frames: 7, jobs: 1 });
    let shown = eventually(LIMIT, || notify_calls(&mock).len() == 2).await;
    assert!(
        shown,
        "mock log:\n{}\ncompanion log:\n{}",
        mock.output(),
        companion.log()
    );
    assert!(notify_calls(&mock)[1].contains("7 frames for 1 job."));
    assert!(companion.is_running());
    let log = companion.log();
    assert_eq!(log.matches("waiting for the agent").count(), 1, "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    server.abort();
}

#[tokio::test]
async fn only_one_companion_runs_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let no_bus = format!("unix:path={}", dir.path().join("no-bus").display());
    let mut first = Companion::start(&socket, &no_bus, dir.path());
    first.wait_for_log("waiting for the agent").await;
    let mut second = Companion::start(&socket, &no_bus, dir.path());
    assert!(
        eventually(LIMIT, || !second.is_running()).await,
        "a second companion keeps running"
    );
    assert!(second.child.wait().unwrap().success());
    assert!(second.log().contains("already runs"), "{}", second.log());
    assert!(first.is_running());
}

#[tokio::test]
async fn a_notification_server_that_hangs_never_stops_the_reader() {
    let bus = PrivateBus::start();
    let mock = notification_daemon(&bus).await;
    // Notify now takes 8 s (longer than the companion waits), blocking the whole mock.
    let connection = bus.connect().await;
    connection
        .call_method(
            Some(NOTIFICATIONS),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.DBus.Mock"),
            "AddMethod",
            &(
                NOTIFICATIONS,
                "Notify",
                "susssasa{sv}i",
                "u",
                "import time; time.sleep(8); ret = 1",
            ),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let server = hub.serve(&socket).unwrap();
    let mut companion = Companion::start(&socket, &bus.address, dir.path());
    companion.wait_for_log("following the agent").await;

    hub.publish(StatusEvent::Paused {
        reason: "first".into(),
    });
    companion.wait_for_log("farm work paused: first").await;
    for round in 0..3 {
        hub.publish(StatusEvent::Paused {
            reason: format!("while hung {round}"),
        });
        companion
            .wait_for_log(&format!("farm work paused: while hung {round}"))
            .await;
    }
    companion.wait_for_log("did not answer within").await;
    assert!(companion.is_running());
    let log = companion.log();
    assert_eq!(
        log.matches("cannot show desktop notifications").count(),
        1,
        "{log}"
    );
    // Only the first notification reached the (stuck) server; the rest were not piled up.
    assert_eq!(notify_calls(&mock).len(), 1, "{}", mock.output());
    server.abort();
}
