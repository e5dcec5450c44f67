//! X11 input idle time: how long since anyone touched the keyboard or mouse of a local X display.
//!
//! The time comes from the MIT-SCREEN-SAVER extension (`QueryInfo`, `ms_since_user_input`) over
//! x11rb's pure-Rust connection. The agent runs as a system service with neither `DISPLAY` nor
//! `XAUTHORITY`: [`find_xauthority`] finds the cookie file a user's session uses, and
//! [`X11Idle::connect`] reads that file itself rather than through the environment (setting
//! environment variables is not thread-safe). Every wait on the connection has a time limit, so a
//! hung X server becomes an error the caller can act on instead of a stuck thread.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, IoSlice, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::errors::ConnectError;
use x11rb::protocol::screensaver::{self, ConnectionExt as _};
use x11rb::protocol::xproto::Window;
use x11rb::reexports::x11rb_protocol::parse_display::{
    self, ConnectAddress, ParsedDisplay, parse_display_with_file_exists_callback,
};
use x11rb::reexports::x11rb_protocol::xauth::Family;
use x11rb::rust_connection::{DefaultStream, PollMode, RustConnection, Stream};
use x11rb::utils::RawFdContainer;

/// Longest the X server may take to accept a request or answer one before the connection counts
/// as broken.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest Xauthority file read; real ones hold a few entries of a few dozen bytes.
const MAX_XAUTHORITY_LEN: u64 = 64 * 1024;

/// The only authorization protocol that needs nothing but the stored bytes.
const MIT_MAGIC_COOKIE_1: &[u8] = b"MIT-MAGIC-COOKIE-1";

/// A connection to one X display that reports its input idle time.
pub struct X11Idle {
    conn: RustConnection<TimedStream>,
    root: Window,
    display: String,
    /// Set after a failed request: the connection's state is unknown, so it is not used again.
    broken: AtomicBool,
}

// The agent polls from tokio tasks and blocking threads alike.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<X11Idle>();
};

impl fmt::Debug for X11Idle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X11Idle")
            .field("display", &self.display)
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl X11Idle {
    /// Connects to `display` (":0", ":99", "host:0") with the cookie from the Xauthority file
    /// `xauthority` (None: without a cookie; `XAUTHORITY` is never read) and checks that the
    /// server answers idle-time queries.
    pub fn connect(display: &str, xauthority: Option<&Path>) -> Result<X11Idle, String> {
        let cannot_open = |why: String| format!("cannot open X display {display}: {why}");
        let parsed = parse_display::parse_display(Some(display))
            .map_err(|e| cannot_open(format!("not a display name ({e})")))?;
        let (stream, (family, address)) = open_stream(&parsed).map_err(cannot_open)?;

        let cookie = xauthority.map(|path| {
            read_xauthority(path)
                .map(|entries| pick_cookie(&entries, family, &address, parsed.display).cloned())
        });
        let (auth_name, auth_data) = match &cookie {
            Some(Ok(Some(entry))) => (entry.name.clone(), entry.data.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        let conn = RustConnection::connect_to_stream_with_auth_info(
            stream,
            parsed.screen.into(),
            auth_name,
            auth_data,
        )
        .map_err(|e| {
            let refusal = match &e {
                ConnectError::SetupFailed(failed) => &failed.reason,
                ConnectError::SetupAuthenticate(authenticate) => &authenticate.reason,
                _ => return cannot_open(e.to_string()),
            };
            cannot_open(format!(
                "the server refused the connection: {} ({})",
                String::from_utf8_lossy(refusal).trim(),
                auth_note(xauthority, &cookie, parsed.display)
            ))
        })?;

        let root = conn
            .setup()
            .roots
            .get(usize::from(parsed.screen))
            .ok_or_else(|| cannot_open(format!("it has no screen {}", parsed.screen)))?
            .root;
        match conn.extension_information(screensaver::X11_EXTENSION_NAME) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "the X server on {display} has no MIT-SCREEN-SAVER extension, so its input \
                     idle time cannot be read"
                ));
            }
            Err(e) => return Err(cannot_open(e.to_string())),
        }
        let idle = X11Idle {
            conn,
            root,
            display: display.to_owned(),
            broken: AtomicBool::new(false),
        };
        idle.query().map_err(cannot_open)?;
        Ok(idle)
    }

    /// Time since the last keyboard or mouse input on the display. An error means the connection
    /// is unusable from now on: connect again.
    pub fn idle(&self) -> Result<Duration, String> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(format!(
                "the connection to X display {} broke earlier; reconnect",
                self.display
            ));
        }
        self.query().map_err(|e| {
            self.broken.store(true, Ordering::Relaxed);
            format!("lost the connection to X display {}: {e}", self.display)
        })
    }

    fn query(&self) -> Result<Duration, String> {
        let info = self
            .conn
            .screensaver_query_info(self.root)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        Ok(Duration::from_millis(info.ms_since_user_input.into()))
    }

    /// The display name this connection was opened with.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// Says which cookie a refused connection offered, so a person knows where to look.
