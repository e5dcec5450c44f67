//! D-Bus fixtures for tests: a private bus, python-dbusmock services on it, and a mocked
//! systemd-logind and GNOME Mutter IdleMonitor that tests drive like the real ones.
//!
//! Nothing here touches the machine's real system or session bus: every fixture runs its own
//! `dbus-daemon` in a temp dir and kills it (and its mocks) on drop, so tests can run in
//! parallel. python-dbusmock must be Debian's (`/usr/bin/python3`, package python3-dbusmock).

#![allow(dead_code)] // Each test module uses a different part of these helpers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use idlefarm_agent::presence::logind::Logind;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};

/// The python that has the `dbusmock` module.
pub const PYTHON: &str = "/usr/bin/python3";

const MOCK_INTERFACE: &str = "org.freedesktop.DBus.Mock";
const LOGIND_SERVICE: &str = "org.freedesktop.login1";
const LOGIND_PATH: &str = "/org/freedesktop/login1";
const LOGIND_MANAGER: &str = "org.freedesktop.login1.Manager";
const LOGIND_SESSION: &str = "org.freedesktop.login1.Session";
const MUTTER_SERVICE: &str = "org.gnome.Mutter.IdleMonitor";
const MUTTER_PATH: &str = "/org/gnome/Mutter/IdleMonitor/Core";
const MUTTER_INTERFACE: &str = "org.gnome.Mutter.IdleMonitor";

/// How long a fixture may take to come up before the test fails.
const STARTUP: Duration = Duration::from_secs(20);

/// A private dbus-daemon listening on a socket in a temp dir, killed on drop.
///
/// It accepts every connection and every call (no policy), so one bus can stand in for either
/// the system bus or a user's session bus.
pub struct PrivateBus {
    /// The D-Bus address to connect to, e.g. "unix:path=/tmp/.tmpX/bus,guid=...".
    pub address: String,
    daemon: Child,
    dir: tempfile::TempDir,
}

impl PrivateBus {
    /// Starts the daemon and returns once it listens.
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- Tests may connect as another user (e.g. nobody) too. -->
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run dbus-daemon (apt install dbus-daemon)");

