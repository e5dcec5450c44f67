//! Presence without logind: utmp files written by glibc's own `pututxline` (the real binary
//! format, not ours) become sessions, and a monitor with no system bus uses them and says so.

use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use idlefarm_agent::presence::monitor::{DetectedPresence, PresenceConfig};
use idlefarm_agent::presence::policy::Policy;
use idlefarm_agent::presence::utmp::{self, UtmpError};
use idlefarm_agent::status::{StatusEvent, StatusHub, read_snapshot};
use idlefarm_agent::{Availability, Presence};
use idlefarm_protocol::PresenceState;

/// glibc's utmp functions keep the file name in process-wide state.
static GLIBC_UTMP: Mutex<()> = Mutex::new(());

/// One login as `login`, `sshd` or a display manager writes it.
struct Login<'a> {
    kind: libc::c_short,
    pid: i32,
    line: &'a str,
    user: &'a str,
    host: &'a str,
}

fn copy(dst: &mut [libc::c_char], src: &str) {
    for (d, s) in dst.iter_mut().zip(src.bytes()) {
        *d = s as libc::c_char;
    }
}

/// Writes `logins` to `path` through glibc.
fn write_utmp(path: &Path, logins: &[Login<'_>]) {
    let _guard = GLIBC_UTMP.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::write(path, b"").unwrap();
    let name = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: glibc's documented utmp API, used under a lock; the record is fully initialised.
    unsafe {
        assert_eq!(libc::utmpxname(name.as_ptr()), 0);
        libc::setutxent();
        for login in logins {
            let mut record: libc::utmpx = std::mem::zeroed();
            record.ut_type = login.kind;
            record.ut_pid = login.pid;
            copy(&mut record.ut_line, login.line);
            copy(
                &mut record.ut_id,
                &login.line[login.line.len().saturating_sub(4)..],
            );
            copy(&mut record.ut_user, login.user);
            copy(&mut record.ut_host, login.host);
            assert!(!libc::pututxline(&record).is_null(), "pututxline failed");
        }
        libc::endutxent();
    }
}

fn me() -> i32 {
    std::process::id() as i32
}

#[test]
fn glibc_records_become_sessions_and_stale_ones_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("utmp");
    // A pid that is certainly gone: a child we waited for.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id() as i32;
    child.wait().unwrap();
    write_utmp(
        &file,
        &[
            Login {
                kind: libc::USER_PROCESS,
                pid: me(),
                line: "tty2",
                user: "root",
                host: "",
            },
            Login {
                kind: libc::USER_PROCESS,
                pid: me(),
                line: "pts/3",
                user: "bob",
                host: "10.0.0.7",
            },
            Login {
                kind: libc::USER_PROCESS,
                pid: me(),
                line: ":0",
                user: "carol",
                host: ":0",
            },
            // Logged out, waiting for a login, and crashed without a logout record.
            Login {
                kind: libc::DEAD_PROCESS,
                pid: me(),
                line: "tty3",
                user: "",
                host: "",
            },
            Login {
                kind: libc::LOGIN_PROCESS,
                pid: me(),
                line: "tty4",
                user: "LOGIN",
                host: "",
            },
            Login {
                kind: libc::USER_PROCESS,
                pid: dead,
                line: "tty5",
                user: "dave",
                host: "",
            },
        ],
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().len() as usize % utmp::RECORD_SIZE,
        0
    );
    let sessions = utmp::sessions(&file, &dir.path().join("no-x11")).unwrap();
    let summary: Vec<_> = sessions
        .iter()
        .map(|s| {
            (
                s.user.as_str(),
                s.kind.as_str(),
                s.tty.as_deref(),
                s.display.as_deref(),
                s.seat.as_deref(),
                s.remote,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("root", "tty", Some("tty2"), None, Some("seat0"), false),
            ("bob", "tty", Some("pts/3"), None, None, true),
            ("carol", "x11", None, Some(":0"), Some("seat0"), false),
        ]
    );
    assert!(sessions.iter().all(|s| s.is_person()));
    assert_eq!(
        sessions[0].uid, 0,
        "root's uid comes from the user database"
    );
    assert_eq!(sessions[1].remote_host.as_deref(), Some("10.0.0.7"));
}

#[test]
fn a_live_x_server_without_a_login_counts_and_a_dead_socket_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("utmp");
    write_utmp(&file, &[]);
    let x11 = dir.path().join(".X11-unix");
    std::fs::create_dir(&x11).unwrap();
    let _live = std::os::unix::net::UnixListener::bind(x11.join("X5")).unwrap();
    // A server that crashed: the socket file stays, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(x11.join("X6")).unwrap());
    std::fs::write(x11.join("not-a-display"), b"").unwrap();
    let sessions = utmp::sessions(&file, &x11).unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].display.as_deref(), Some(":5"));
    assert!(sessions[0].is_person());
    assert!(sessions[0].user.contains("no login record"));
}