fn auth_note(
    xauthority: Option<&Path>,
    cookie: &Option<Result<Option<AuthEntry>, String>>,
    display: u16,
) -> String {
    match (xauthority, cookie) {
        (Some(path), Some(Ok(Some(_)))) => format!(
            "offered the cookie for display {display} from {}; it may be stale",
            path.display()
        ),
        (Some(path), Some(Ok(None))) => format!(
            "{} has no MIT-MAGIC-COOKIE-1 entry for display {display}, so no cookie was offered",
            path.display()
        ),
        (_, Some(Err(e))) => format!("{e}, so no cookie was offered"),
        _ => "no Xauthority file was given, so no cookie was offered".to_owned(),
    }
}

/// Opens the first transport that works for `parsed`: the local socket (abstract, then
/// `/tmp/.X11-unix/X<n>`), or TCP for `host:n`. Returns the peer address as Xauthority
/// entries name it.
fn open_stream(parsed: &ParsedDisplay) -> Result<(TimedStream, (Family, Vec<u8>)), String> {
    let mut failures = Vec::new();
    for address in parsed.connect_instruction() {
        let (attempt, target) = match &address {
            ConnectAddress::Hostname(host, port) => {
                (connect_tcp(host, *port), format!("{host}:{port}"))
            }
            ConnectAddress::Socket(path) => (DefaultStream::connect(&address), path.clone()),
            other => (DefaultStream::connect(other), format!("{other:?}")),
        };
        match attempt {
            Ok((stream, peer)) => return Ok((TimedStream(stream), peer)),
            Err(e) => failures.push(format!("{target}: {e}")),
        }
    }
    if failures.is_empty() {
        Err("no way to reach it".to_owned())
    } else {
        Err(format!("no X server answers ({})", failures.join("; ")))
    }
}

/// TCP connect with a time limit (x11rb's own connect could wait minutes on a silent host).
fn connect_tcp(host: &str, port: u16) -> io::Result<(DefaultStream, (Family, Vec<u8>))> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => return DefaultStream::from_tcp_stream(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// x11rb's default stream with a time limit on every wait.
#[derive(Debug)]
struct TimedStream(DefaultStream);

impl Stream for TimedStream {
    fn poll(&self, mode: PollMode) -> io::Result<()> {
        let mut events = 0;
        if mode.readable() {
            events |= libc::POLLIN;
        }
        if mode.writable() {
            events |= libc::POLLOUT;
        }
        let mut fd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events,
            revents: 0,
        };
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left_ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: `fd` is one valid, initialised pollfd that outlives the call.
            match unsafe { libc::poll(&mut fd, 1, left_ms) } {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the X server did not answer within {IO_TIMEOUT:?}"),
                    ));
                }
                n if n > 0 => return Ok(()),
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
            }
        }
    }

    fn read(&self, buf: &mut [u8], fd_storage: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.0.read(buf, fd_storage)
    }

    fn write(&self, buf: &[u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.0.write(buf, fds)
    }

    fn write_vectored(
        &self,
        bufs: &[IoSlice<'_>],
        fds: &mut Vec<RawFdContainer>,
    ) -> io::Result<usize> {
        self.0.write_vectored(bufs, fds)
    }
}

/// One entry of an Xauthority file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthEntry {
    family: u16,
    address: Vec<u8>,
    /// Display number in ASCII; empty matches every display.
    number: Vec<u8>,
    name: Vec<u8>,
    data: Vec<u8>,
}

impl AuthEntry {
    fn is_cookie_for(&self, display: u16) -> bool {
        self.name == MIT_MAGIC_COOKIE_1
            && (self.number.is_empty() || self.number == display.to_string().as_bytes())
    }
}

