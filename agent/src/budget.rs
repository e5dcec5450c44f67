//! The agent's disk budget: the lab PC's disk belongs to the person who uses it.
//!
//! The input cache may hold at most `max_cache` bytes, and at least `min_free` of the file
//! system must stay free. Before an input is downloaded or unpacked, [`DiskBudget::make_room`]
//! evicts the least recently used inputs until the new one fits; when even an empty cache
//! could not hold it, nothing is evicted and the lease is declined with the reason.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use idlefarm_runtime::parse_size;

/// Default most bytes of cached inputs: 10 GiB.
pub const DEFAULT_MAX_CACHE: u64 = 10 << 30;

/// Default share of the file system that stays free: 10 %.
pub const DEFAULT_MIN_FREE_PERCENT: f64 = 10.0;

/// How much of the file system must stay free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    /// A number of bytes.
    Bytes(u64),
    /// A percentage of the file system's size.
    Percent(f64),
}

impl MinFree {
    /// Parses `10%` or a size such as `20G`.
    pub fn parse(s: &str) -> Result<MinFree, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..100.0).contains(&v) => Ok(MinFree::Percent(v)),
                _ => Err(format!("`{s}` is not a percentage from 0% to below 100%")),
            };
        }
        parse_size(s)
            .map(MinFree::Bytes)
            .map_err(|e| format!("{e}, or a percentage such as 10%"))
    }

    /// The bytes that stay free on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Bytes(b) => f.write_str(&human(*b)),
            MinFree::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Limits on the disk the agent's input cache may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskBudget {
    /// Most bytes the cache may hold.
    pub max_cache: u64,
    /// What must stay free on the cache's file system.
    pub min_free: MinFree,
}

impl Default for DiskBudget {
    fn default() -> Self {
        DiskBudget {
            max_cache: DEFAULT_MAX_CACHE,
            min_free: MinFree::Percent(DEFAULT_MIN_FREE_PERCENT),
        }
    }
}

/// Space on a file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Its size.
    pub total: u64,
    /// What an unprivileged program may still write.
    pub available: u64,
}

impl Space {
    /// The file system holding `path` (statvfs).
    pub fn of(path: &Path) -> std::io::Result<Space> {
        use std::os::unix::ffi::OsStrExt;
        let c =
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: statvfs is plain data; zeroed is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let frag = st.f_frsize as u64;
        Ok(Space {
            total: st.f_blocks as u64 * frag,
            available: st.f_bavail as u64 * frag,
        })
    }
}

/// Why an input does not fit the budget: the text the coordinator records and shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverBudget(pub String);

/// A prepared input in the cache: its folder, size and when it was last used.
#[derive(Debug, Clone)]
struct Cached {
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
}

impl DiskBudget {
    /// Makes room in `cache_dir` for `need` more bytes, evicting the least recently used
    /// inputs (never those in `keep`: the input being prepared and those of leases still
    /// rendering); returns the paths evicted, oldest first. `space` is the file system's state now.
    pub fn make_room(
        &self,
        cache_dir: &Path,
        need: u64,
        keep: &[&str],
        space: Space,
    ) -> Result<Vec<PathBuf>, OverBudget> {
        let entries = cached_inputs(cache_dir, keep);
        let used = tree_size(cache_dir);
        let min_free = self.min_free.bytes(space.total);
        let evictable: u64 = entries.iter().map(|e| e.bytes).sum();
        let fits = |used: u64, available: u64| {
            used.saturating_add(need) <= self.max_cache
                && available >= need.saturating_add(min_free)
        };
        if !fits(used - evictable.min(used), space.available + evictable) {
            let room = self
                .max_cache
                .saturating_sub(used - evictable.min(used))
                .min((space.available + evictable).saturating_sub(min_free));
            return Err(OverBudget(format!(
                "its input needs {} and this PC's disk budget leaves {} for it, even with every other cached input removed (cache limit {}, {} of the disk kept free)",
                human(need),
                human(room),
                human(self.max_cache),
                self.min_free,
            )));
        }
        let (mut used, mut available) = (used, space.available);
        let mut evicted = Vec::new();
        for entry in entries {
            if fits(used, available) {
                break;
            }
            tracing::info!(path = %entry.path.display(), bytes = entry.bytes, "evicting a cached input");
            if let Err(err) = std::fs::remove_dir_all(&entry.path) {
                tracing::warn!("cannot evict {}: {err}", entry.path.display());
                continue;
            }
            used = used.saturating_sub(entry.bytes);
            available += entry.bytes;
            evicted.push(entry.path);
        }
        Ok(evicted)
    }
}

/// Marks a cached input as used now, for least-recently-used eviction.
pub fn touch(dir: &Path) {
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The prepared inputs in `cache_dir` other than those in `keep`, least recently used first.
fn cached_inputs(cache_dir: &Path, keep: &[&str]) -> Vec<Cached> {
    let mut entries: Vec<Cached> = std::fs::read_dir(cache_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 64
                && name.bytes().all(|b| b.is_ascii_hexdigit())
                && !keep.contains(&&*name)
        })
        .filter_map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            meta.is_dir().then(|| Cached {
                bytes: tree_size(&e.path()),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path: e.path(),
            })
        })
        .collect();
    entries.sort_by_key(|e| e.used);
    entries
}

/// Bytes of the files under `path` (links not followed); files linked twice count once per
/// name, which errs on the safe side.
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| tree_size(&e.path()))
        .sum()
}

/// `2.0 GiB`, `300 MiB`, `12 bytes`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{:.1} {unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests;