#[test]
fn a_missing_or_malformed_utmp_is_an_error_not_an_empty_pc() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("utmp");
    assert!(matches!(
        utmp::sessions(&missing, dir.path()),
        Err(UtmpError::Read { .. })
    ));
    std::fs::write(&missing, vec![0u8; 1000]).unwrap();
    let err = utmp::sessions(&missing, dir.path()).unwrap_err();
    assert!(matches!(err, UtmpError::Format { len: 1000, .. }), "{err}");
    assert!(err.to_string().contains("not a whole number"), "{err}");
}

fn no_bus(dir: &Path) -> Option<String> {
    Some(format!("unix:path={}", dir.join("no-bus").display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_system_bus_the_monitor_reads_utmp_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("utmp");
    write_utmp(&file, &[]);
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let _server = hub.serve(&socket).unwrap();
    let config = PresenceConfig {
        policy: Policy::NoUser,
        settle: Duration::ZERO,
        system_bus: no_bus(dir.path()),
        utmp: file.clone(),
        x11_sockets: dir.path().join("no-x11"),
        slow_poll: Duration::from_millis(100),
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, hub);
    let mut rx = presence.watch();
    tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|a| *a == Availability::Available),
    )
    .await
    .unwrap_or_else(|_| panic!("no logins, yet: {}", presence.reason()))
    .unwrap();
    let StatusEvent::Snapshot { sources, .. } = read_snapshot(&socket).await.unwrap() else {
        panic!("the first line is a snapshot");
    };
    let reading = |name: &str| {
        sources
            .iter()
            .find(|s| s.source == name)
            .map(|s| s.reading.clone())
            .unwrap_or_else(|| panic!("{name} is listed: {sources:?}"))
    };
    assert_eq!(reading("utmp"), "no user sessions");
    assert!(
        reading("logind").contains("logins read from utmp instead"),
        "{}",
        reading("logind")
    );

    // Someone logs in on a terminal: the PC is taken.
    write_utmp(
        &file,
        &[Login {
            kind: libc::USER_PROCESS,
            pid: me(),
            line: "tty2",
            user: "erin",
            host: "",
        }],
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        rx.wait_for(|a| *a == Availability::Unavailable(PresenceState::UserPresent)),
    )
    .await
    .unwrap_or_else(|_| panic!("the login went unseen: {}", presence.reason()))
    .unwrap();
    assert!(presence.reason().contains("erin"), "{}", presence.reason());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_logind_or_utmp_the_pc_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let config = PresenceConfig {
        policy: Policy::Idle,
        settle: Duration::ZERO,
        system_bus: no_bus(dir.path()),
        utmp: dir.path().join("missing-utmp"),
        slow_poll: Duration::from_millis(100),
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, StatusHub::new());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        *presence.watch().borrow(),
        Availability::Unavailable(PresenceState::UserPresent)
    );
    let reason = presence.reason();
    assert!(
        reason.contains("cannot reach logind") && reason.contains("missing-utmp"),
        "{reason}"
    );
}