fn read_xauthority(path: &Path) -> Result<Vec<AuthEntry>, String> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_XAUTHORITY_LEN).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read Xauthority file {}: {e}", path.display()))?;
    Ok(parse_xauthority(&bytes))
}

/// Parses an Xauthority file: entries of a big-endian u16 family followed by address, display
/// number, auth name and auth data, each a big-endian-u16-length-prefixed string. Like libXau,
/// stops at a truncated entry and keeps the ones before it.
fn parse_xauthority(mut bytes: &[u8]) -> Vec<AuthEntry> {
    fn u16_be(bytes: &mut &[u8]) -> Option<u16> {
        let (head, rest) = bytes.split_first_chunk::<2>()?;
        *bytes = rest;
        Some(u16::from_be_bytes(*head))
    }
    fn counted(bytes: &mut &[u8]) -> Option<Vec<u8>> {
        let len = usize::from(u16_be(bytes)?);
        let (head, rest) = bytes.split_at_checked(len)?;
        *bytes = rest;
        Some(head.to_vec())
    }
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let entry = (|| {
            Some(AuthEntry {
                family: u16_be(&mut bytes)?,
                address: counted(&mut bytes)?,
                number: counted(&mut bytes)?,
                name: counted(&mut bytes)?,
                data: counted(&mut bytes)?,
            })
        })();
        match entry {
            Some(entry) => entries.push(entry),
            None => break,
        }
    }
    entries
}

/// The MIT-MAGIC-COOKIE-1 entry for `display` at the peer (`family`, `address`): an exact or
/// wildcard match first, in file order; failing that, for a local connection, any local entry,
/// because the file keeps the hostname of login time and the hostname may have changed since.
fn pick_cookie<'a>(
    entries: &'a [AuthEntry],
    family: Family,
    address: &[u8],
    display: u16,
) -> Option<&'a AuthEntry> {
    let cookies = || entries.iter().filter(|e| e.is_cookie_for(display));
    cookies()
        .find(|e| {
            let entry_family = Family::from(e.family);
            entry_family == Family::WILD || (entry_family == family && e.address == address)
        })
        .or_else(|| {
            cookies().find(|e| family == Family::LOCAL && Family::from(e.family) == Family::LOCAL)
        })
}

/// Finds the Xauthority file that user `uid`'s processes on `display` use: the `XAUTHORITY` of
/// their processes whose `DISPLAY` is that display (read from `/proc/<pid>/environ`, so the agent
/// must run as root or as that user), else `~user/.Xauthority`, else
/// `/run/user/<uid>/gdm/Xauthority`. Only files owned by `uid` count (so a user cannot point the
/// agent at someone else's file), and one holding a cookie for the display wins over one that
/// does not. None when no process of the user is on the display or no file fits. Reads every
/// process's environment: call it when a session appears or a connection fails, not every poll.
pub fn find_xauthority(display: &str, uid: u32) -> Option<PathBuf> {
    let number = parse_display_with_file_exists_callback(display, |_| false)
        .ok()
        .map(|parsed| parsed.display);
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();

    let mut candidates: Vec<PathBuf> = Vec::new();
    let mut on_display = false;
    let mut without_xauthority = false;
    for pid in pids {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if !fs::metadata(&dir).is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(environ) = fs::read(dir.join("environ")) else {
            continue;
        };
        let (env_display, env_xauthority) = display_and_xauthority(&environ);
        if !env_display.is_some_and(|d| same_display(d, display)) {
            continue;
        }
        on_display = true;
        match env_xauthority.map(|p| Path::new(OsStr::from_bytes(p))) {
            Some(path) if path.is_absolute() => {
                // Seen from the agent's mount namespace (PrivateTmp) the file may be elsewhere.
                let path = if path.exists() {
                    path.to_path_buf()
                } else {
                    dir.join("root")
                        .join(path.strip_prefix("/").unwrap_or(path))
                };
                if !candidates.contains(&path) {
                    candidates.push(path);
                }
            }
            Some(_) => {}
            None => without_xauthority = true,
        }
    }
    if !on_display {
        return None;
    }
    if without_xauthority && let Some(home) = home_dir(uid) {
        candidates.push(home.join(".Xauthority"));
    }
    candidates.push(PathBuf::from(format!("/run/user/{uid}/gdm/Xauthority")));

    let owned: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|path| fs::metadata(path).is_ok_and(|m| m.is_file() && m.uid() == uid))
        .collect();
    let has_cookie = |path: &PathBuf| {
        number.is_some_and(|n| {
            read_xauthority(path).is_ok_and(|entries| entries.iter().any(|e| e.is_cookie_for(n)))
        })
    };
    owned
        .iter()
        .find(|path| has_cookie(path))
        .or(owned.first())
        .cloned()
}

