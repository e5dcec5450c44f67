//! Safe reading and extraction of submitted zip projects.
//!
//! The coordinator calls [`list`] when a project is submitted, to refuse a bad archive before
//! anything is stored; the agent calls [`extract`] before rendering. Both run the same checks:
//! every entry must be a regular file or a folder with a plain relative path (no absolute paths,
//! no `..`, no backslashes, no links, no devices), no path may appear twice, and the number of
//! entries and the unpacked size are capped, and an entry that unpacks to more than a few MB
//! may expand at most 100:1 (a zip bomb expands about 1,000:1). Extraction counts the bytes it
//! actually writes, so an archive that lies about its sizes in its headers is still stopped at
//! the limits.

mod check;
mod error;
mod extract;
mod names;

use std::path::Path;

pub use error::ArchiveError;
pub use extract::extract;
pub use names::{MAX_NAME_BYTES, MAX_PATH_BYTES};

/// Caps on what an archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files and folders) an archive may hold.
    pub max_files: usize,
    /// Most bytes all files together may unpack to.
    pub max_total_bytes: u64,
    /// Most an entry may expand (unpacked bytes per compressed byte) once it unpacks to more
    /// than [`Limits::ratio_floor_bytes`]: real scenes and textures stay far below 100:1, a
    /// zip bomb is near deflate's 1,032:1.
    pub max_ratio: u64,
    /// Entries that unpack to at most this many bytes are never refused for their ratio: a
    /// small file of repeated text compresses very well and fills no disk.
    pub ratio_floor_bytes: u64,
}

/// Default [`Limits::max_total_bytes`]: as large as the largest default upload, so a project
/// a lab PC unpacks never needs more than twice the disk its zip does.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 4 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 10_000,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_ratio: 100,
            ratio_floor_bytes: 4 << 20,
        }
    }
}

impl Limits {
    /// Refuses an entry of `size` unpacked bytes from `compressed` bytes that expands more than
    /// the limits allow.
    pub(crate) fn check_ratio(
        &self,
        entry: &str,
        size: u64,
        compressed: u64,
    ) -> Result<(), ArchiveError> {
        if size <= self.ratio_floor_bytes || size <= compressed.saturating_mul(self.max_ratio) {
            return Ok(());
        }
        Err(ArchiveError::Bomb {
            entry: entry.to_owned(),
            size,
            compressed,
            max_ratio: self.max_ratio,
            floor: self.ratio_floor_bytes,
        })
    }
}

/// One checked entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized relative path, `/`-separated, without `.` components or trailing slash.
    pub path: String,
    /// Size in bytes: as declared by the archive from [`list`], as written from [`extract`].
    pub size: u64,
    /// Whether the entry is a folder.
    pub is_dir: bool,
}

/// Checks every entry of the archive at `zip_path` without extracting anything.
///
/// Sizes are the ones the archive declares; [`extract`] enforces the size limit on real data.
pub fn list(zip_path: &Path, limits: &Limits) -> Result<Vec<Entry>, ArchiveError> {
    let mut archive = check::open(zip_path)?;
    let checked = check::check(zip_path, &mut archive, limits)?;
    Ok(checked.into_iter().map(|c| c.entry).collect())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bomb_tests;
