//! The logind and Mutter presence sources against python-dbusmock on a private bus: sessions
//! are read with the right fields, changes wake the agent, and unreachable buses are clear
//! errors.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::BoxStream;
use idlefarm_agent::presence::logind::{Logind, Session};
use idlefarm_agent::presence::mutter::mutter_idle;
use idlefarm_agent::presence::tty::user_pts_idle;
use zbus::zvariant::Value;

use crate::dbus_support::{MockIdleMonitor, MockLogind, SessionSpec, session_path};

/// Long enough for a loaded CI machine, short enough that a missing signal fails the test.
const SIGNAL_WAIT: Duration = Duration::from_secs(10);

async fn next_change(changes: &mut BoxStream<'static, ()>, after: &str) {
    match tokio::time::timeout(SIGNAL_WAIT, changes.next()).await {
        Ok(Some(())) => {}
        Ok(None) => panic!("the change stream ended after {after}"),
        Err(_) => panic!("no change signalled within {SIGNAL_WAIT:?} after {after}"),
    }
}

fn find<'a>(sessions: &'a [Session], id: &str) -> &'a Session {
    sessions
        .iter()
        .find(|session| session.id == id)
        .unwrap_or_else(|| panic!("session {id} not in {sessions:#?}"))
}

#[tokio::test]
async fn sessions_are_listed_with_their_properties_and_changes_are_signalled() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    let mut changes = logind.changes().await.unwrap();
    assert_eq!(logind.sessions().await.unwrap(), Vec::new());

    let path = mock
        .add_session("5", 1000, "ada", "user", "x11", Some(":5"))
        .await;
    assert_eq!(path, "/org/freedesktop/login1/session/5");
    next_change(&mut changes, "adding a session").await;
    let sessions = logind.sessions().await.unwrap();
    assert_eq!(
        sessions,
        vec![Session {
            id: "5".into(),
            uid: 1000,
            user: "ada".into(),
            class: "user".into(),
            kind: "x11".into(),
            seat: Some("seat0".into()),
            remote: false,
            remote_host: None,
            active: true,
            locked: false,
            idle_hint: false,
            display: Some(":5".into()),
            tty: None,
            leader: 1,
        }],
        "mock said: {}",
        mock.output()
    );
    assert!(sessions[0].is_person());

    // A fresh subscription sees only what happens from now on.
    let mut later = logind.changes().await.unwrap();
    mock.remove_session("5").await;
    next_change(&mut later, "removing a session").await;
    assert_eq!(logind.sessions().await.unwrap(), Vec::new());
}

#[tokio::test]
async fn each_logind_signal_wakes_the_change_stream_on_its_own() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    for member in ["SessionNew", "SessionRemoved"] {
        let mut changes = logind.changes().await.unwrap();
        mock.emit_manager_signal(member, "9", &session_path("9"))
            .await;
        next_change(&mut changes, member).await;
    }
}

#[tokio::test]
async fn a_greeter_is_listed_but_is_not_a_person() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    mock.add_session("c1", 120, "gdm", "greeter", "wayland", None)
        .await;
    mock.add_session("c2", 1001, "grace", "user", "wayland", None)
        .await;

    let sessions = logind.sessions().await.unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    let greeter = find(&sessions, "c1");
    assert_eq!(greeter.class, "greeter");
    assert_eq!(greeter.display, None);
    assert!(!greeter.is_person());
    assert!(find(&sessions, "c2").is_person());
}

#[tokio::test]
async fn a_remote_ssh_session_has_no_seat_and_a_pts() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    mock.add(&SessionSpec::ssh("7", 1002, "lin", "pts/3", "10.1.2.3"))
        .await;

    let sessions = logind.sessions().await.unwrap();
    let ssh = find(&sessions, "7");
    assert_eq!(ssh.seat, None);
    assert!(ssh.remote);
    assert_eq!(ssh.remote_host.as_deref(), Some("10.1.2.3"));
    assert_eq!(ssh.kind, "tty");
    assert_eq!(ssh.tty.as_deref(), Some("pts/3"));
    assert!(ssh.is_person());
}

#[tokio::test]
async fn locking_and_idle_hints_are_read_and_signalled() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    mock.add_session("2", 1000, "ada", "user", "x11", Some(":0"))
        .await;

    let mut changes = logind.changes().await.unwrap();
    mock.set_locked("2", true).await;
    next_change(&mut changes, "locking").await;
    assert!(find(&logind.sessions().await.unwrap(), "2").locked);

    let mut changes = logind.changes().await.unwrap();
    mock.set_session_property("2", "IdleHint", Value::from(true))
        .await;
    next_change(&mut changes, "an idle hint").await;
    let session = logind.sessions().await.unwrap();
    assert!(find(&session, "2").idle_hint);
}

#[tokio::test]
async fn the_change_stream_ends_when_the_bus_goes_away() {
    let mock = MockLogind::start().await;
    let logind = mock.client().await;
    let mut changes = logind.changes().await.unwrap();
    drop(mock);
    match tokio::time::timeout(SIGNAL_WAIT, changes.next()).await {
        Ok(None) => {}
        Ok(Some(())) => panic!("a change was signalled by a bus that went away"),
        Err(_) => panic!("the change stream did not end within {SIGNAL_WAIT:?}"),
    }
    let error = logind.sessions().await.unwrap_err();
    assert!(error.to_string().contains("logind"), "{error}");
}

#[tokio::test]
async fn an_unreachable_bus_is_a_clear_error() {
    let error = Logind::connect(Some("unix:path=/nonexistent"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot reach logind on the system bus (unix:path=/nonexistent)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bus_without_logind_is_a_clear_error() {
    let bus = crate::dbus_support::PrivateBus::start();
    let logind = Logind::connect(Some(&bus.address)).await.unwrap();
    let error = logind.sessions().await.unwrap_err().to_string();
    assert!(
        error.contains("logind could not answer ListSessions"),
        "{error}"
    );
}

#[test]
fn a_user_without_terminals_has_no_pts_idle_time() {
    let error = user_pts_idle(3_999_999_999, SystemTime::now()).unwrap_err();
    assert!(error.contains("3999999999"), "{error}");
}

// Mutter lives here too: it is the same kind of D-Bus source, tested on the same fixtures.

#[tokio::test]
async fn mutter_idle_time_comes_from_the_idle_monitor() {
    let monitor = MockIdleMonitor::start(12_345).await;
    let idle = mutter_idle(1000, Some(&monitor.bus.address)).await;
    assert_eq!(
        idle,
        Ok(Duration::from_millis(12_345)),
        "{}",
        monitor.output()
    );

    monitor.set_idletime(0).await;
    let idle = mutter_idle(1000, Some(&monitor.bus.address)).await;
    assert_eq!(idle, Ok(Duration::ZERO));
}

#[tokio::test]
async fn mutter_without_a_bus_is_an_error_naming_the_bus() {
    let error = mutter_idle(3_999_999_999, None).await.unwrap_err();
    assert!(
        error.contains("cannot reach the session bus of uid 3999999999"),
        "{error}"
    );
    assert!(error.contains("/run/user/3999999999/bus"), "{error}");
}

#[tokio::test]
async fn mutter_missing_on_the_bus_is_an_error() {
    let bus = crate::dbus_support::PrivateBus::start();
    let error = mutter_idle(1000, Some(&bus.address)).await.unwrap_err();
    assert!(
        error.contains("org.gnome.Mutter.IdleMonitor is not available"),
        "{error}"
    );
}
