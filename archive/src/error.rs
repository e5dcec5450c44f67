//! Why an archive is refused, in words a submitter can act on.

use std::io;
use std::path::Path;

use zip::result::ZipError;

/// Why an archive was refused or could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file is not a zip archive, or its directory is damaged.
    #[error(
        "this is not a zip file, or it is damaged ({0}); re-create it with a standard zip tool"
    )]
    NotAZip(String),
    /// An entry's data cannot be read.
    #[error("entry \"{entry}\" is damaged ({reason}); re-create the zip with a standard zip tool")]
    Corrupt {
        /// The entry's name as stored.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry is password-protected.
    #[error("entry \"{entry}\" is encrypted; upload a zip without a password")]
    Encrypted {
        /// The entry's name as stored.
        entry: String,
    },
    /// An entry uses a compression method other than store or deflate.
    #[error(
        "entry \"{entry}\" uses an unsupported compression method ({method}); use plain deflate compression"
    )]
    UnsupportedCompression {
        /// The entry's name as stored.
        entry: String,
        /// The method the entry uses.
        method: String,
    },
    /// An entry's path starts at the root of a file system.
    #[error(
        "entry \"{entry}\" has an absolute path; a project zip may only hold paths relative to the project folder"
    )]
    AbsolutePath {
        /// The entry's name as stored.
        entry: String,
    },
    /// An entry's path climbs out of the project folder.
    #[error(
        "entry \"{entry}\" contains a `..` component, which would place it outside the project folder"
    )]
    ParentDir {
        /// The entry's name as stored.
        entry: String,
    },
    /// An entry's path uses backslashes, which mean different things on different systems.
    #[error(
        "entry \"{entry}\" contains a backslash; zip paths must use '/' (re-create the zip with a standard zip tool)"
    )]
    Backslash {
        /// The entry's name as stored.
        entry: String,
    },
    /// An entry's name cannot be used as a path.
    #[error("entry \"{entry}\" has an unusable name: {reason}")]
    BadName {
        /// The entry's name as stored.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry's path is longer than file systems allow.
    #[error("entry \"{entry}\" has a name too long to extract: {reason}; shorten it")]
    NameTooLong {
        /// The entry's name as stored, its middle cut out when it is long.
        entry: String,
        /// Which limit it passes.
        reason: String,
    },
    /// An entry is a symbolic link.
    #[error(
        "entry \"{entry}\" is a symbolic link; links are not allowed, put the file itself in the zip"
    )]
    Symlink {
        /// The entry's name as stored.
        entry: String,
    },
    /// An entry is a device, a pipe or a socket.
    #[error("entry \"{entry}\" is a {kind}, not a regular file or folder")]
    NotRegular {
        /// The entry's name as stored.
        entry: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// The archive holds more entries than allowed.
    #[error("the zip holds {count} entries; at most {limit} are allowed")]
    TooManyFiles {
        /// Entries in the archive.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The archive unpacks to more bytes than allowed.
    #[error("the zip unpacks to more than {} (the limit was passed at \"{entry}\")", human_size(*.limit))]
    TooLarge {
        /// The entry at which the limit was passed.
        entry: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// An entry expands far more than real files do: a zip bomb.
    #[error(
        "entry \"{entry}\" unpacks to {} from {} ({}:1); entries larger than {} may expand at most {max_ratio}:1, which keeps zip bombs off the lab PCs' disks",
        human_size(*.size), human_size(*.compressed), ratio(*.size, *.compressed), human_size(*.floor)
    )]
    Bomb {
        /// The entry's normalized path.
        entry: String,
        /// Bytes it unpacks to (during extraction: bytes written when it was stopped).
        size: u64,
        /// Its compressed bytes.
        compressed: u64,
        /// The ratio allowed.
        max_ratio: u64,
        /// Entries up to this size are not checked.
        floor: u64,
    },
    /// Two entries have the same path.
    #[error("the zip holds \"{entry}\" more than once")]
    Duplicate {
        /// The normalized path.
        entry: String,
    },
    /// A path is both a file and a folder.
    #[error("\"{file}\" is a file in the zip, but \"{entry}\" needs it to be a folder")]
    FileIsFolder {
        /// The file's normalized path.
        file: String,
        /// The entry that lies inside it.
        entry: String,
    },
    /// The archive holds folders only, or nothing.
    #[error("the zip holds no files")]
    Empty,
    /// Something already in the destination is in the way.
    #[error("cannot extract \"{entry}\": something other than a folder is already at {path}")]
    Blocked {
        /// The entry being extracted.
        entry: String,
        /// The path in the way.
        path: String,
    },
    /// Reading the archive or writing the extracted files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The error.
        source: io::Error,
    },
}

pub(crate) fn entry_error(entry: &str, err: ZipError) -> ArchiveError {
    let entry = entry.to_string();
    match err {
        ZipError::UnsupportedArchive(reason) if reason == ZipError::PASSWORD_REQUIRED => {
            ArchiveError::Encrypted { entry }
        }
        other => ArchiveError::Corrupt {
            entry,
            reason: other.to_string(),
        },
    }
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How many times `compressed` goes into `size`, for messages.
fn ratio(size: u64, compressed: u64) -> u64 {
    size / compressed.max(1)
}

/// `8 GiB`, `300 MiB`, `12 bytes`: sizes in messages a person reads.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}