/// `DISPLAY` and `XAUTHORITY` from a NUL-separated `/proc/<pid>/environ`.
fn display_and_xauthority(environ: &[u8]) -> (Option<&str>, Option<&[u8]>) {
    let mut display = None;
    let mut xauthority = None;
    for var in environ.split(|&b| b == 0) {
        if let Some(value) = var.strip_prefix(b"DISPLAY=") {
            display = std::str::from_utf8(value).ok();
        } else if let Some(value) = var.strip_prefix(b"XAUTHORITY=") {
            xauthority = Some(value).filter(|v| !v.is_empty());
        }
    }
    (display, xauthority)
}

/// Whether two display names reach the same display (":0" and ":0.0" do; the screen is ignored).
fn same_display(a: &str, b: &str) -> bool {
    let parse = |name| parse_display_with_file_exists_callback(name, |_| false).ok();
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => (a.host, a.protocol, a.display) == (b.host, b.protocol, b.display),
        _ => a == b,
    }
}

/// Home directory of `uid` from the user database (`getpwuid_r`, safe from any thread).
fn home_dir(uid: u32) -> Option<PathBuf> {
    crate::passwd::lookup(crate::passwd::Key::Uid(uid))
        .ok()
        .flatten()?
        .home
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: u16, address: &[u8], number: &[u8], data: &[u8]) -> AuthEntry {
        AuthEntry {
            family,
            address: address.to_vec(),
            number: number.to_vec(),
            name: MIT_MAGIC_COOKIE_1.to_vec(),
            data: data.to_vec(),
        }
    }

    fn encode(entries: &[AuthEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            out.extend(e.family.to_be_bytes());
            for field in [&e.address, &e.number, &e.name, &e.data] {
                out.extend((field.len() as u16).to_be_bytes());
                out.extend(field.iter());
            }
        }
        out
    }

    #[test]
    fn parses_entries_and_stops_at_a_truncated_one() {
        let entries = [
            entry(256, b"lab1", b"0", b"k0"),
            entry(0xffff, b"", b"1", b"k1"),
        ];
        let mut bytes = encode(&entries);
        assert_eq!(parse_xauthority(&bytes), entries);
        bytes.extend([1, 0, 0, 9, b'x']);
        assert_eq!(parse_xauthority(&bytes), entries);
    }

    #[test]
    fn picks_exact_or_wild_before_a_local_entry_of_another_hostname() {
        let entries = [
            entry(256, b"oldname", b"0", b"stale-host"),
            entry(256, b"lab1", b"1", b"other-display"),
            entry(0xffff, b"", b"0", b"wild"),
            entry(256, b"lab1", b"0", b"exact"),
        ];
        let pick = |address: &[u8], display| {
            pick_cookie(&entries, Family::LOCAL, address, display).map(|e| e.data.clone())
        };
        assert_eq!(pick(b"lab1", 0), Some(b"wild".to_vec()));
        assert_eq!(pick(b"lab1", 1), Some(b"other-display".to_vec()));
        assert_eq!(pick(b"renamed", 1), Some(b"other-display".to_vec()));
        assert_eq!(pick(b"lab1", 2), None);
        assert_eq!(
            pick_cookie(&entries[..1], Family::LOCAL, b"renamed", 0).map(|e| &e.data[..]),
            Some(&b"stale-host"[..])
        );
        assert_eq!(
            pick_cookie(&entries[..1], Family::INTERNET, b"\x7f\0\0\x01", 0),
            None
        );
    }

    #[test]
    fn reads_display_and_xauthority_from_environ() {
        let environ = b"HOME=/home/a\0DISPLAY=:0.0\0XAUTHORITY=/run/user/1000/gdm/Xauthority\0";
        let (display, xauthority) = display_and_xauthority(environ);
        assert_eq!(display, Some(":0.0"));
        assert_eq!(xauthority, Some(&b"/run/user/1000/gdm/Xauthority"[..]));
        assert!(same_display(display.unwrap(), ":0"));
        assert!(!same_display(":1", ":0"));
        assert!(!same_display("otherhost:0", ":0"));
        assert_eq!(display_and_xauthority(b"XAUTHORITY=\0"), (None, None));
    }
}
