//! Terminal activity: how long ago a person on a text console or over SSH last used their
//! terminal.
//!
//! There is no input-idle API for terminals, but the kernel keeps the terminal device's access
//! and modification times up to date as it is read and written (to the nearest few seconds,
//! which is plenty here), which is what `w` and `who` report as IDLE. Output counts as use too:
//! a person watching a long build is still there.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::logind::Session;

/// How long since the session's terminal was last used: now minus the atime (or mtime, the
/// later) of /dev/<tty>. Err with a reason when the session has no tty or it cannot be read.
pub fn session_tty_idle(session: &Session, now: SystemTime) -> Result<Duration, String> {
    let tty = session
        .tty
        .as_deref()
        .ok_or_else(|| format!("session {} has no terminal", session.id))?;
    let path = tty_path(tty)?;
    path_idle(&path, now)
}

/// For sessions without a tty property (some SSH sessions): the least idle /dev/pts/* owned by
/// `uid`, or Err when there is none.
pub fn user_pts_idle(uid: u32, now: SystemTime) -> Result<Duration, String> {
    pts_idle_in(Path::new("/dev/pts"), uid, now)
}

/// The device path of a logind TTY value ("tty2", "pts/3", or already "/dev/pts/3"), refusing
/// anything that would lead outside /dev.
fn tty_path(tty: &str) -> Result<PathBuf, String> {
    let relative = Path::new(tty.strip_prefix("/dev/").unwrap_or(tty));
    let plain = !tty.is_empty()
        && relative
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if plain {
        Ok(Path::new("/dev").join(relative))
    } else {
        Err(format!("{tty:?} is not a terminal name"))
    }
}

/// `now` minus the later of the file's access and modification times (zero if in the future).
fn path_idle(path: &Path, now: SystemTime) -> Result<Duration, String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let last_use = last_use(&metadata)
        .ok_or_else(|| format!("{} has no access or modification time", path.display()))?;
    Ok(now.duration_since(last_use).unwrap_or(Duration::ZERO))
}

fn last_use(metadata: &std::fs::Metadata) -> Option<SystemTime> {
    match (metadata.accessed().ok(), metadata.modified().ok()) {
        (Some(accessed), Some(modified)) => Some(accessed.max(modified)),
        (accessed, modified) => accessed.or(modified),
    }
}

/// The least idle terminal in `dir` owned by `uid`.
fn pts_idle_in(dir: &Path, uid: u32, now: SystemTime) -> Result<Duration, String> {
    use std::os::unix::fs::MetadataExt;

    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    entries
        .filter_map(Result::ok)
        // ptmx is the multiplexer everybody opens, not anyone's terminal.
        .filter(|entry| entry.file_name() != "ptmx")
        .filter_map(|entry| entry.metadata().ok())
        .filter(|metadata| metadata.uid() == uid)
        .filter_map(|metadata| last_use(&metadata))
        .map(|last_use| now.duration_since(last_use).unwrap_or(Duration::ZERO))
        .min()
        .ok_or_else(|| format!("no terminal in {} belongs to uid {uid}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};

    fn session(tty: Option<&str>) -> Session {
        Session {
            id: "4".into(),
            uid: 1000,
            user: "ada".into(),
            class: "user".into(),
            kind: "tty".into(),
            seat: None,
            remote: true,
            remote_host: None,
            active: true,
            locked: false,
            idle_hint: false,
            display: None,
            tty: tty.map(str::to_owned),
            leader: 1,
        }
    }

    /// A file whose access and modification times are `accessed` and `modified`.
    fn touched(dir: &Path, name: &str, accessed: SystemTime, modified: SystemTime) -> PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).unwrap();
        file.set_times(
            FileTimes::new()
                .set_accessed(accessed)
                .set_modified(modified),
        )
        .unwrap();
        path
    }

    #[test]
    fn idle_is_measured_from_the_later_of_atime_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let minutes = |m: u64| now - Duration::from_secs(60 * m);

        let read_lately = touched(dir.path(), "a", minutes(2), minutes(30));
        assert_eq!(
            path_idle(&read_lately, now).unwrap(),
            Duration::from_secs(120)
        );
        let written_lately = touched(dir.path(), "b", minutes(30), minutes(5));
        assert_eq!(
            path_idle(&written_lately, now).unwrap(),
            Duration::from_secs(300)
        );
        // A clock step backwards must not make the terminal look long idle.
        let future = touched(dir.path(), "c", now + Duration::from_secs(60), minutes(1));
        assert_eq!(path_idle(&future, now).unwrap(), Duration::ZERO);
    }

    #[test]
    fn missing_terminal_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = path_idle(&dir.path().join("gone"), SystemTime::now()).unwrap_err();
        assert!(error.contains("cannot read"), "{error}");
    }

    #[test]
    fn session_without_a_tty_is_an_error() {
        let error = session_tty_idle(&session(None), SystemTime::now()).unwrap_err();
        assert!(error.contains("no terminal"), "{error}");
    }

    #[test]
    fn tty_names_map_into_dev_only() {
        assert_eq!(tty_path("tty2").unwrap(), Path::new("/dev/tty2"));
        assert_eq!(tty_path("pts/3").unwrap(), Path::new("/dev/pts/3"));
        assert_eq!(tty_path("/dev/pts/3").unwrap(), Path::new("/dev/pts/3"));
        for bad in ["", "../etc/shadow", "pts/../../etc/shadow", "/etc/shadow"] {
            assert!(tty_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_real_terminal_device_can_be_read() {
        // /dev/null stands in for a terminal: same kind of path, always there.
        let idle = session_tty_idle(&session(Some("null")), SystemTime::now());
        assert!(idle.is_ok(), "{idle:?}");
    }

    #[test]
    fn least_idle_pts_of_the_user_wins() {
        use std::os::unix::fs::MetadataExt;

        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let minutes = |m: u64| now - Duration::from_secs(60 * m);
        touched(dir.path(), "0", minutes(40), minutes(40));
        touched(dir.path(), "1", minutes(3), minutes(9));
        // ptmx is touched by everyone and must be ignored.
        touched(dir.path(), "ptmx", now, now);
        let uid = std::fs::metadata(dir.path()).unwrap().uid();

        assert_eq!(
            pts_idle_in(dir.path(), uid, now).unwrap(),
            Duration::from_secs(180)
        );
        let error = pts_idle_in(dir.path(), uid.wrapping_add(12345), now).unwrap_err();
        assert!(error.contains("no terminal"), "{error}");
    }

    #[test]
    fn user_without_pts_is_an_error() {
        // No account on a test machine has this uid.
        let error = user_pts_idle(3_999_999_999, SystemTime::now()).unwrap_err();
        assert!(
            error.contains("no terminal") || error.contains("cannot list"),
            "{error}"
        );
    }
}
