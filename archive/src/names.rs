//! Entry names: how a stored name becomes a clean relative path, and how a long one is quoted
//! in a message.

use crate::ArchiveError;

/// Longest name of one file or folder in an entry's path, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Longest entry path, in bytes: with the folder a project is extracted into in front, it
/// stays far below Linux's 4,096-byte `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 1024;

/// Characters of a too-long entry name quoted in its error, start and end together.
const QUOTED_NAME_CHARS: usize = 80;

/// Turns a stored entry name into a clean relative path, or says why it cannot be one.
pub(crate) fn normalize(name: &str) -> Result<String, ArchiveError> {
    let entry = || name.to_string();
    if name.contains('\0') {
        return Err(ArchiveError::BadName {
            entry: entry(),
            reason: "it contains a NUL byte",
        });
    }
    if name.contains('\\') {
        return Err(ArchiveError::Backslash { entry: entry() });
    }
    let bytes = name.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if name.starts_with('/') || drive {
        return Err(ArchiveError::AbsolutePath { entry: entry() });
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(ArchiveError::ParentDir { entry: entry() }),
            _ => parts.push(part),
        }
    }
    let too_long = |reason: String| ArchiveError::NameTooLong {
        entry: quoted(name),
        reason,
    };
    if let Some(part) = parts.iter().find(|p| p.len() > MAX_NAME_BYTES) {
        return Err(too_long(format!(
            "one of its names is {} bytes long, and file systems allow at most {MAX_NAME_BYTES}",
            part.len()
        )));
    }
    let path = parts.join("/");
    if path.len() > MAX_PATH_BYTES {
        return Err(too_long(format!(
            "its path is {} bytes long, and at most {MAX_PATH_BYTES} are allowed",
            path.len()
        )));
    }
    Ok(path)
}

/// A name short enough to quote in a message: its start and end around `…` when it is long.
pub(crate) fn quoted(name: &str) -> String {
    let count = name.chars().count();
    if count <= QUOTED_NAME_CHARS {
        return name.to_string();
    }
    let tail = QUOTED_NAME_CHARS / 4;
    let head = QUOTED_NAME_CHARS - tail - 1;
    let mut out: String = name.chars().take(head).collect();
    out.push('…');
    out.extend(name.chars().skip(count - tail));
    out
}
