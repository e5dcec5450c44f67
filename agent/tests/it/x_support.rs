//! A real X display for tests: an Xvfb server that requires a cookie, and xdotool playing the
//! person at the keyboard.
//!
//! Every [`Xvfb`] gets its own display number (from :90 upwards, skipping numbers in use) and its
//! own Xauthority file in a temp dir; it is killed when dropped. Nothing here touches the test
//! process's environment: `DISPLAY` and `XAUTHORITY` are set only on the commands it runs.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lowest display number tried; lower ones are left to real X servers.
const FIRST_DISPLAY: u32 = 90;
/// How many display numbers are tried before giving up.
const DISPLAYS_TRIED: u32 = 200;
/// Longest an Xvfb may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest an Xvfb may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Next display number to try, shared by every test in this binary so parallel tests do not
/// race for the same one.
static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(0);

/// A running Xvfb server, killed on drop.
pub struct Xvfb {
    /// The display name, e.g. ":90".
    pub display: String,
    /// The Xauthority file holding the server's cookie; None when `xauth` is not installed, in
    /// which case the server accepts every local client.
    pub auth: Option<PathBuf>,
    child: Child,
    /// Counts pointer moves so consecutive ones go to different places.
    moves: AtomicU32,
    /// Holds the Xauthority file and Xvfb's log.
    _dir: tempfile::TempDir,
}

impl Xvfb {
    /// Starts an Xvfb on a free display number and waits until it accepts connections. Panics,
    /// with Xvfb's own messages, when no server can be started.
    pub fn start() -> Xvfb {
        let dir = tempfile::tempdir().unwrap();
        let use_auth = has_xauth();
        let mut last_failure = String::from("every display number was in use");
        for _ in 0..DISPLAYS_TRIED {
            let number = FIRST_DISPLAY + NEXT_DISPLAY.fetch_add(1, Ordering::Relaxed) % 1000;
            if display_in_use(number) {
                continue;
            }
            let display = format!(":{number}");
            let auth = use_auth.then(|| {
                let path = dir.path().join(format!("Xauthority-{number}"));
                write_xauthority(&path, &display, &random_cookie());
                path
            });
            match spawn_xvfb(number, auth.as_deref(), dir.path()) {
                Ok(child) => {
                    return Xvfb {
                        display,
                        auth,
                        child,
                        moves: AtomicU32::new(0),
                        _dir: dir,
                    };
                }
                Err(failure) => last_failure = failure,
            }
        }
        panic!("cannot start Xvfb: {last_failure}");
    }

    /// Moves the pointer (XTEST through xdotool) and returns once the server has moved it.
    /// Consecutive calls alternate between two positions, so each one is real input.
    pub fn touch_mouse(&self) {
        let (x, y) = match self.moves.fetch_add(1, Ordering::Relaxed) % 2 {
            0 => ("20", "20"),
            _ => ("40", "30"),
        };
        self.xdotool(&["mousemove", "--sync", x, y]);
    }

    /// Presses and releases Shift (XTEST through xdotool), which types nothing anywhere.
    pub fn press_key(&self) {
        self.xdotool(&["key", "shift"]);
    }

    /// Writes an Xauthority file at `path` with `cookie` (32 hex digits) for this display, e.g.
    /// a wrong one. Needs `xauth`.
    pub fn write_auth_file(&self, path: &Path, cookie: &str) {
        write_xauthority(path, &self.display, cookie);
    }

    /// The server's process id (e.g. to SIGSTOP it and see clients time out).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sets `DISPLAY` and `XAUTHORITY` for this server on `command` only.
    pub fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("DISPLAY", &self.display);
        match &self.auth {
            Some(auth) => command.env("XAUTHORITY", auth),
            None => command.env_remove("XAUTHORITY"),
        }
    }

    fn xdotool(&self, args: &[&str]) {
        let output = self
            .env(&mut Command::new("xdotool"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run xdotool (is it installed?)");
        assert!(
            output.status.success(),
            "xdotool {args:?} on {} failed: {}",
            self.display,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Xvfb {
    /// SIGTERM first, so Xvfb removes its socket and lock file; SIGKILL if it lingers.
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill only reads its arguments; the child is not reaped yet, so the pid is
            // still ours.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a live X server holds display `number` (a lock file left by a killed one does not
/// count: Xvfb replaces it).
fn display_in_use(number: u32) -> bool {
    let Ok(lock) = std::fs::read_to_string(format!("/tmp/.X{number}-lock")) else {
        return false;
    };
    match lock.trim().parse::<libc::pid_t>() {
        // SAFETY: signal 0 only checks that the process exists.
        Ok(pid) if pid > 0 => unsafe { libc::kill(pid, 0) == 0 },
        _ => true,
    }
}

/// Whether `xauth` can be run.
pub fn has_xauth() -> bool {
    Command::new("xauth")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// 16 random bytes as 32 hex digits.
pub fn random_cookie() -> String {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a fresh Xauthority file with one MIT-MAGIC-COOKIE-1 entry for `display`, with xauth.
fn write_xauthority(path: &Path, display: &str, cookie: &str) {
    let _ = std::fs::remove_file(path);
    let output = Command::new("xauth")
        .arg("-q")
        .arg("-f")
        .arg(path)
        .args(["add", display, ".", cookie])
        .output()
        .expect("run xauth");
    assert!(
        output.status.success(),
        "xauth add {display} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts Xvfb on `:number` and waits for it to report, through `-displayfd`, that it listens.
/// Err (with its log) when it exits first, e.g. because another server has that display.
fn spawn_xvfb(number: u32, auth: Option<&Path>, dir: &Path) -> Result<Child, String> {
    let (read_end, write_end) = cloexec_pipe().unwrap();
    let write_fd = write_end.as_raw_fd();
    let log_path = dir.join(format!("Xvfb-{number}.log"));
    let mut command = Command::new("Xvfb");
    command
        .arg(format!(":{number}"))
        .args(["-displayfd", &write_fd.to_string()])
        .args(["-nolisten", "tcp", "-noreset", "-screen", "0", "320x240x24"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log_path).unwrap());
    if let Some(auth) = auth {
        command.arg("-auth").arg(auth);
    }
    // SAFETY: the closure only calls fcntl, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            // Only Xvfb inherits the write end: other tests' children must not keep it open.
            if libc::fcntl(write_fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run Xvfb: {e}"))?;
    drop(write_end);

    // A thread reads so that a server that neither starts nor exits cannot hang the test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(File::from(read_end)).read_line(&mut line);
        let _ = tx.send(line);
    });
    let reported = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    if reported.trim() == number.to_string() {
        return Ok(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(format!(":{number}: {}", log.trim()))
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
