//! Who is logged in, without logind: the utmp file and the X servers' sockets.
//!
//! On a PC without systemd-logind (a container, a non-systemd distribution) this is the
//! fallback the monitor asks instead. Login programs (`login`, `sshd`, display managers,
//! terminal emulators) write a `USER_PROCESS` record to `/var/run/utmp` for every login, naming
//! the user, the terminal (`tty2`, `pts/3`) or X display (`:0`) and the remote host. An X
//! server listening in `/tmp/.X11-unix` without such a record is someone we cannot name (or a
//! login screen we cannot tell from a person), so it counts as a person too: unknown never
//! counts as idle, and under `idle` its input idle time is still measured.
//!
//! The records are read from the file's bytes (glibc's `struct utmp`, 384 bytes on every
//! 64-bit and 32-bit Linux glibc target since the 32-bit time fields) so no libc state is
//! shared with other threads.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::logind::Session;
use crate::passwd::{Key, lookup};

/// Where login programs keep the current logins.
pub const DEFAULT_UTMP: &str = "/var/run/utmp";
/// Where X servers put their listening sockets (`X0` for display `:0`).
pub const DEFAULT_X11_SOCKETS: &str = "/tmp/.X11-unix";

/// Size of one glibc `struct utmp` record.
pub const RECORD_SIZE: usize = 384;
/// `ut_type` of a login.
pub const USER_PROCESS: i16 = 7;

const PID_AT: usize = 4;
const LINE_AT: usize = 8;
const LINE_LEN: usize = 32;
const USER_AT: usize = 44;
const USER_LEN: usize = 32;
const HOST_AT: usize = 76;
const HOST_LEN: usize = 256;

/// One utmp record, as far as presence cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `ut_type`: [`USER_PROCESS`] for a login.
    pub kind: i16,
    /// The login's process (shell, session leader).
    pub pid: i32,
    /// Terminal without `/dev/` ("tty2", "pts/3") or X display (":0").
    pub line: String,
    /// Login name.
    pub user: String,
    /// Remote host, or the X display for graphical logins; empty when local.
    pub host: String,
}

/// Why the logins cannot be read; the monitor then reports presence as unknown.
#[derive(Debug, thiserror::Error)]
pub enum UtmpError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The utmp file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The file is not a whole number of records: not glibc's utmp format.
    #[error("{path} is {len} bytes, not a whole number of {RECORD_SIZE}-byte utmp records")]
    Format {
        /// The utmp file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// Parses the records in `bytes`; `None` when it is not a whole number of records.
pub fn parse(bytes: &[u8]) -> Option<Vec<Record>> {
    if !bytes.len().is_multiple_of(RECORD_SIZE) {
        return None;
    }
    let records = bytes
        .chunks_exact(RECORD_SIZE)
        .map(|r| Record {
            kind: i16::from_ne_bytes([r[0], r[1]]),
            pid: i32::from_ne_bytes([r[PID_AT], r[PID_AT + 1], r[PID_AT + 2], r[PID_AT + 3]]),
            line: text(&r[LINE_AT..LINE_AT + LINE_LEN]),
            user: text(&r[USER_AT..USER_AT + USER_LEN]),
            host: text(&r[HOST_AT..HOST_AT + HOST_LEN]),
        })
        .collect();
    Some(records)
}

/// A NUL-padded (not necessarily NUL-terminated) field.
fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The people logged in: live `USER_PROCESS` records of `utmp`, plus one session per live X
/// server in `x11_sockets` that no record names.
pub fn sessions(utmp: &Path, x11_sockets: &Path) -> Result<Vec<Session>, UtmpError> {
    let bytes = std::fs::read(utmp).map_err(|source| UtmpError::Read {
        path: utmp.to_path_buf(),
        source,
    })?;
    let records = parse(&bytes).ok_or_else(|| UtmpError::Format {
        path: utmp.to_path_buf(),
        len: bytes.len(),
    })?;
    let mut out: Vec<Session> = records
        .iter()
        // A login whose process is gone crashed without writing its logout record.
        .filter(|r| r.kind == USER_PROCESS && !r.user.is_empty() && process_alive(r.pid))
        .map(session_of)
        .collect();
    for (display, owner) in live_displays(x11_sockets) {
        if out
            .iter()
            .all(|s| s.display.as_deref() != Some(display.as_str()))
        {
            out.push(unnamed_display(display, owner));
        }
    }
    Ok(out)
}

fn session_of(r: &Record) -> Session {
    let display = [&r.line, &r.host]
        .into_iter()
        .find(|f| f.starts_with(':'))
        .map(|d| d.to_string());
    let remote = !r.host.is_empty() && !r.host.starts_with(':');
    let uid = std::ffi::CString::new(r.user.as_str())
        .ok()
        .and_then(|name| lookup(Key::Name(&name)).ok().flatten())
        .map_or(u32::MAX, |a| a.uid);
    let local_console = r.line.starts_with("tty") || display.is_some();
    Session {
        id: format!("utmp {}", r.line),
        uid,
        user: r.user.clone(),
        class: "user".into(),
        kind: if display.is_some() { "x11" } else { "tty" }.into(),
        seat: (local_console && !remote).then(|| "seat0".into()),
        remote,
        remote_host: remote.then(|| r.host.clone()),
        active: true,
        locked: false,
        idle_hint: false,
        tty: (!r.line.starts_with(':')).then(|| r.line.clone()),
        display,
        leader: u32::try_from(r.pid).unwrap_or(0),
    }
}

fn unnamed_display(display: String, owner: u32) -> Session {
    Session {
        id: format!("x11 {display}"),
        uid: owner,
        user: format!("someone on {display} (no login record)"),
        class: "user".into(),
        kind: "x11".into(),
        seat: Some("seat0".into()),
        remote: false,
        remote_host: None,
        active: true,
        locked: false,
        idle_hint: false,
        display: Some(display),
        tty: None,
        leader: 0,
    }
}

fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let ok = unsafe { libc::kill(pid, 0) } == 0;
    ok || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Displays (":0") whose socket in `dir` accepts a connection, with the socket's owner.
fn live_displays(dir: &Path) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix('X')?;
            number.parse::<u32>().ok()?;
            let path = entry.path();
            let owner = std::fs::symlink_metadata(&path).ok()?.uid();
            // A server that crashed leaves its socket behind; only a listening one is a display.
            UnixStream::connect(&path).ok()?;
            Some((format!(":{number}"), owner))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_whole_records_is_refused() {
        assert!(parse(&[0u8; RECORD_SIZE + 1]).is_none());
        assert_eq!(parse(&[]).map(|r| r.len()), Some(0));
    }

    #[test]
    fn fields_are_read_up_to_their_nul_or_their_end() {
        assert_eq!(text(b"tty2\0\0junk"), "tty2");
        assert_eq!(text(b"abcd"), "abcd");
    }
}