        // The address is printed once the daemon listens; read it on a thread so a stuck
        // daemon fails the test instead of hanging it.
        let stdout = daemon.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let address = match receiver.recv_timeout(STARTUP) {
            Ok(line) if !line.trim().is_empty() => line.trim().to_owned(),
            outcome => {
                let _ = daemon.kill();
                let _ = daemon.wait();
                let mut stderr = String::new();
                let _ = daemon.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("dbus-daemon did not start ({outcome:?}): {stderr}");
            }
        };
        PrivateBus {
            address,
            daemon,
            dir,
        }
    }

    /// A new connection to this bus.
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .method_timeout(Duration::from_secs(10))
            .build()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the private bus {}: {e}", self.address))
    }

    /// Waits until `name` has an owner on this bus, failing the test if `process` exits first
    /// or it takes too long.
    async fn wait_for_name(&self, name: &str, process: &mut DbusMock) {
        let connection = self.connect().await;
        let started = Instant::now();
        loop {
            let owned: bool = connection
                .call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "NameHasOwner",
                    &(name,),
                )
                .await
                .unwrap()
                .body()
                .deserialize()
                .unwrap();
            if owned {
                return;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!(
                    "dbusmock exited ({status}) before owning {name}: {}",
                    process.output()
                );
            }
            if started.elapsed() > STARTUP {
                panic!(
                    "{name} did not appear on the bus within {STARTUP:?}: {}",
                    process.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A `python3 -m dbusmock` process on a [`PrivateBus`], killed on drop.
pub struct DbusMock {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DbusMock {
    /// Runs `/usr/bin/python3 -m dbusmock <args>` on `bus` (as the system bus when `system`,
    /// else as the session bus) and returns once `name` is owned on it.
    pub async fn spawn(bus: &PrivateBus, system: bool, args: &[&str], name: &str) -> DbusMock {
        let dir = tempfile::tempdir().unwrap();
        // dbusmock prints every call; a file never fills up like an unread pipe would.
        let log = dir.path().join("dbusmock.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(PYTHON)
            .args([
                "-m",
                "dbusmock",
                if system { "--system" } else { "--session" },
            ])
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            // The logind template copies $DISPLAY into every session; tests set it themselves.
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("cannot run /usr/bin/python3 (apt install python3-dbusmock)");
        let mut mock = DbusMock {
            child,
            log,
            _dir: dir,
        };
        bus.wait_for_name(name, &mut mock).await;
        mock
    }

    /// What the mock printed so far (its call log and any Python traceback).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DbusMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls a method and decodes its reply, failing the test with the mock's error otherwise.
async fn call<B, R>(
    connection: &zbus::Connection,
    service: &str,
    path: &str,
    interface: &str,
    method: &str,
    body: &B,
) -> R
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let reply = connection
        .call_method(Some(service), path, Some(interface), method, body)
        .await
        .unwrap_or_else(|e| panic!("{interface}.{method} on {path} failed: {e}"));
    reply
        .body()
        .deserialize()
        .unwrap_or_else(|e| panic!("{interface}.{method} on {path} answered oddly: {e}"))
}

/// A session for [`MockLogind::add`]: start from [`SessionSpec::new`] and change fields.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// logind's session id, e.g. "3" or "c1".
    pub id: String,
    /// The user's uid.
    pub uid: u32,
    /// The user's name.
    pub user: String,
    /// "user", "greeter", "lock-screen", "background", ...
    pub class: String,
    /// logind's Type: "x11", "wayland", "tty", ...
    pub kind: String,
    /// The seat; None for seatless sessions such as SSH logins.
    pub seat: Option<String>,
    /// Whether the session is in the foreground of its seat.
    pub active: bool,
    /// LockedHint.
    pub locked: bool,
    /// IdleHint.
    pub idle_hint: bool,
    /// Whether the session came over the network.
    pub remote: bool,
    /// Where a remote session comes from ("" for none).
    pub remote_host: String,
    /// The X11 display ("" for none).
    pub display: String,
    /// The terminal, e.g. "tty2" or "pts/3" ("" for none).
    pub tty: String,
    /// The session leader's pid.
    pub leader: u32,
}

impl SessionSpec {
    /// An active local session of class `class` and type `kind` on seat0, nothing else set.
    pub fn new(id: &str, uid: u32, user: &str, class: &str, kind: &str) -> SessionSpec {
        SessionSpec {
            id: id.into(),
            uid,
            user: user.into(),
            class: class.into(),
            kind: kind.into(),
            seat: Some("seat0".into()),
            active: true,
            locked: false,
            idle_hint: false,
            remote: false,
            remote_host: String::new(),
            display: String::new(),
            tty: String::new(),
            leader: 1,
        }
    }

    /// A remote SSH login of `user` on `pts` (e.g. "pts/3") from `host`: class user, type tty,
    /// no seat.
    pub fn ssh(id: &str, uid: u32, user: &str, pts: &str, host: &str) -> SessionSpec {
        SessionSpec {
            seat: None,
            remote: true,
            remote_host: host.into(),
            tty: pts.into(),
            ..SessionSpec::new(id, uid, user, "user", "tty")
        }
    }
}

/// python-dbusmock's `logind` template on a [`PrivateBus`] standing in for the system bus,
/// killed on drop.
///
/// The template's `AddSession` creates the seat, user and session objects but emits no signal
/// and takes only (id, seat, uid, user, active); the other properties are set afterwards with
/// the mock's `UpdateProperties`, and SessionNew / SessionRemoved are emitted here like real
/// logind does. The template has no way to remove a session, so that is `RemoveObject` plus
/// fixing the seat's and user's session lists.
pub struct MockLogind {
    connection: zbus::Connection,
    mock: DbusMock,
    /// The bus logind is on: connect with `Logind::connect(Some(&mock.bus.address))`.
    pub bus: PrivateBus,
}

impl MockLogind {
    /// Starts a private bus and the mock, returning once org.freedesktop.login1 is on the bus.
    pub async fn start() -> MockLogind {
        let bus = PrivateBus::start();
        let mock = DbusMock::spawn(&bus, true, &["--template", "logind"], LOGIND_SERVICE).await;
        let connection = bus.connect().await;
        MockLogind {
            connection,
            mock,
            bus,
        }
    }

    /// A [`Logind`] client connected to this mock.
    pub async fn client(&self) -> Logind {
        Logind::connect(Some(&self.bus.address)).await.unwrap()
    }

    /// What the mock printed so far: every call it received, and any Python traceback.
    pub fn output(&self) -> String {
        self.mock.output()
    }

    /// An active session on seat0 with `class`, `kind` and `display` set; emits SessionNew and
    /// returns the session's object path.
    pub async fn add_session(
        &self,
        id: &str,
        uid: u32,
        user: &str,
        class: &str,
        kind: &str,
        display: Option<&str>,
    ) -> String {
        let mut spec = SessionSpec::new(id, uid, user, class, kind);
        spec.display = display.unwrap_or_default().into();
        self.add(&spec).await
    }

    /// Adds the session `spec` describes; emits SessionNew and returns its object path.
    pub async fn add(&self, spec: &SessionSpec) -> String {
        // The template needs a seat to create; a seatless session is moved off it below.
        let seat = spec.seat.as_deref().unwrap_or("seat0");
        let path: String = self
            .mock_call(
                LOGIND_PATH,
                "AddSession",
                &(
                    spec.id.as_str(),
                    seat,
                    spec.uid,
                    spec.user.as_str(),
                    spec.active,
                ),
            )
            .await;
        let properties = HashMap::from([
            ("Class", Value::from(spec.class.as_str())),
            ("Type", Value::from(spec.kind.as_str())),
            ("LockedHint", Value::from(spec.locked)),
            ("IdleHint", Value::from(spec.idle_hint)),
            ("Remote", Value::from(spec.remote)),
            ("RemoteHost", Value::from(spec.remote_host.as_str())),
            ("Display", Value::from(spec.display.as_str())),
            ("TTY", Value::from(spec.tty.as_str())),
            ("Leader", Value::from(spec.leader)),
        ]);
        let () = self
            .mock_call(&path, "UpdateProperties", &(LOGIND_SESSION, properties))
            .await;
        if spec.seat.is_none() {
            // UpdateProperties cannot carry a struct, but the standard Set can.
            let no_seat = Value::from((String::new(), ObjectPath::try_from("/").unwrap()));
            let () = call(
                &self.connection,
                LOGIND_SERVICE,
                &path,
                "org.freedesktop.DBus.Properties",
                "Set",
                &(LOGIND_SESSION, "Seat", no_seat),
            )
            .await;
        }
        self.emit_manager_signal("SessionNew", &spec.id, &path)
            .await;
        path
    }

    /// Removes the session, as logind does when it ends, and emits SessionRemoved.
    pub async fn remove_session(&self, id: &str) {
        let path = session_path(id);
        let (seat, _): (String, OwnedObjectPath) = self.get(&path, LOGIND_SESSION, "Seat").await;
        let (uid, _): (u32, OwnedObjectPath) = self.get(&path, LOGIND_SESSION, "User").await;
        let () = self
            .mock_call(LOGIND_PATH, "RemoveObject", &(path.as_str(),))
            .await;
        // Keep the seat and user objects consistent for code that reads them.
        self.forget_session(
            &format!("/org/freedesktop/login1/seat/{seat}"),
            "org.freedesktop.login1.Seat",
            id,
        )
        .await;
        self.forget_session(
            &format!("/org/freedesktop/login1/user/{uid}"),
            "org.freedesktop.login1.User",
            id,
        )
        .await;
        self.emit_manager_signal("SessionRemoved", id, &path).await;
    }

    /// Sets one property of a session's org.freedesktop.login1.Session interface (e.g.
    /// "IdleHint", "Active") and emits PropertiesChanged, as logind does.
    pub async fn set_session_property(&self, id: &str, name: &str, value: Value<'_>) {
        let properties = HashMap::from([(name, value)]);
        let () = self
            .mock_call(
                &session_path(id),
                "UpdateProperties",
                &(LOGIND_SESSION, properties),
            )
            .await;
    }

    /// Locks or unlocks a session the way a screen locker does: SetLockedHint on the session
    /// (which the template turns into a LockedHint change and PropertiesChanged).
    pub async fn set_locked(&self, id: &str, locked: bool) {
        let () = call(
            &self.connection,
            LOGIND_SERVICE,
            &session_path(id),
            LOGIND_SESSION,
            "SetLockedHint",
            &(locked,),
        )
        .await;
    }

    async fn mock_call<B, R>(&self, path: &str, method: &str, body: &B) -> R
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        call(
            &self.connection,
            LOGIND_SERVICE,
            path,
            MOCK_INTERFACE,
            method,
            body,
        )
        .await
    }

    async fn get<R>(&self, path: &str, interface: &str, name: &str) -> R
    where
        R: TryFrom<zbus::zvariant::OwnedValue>,
        R::Error: std::fmt::Debug,
    {
        let value: zbus::zvariant::OwnedValue = call(
            &self.connection,
            LOGIND_SERVICE,
            path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &(interface, name),
        )
        .await;
        R::try_from(value).unwrap()
    }

    /// Drops session `id` from the `Sessions` list of a seat or user object.
    async fn forget_session(&self, path: &str, interface: &str, id: &str) {
        let sessions: Vec<(String, OwnedObjectPath)> = self.get(path, interface, "Sessions").await;
        let kept: Vec<(String, OwnedObjectPath)> = sessions
            .into_iter()
            .filter(|(session, _)| session != id)
            .collect();
        let () = call(
            &self.connection,
            LOGIND_SERVICE,
            path,
            "org.freedesktop.DBus.Properties",
            "Set",
            &(interface, "Sessions", Value::from(kept)),
        )
        .await;
    }

    /// Emits `member` ("SessionNew" or "SessionRemoved") for session `id` at `path` from the
    /// manager object, without changing any session (add and remove already emit them).
    pub async fn emit_manager_signal(&self, member: &str, id: &str, path: &str) {
        let args = vec![
            Value::from(id),
            Value::from(ObjectPath::try_from(path).unwrap()),
        ];
        let () = self
            .mock_call(
                LOGIND_PATH,
                "EmitSignal",
                &(LOGIND_MANAGER, member, "so", args),
            )
            .await;
    }
}

/// logind's object path for session `id` (ids in tests are plain ASCII letters and digits).
pub fn session_path(id: &str) -> String {
    format!("/org/freedesktop/login1/session/{id}")
}

/// A mocked GNOME Mutter IdleMonitor (`GetIdletime` answers a fixed number of milliseconds) on
/// a [`PrivateBus`] standing in for a user's session bus, killed on drop.
pub struct MockIdleMonitor {
    connection: zbus::Connection,
    mock: DbusMock,
    /// The session bus: pass `Some(&mock.bus.address)` to `mutter_idle`.
    pub bus: PrivateBus,
}

impl MockIdleMonitor {
    /// Starts a private bus and the mock, answering `idle_ms` until changed.
    pub async fn start(idle_ms: u64) -> MockIdleMonitor {
        let bus = PrivateBus::start();
        let mock = DbusMock::spawn(
            &bus,
            false,
            &[MUTTER_SERVICE, MUTTER_PATH, MUTTER_INTERFACE],
            MUTTER_SERVICE,
        )
        .await;
        let connection = bus.connect().await;
        let monitor = MockIdleMonitor {
            connection,
            mock,
            bus,
        };
        monitor.set_idletime(idle_ms).await;
        monitor
    }

    /// Makes `GetIdletime` answer `idle_ms` from now on.
    pub async fn set_idletime(&self, idle_ms: u64) {
        let code = format!("ret = dbus.UInt64({idle_ms})");
        let () = call(
            &self.connection,
            MUTTER_SERVICE,
            MUTTER_PATH,
            MOCK_INTERFACE,
            "AddMethod",
            &(MUTTER_INTERFACE, "GetIdletime", "", "t", code.as_str()),
        )
        .await;
    }

    /// What the mock printed so far.
    pub fn output(&self) -> String {
        self.mock.output()
    }
}
