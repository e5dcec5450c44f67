//! The input cache: each job input is downloaded once, verified against its blake3 hash and
//! prepared under `work_dir/cache/<hash>/`.
//!
//! A single-file input becomes `<hash>/<input_name>`; a zip project is saved as `<hash>.zip` and
//! extracted (with `idlefarm-archive`'s checks) into `<hash>/`. Everything is prepared in a
//! temporary directory that is renamed into place only when complete, so the existence of
//! `<hash>/` means the input is ready. Directories are 0755 and files 0644 so the unprivileged
//! render user can read them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use idlefarm_archive::{ArchiveError, Limits};
use idlefarm_protocol::{InputKind, Lease};

use crate::budget::{self, DiskBudget, OverBudget, Space};
use crate::client::{Client, ClientError};
use crate::input_name::{NameError, checked_name, quote};

/// How many times a download failing for network reasons is tried.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Why a job's input could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The lease names a hash that is not a blake3 hex digest.
    #[error("the lease names an invalid input hash {0:?}")]
    BadHash(String),
    /// A name from the job cannot become a path here.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The main scene file is not in the job's input.
    #[error("the main scene file {} is not in the job's input", quote(.0))]
    MissingMainFile(String),
    /// The download did not match its hash, twice.
    #[error("the downloaded input does not match its hash {expected} (got {actual}), twice")]
    Corrupt {
        /// The hash the lease names.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
    /// The download failed.
    #[error("cannot download the job's input: {0}")]
    Download(#[source] ClientError),
    /// The input would break this PC's disk budget: the lease is declined, not failed.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// The zip project cannot be extracted.
    #[error("cannot unpack the job's zip project: {0}")]
    Archive(#[from] ArchiveError),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What failed.
        source: std::io::Error,
    },
}

impl CacheError {
    /// Whether trying again later (here or on another agent) may help, so the lease should be
    /// given back instead of reported as failed: network trouble reaching the coordinator, or
    /// this PC's disk being full. Every other error (a name the file system refuses, a damaged
    /// archive, a missing scene, other disk errors) is the lease's failure, reported with its
    /// reason: giving such a lease back only gets it handed out again, forever.
    pub fn is_transient(&self) -> bool {
        match self {
            CacheError::Download(ClientError::Io { source, .. }) => is_disk_full(source),
            CacheError::Download(err) => err.is_transient(),
            CacheError::Io { source, .. } => is_disk_full(source),
            CacheError::Archive(ArchiveError::Io { source, .. }) => is_disk_full(source),
            _ => false,
        }
    }
}

/// Whether `err` says the disk (or the agent's quota on it) is full: this PC's trouble, not
/// the job's.
pub(crate) fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
    let context = context.into();
    move |source| CacheError::Io { context, source }
}

/// A job's input, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedInput {
    /// `cache/<hash>/`.
    pub root: PathBuf,
    /// The main scene file inside `root`.
    pub main_file: PathBuf,
}

/// Downloaded and prepared job inputs under one directory.
#[derive(Debug)]
pub struct InputCache {
    dir: PathBuf,
    budget: DiskBudget,
    // One preparation at a time: two leases of one job must not download it twice.
    lock: tokio::sync::Mutex<()>,
    // Inputs of leases being worked on, with how many: never evicted (chunks of two jobs may
    // render at once).
    in_use: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Keeps a prepared input from eviction while the lease using it lives.
#[derive(Debug)]
pub struct InputHold<'a> {
    cache: &'a InputCache,
    hash: String,
}

impl Drop for InputHold<'_> {
    fn drop(&mut self) {
        let mut in_use = self.cache.in_use();
        if let Some(count) = in_use.get_mut(&self.hash) {
            *count -= 1;
            if *count == 0 {
                in_use.remove(&self.hash);
            }
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes a path (file or directory) when dropped, unless disarmed.
struct TempPath(Option<PathBuf>);

impl TempPath {
    fn new(dir: &Path, hash: &str, suffix: &str) -> TempPath {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        TempPath(Some(
            dir.join(format!(".tmp-{hash}-{}-{n}{suffix}", std::process::id())),
        ))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().expect("temp path used after disarm")
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

impl InputCache {
    /// Opens (creating it 0755) the cache in `dir`, kept within `budget`, and removes
    /// leftovers of interrupted work.
    pub fn open(dir: PathBuf, budget: DiskBudget) -> std::io::Result<InputCache> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.ends_with(".zip") {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        Ok(InputCache {
            dir,
            budget,
            lock: tokio::sync::Mutex::new(()),
            in_use: Default::default(),
        })
    }

    fn in_use(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `hash` from eviction until the hold is dropped.
    fn hold(&self, hash: &str) -> InputHold<'_> {
        *self.in_use().entry(hash.to_owned()).or_default() += 1;
        InputHold {
            cache: self,
            hash: hash.to_owned(),
        }
    }

    /// Makes `lease`'s input available locally, downloading it if needed; it is not evicted
    /// while the returned hold lives.
    pub async fn prepare(
        &self,
        client: &Client,
        lease: &Lease,
    ) -> Result<(PreparedInput, InputHold<'_>), CacheError> {
        let hash = lease.input_hash.as_str();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CacheError::BadHash(hash.to_owned()));
        }
        let hash = hash.to_ascii_lowercase();
        let relative = match lease.input_kind {
            InputKind::File => checked_name("input name", &lease.input_name, false)?,
            InputKind::Zip => {
                for file in lease.settings.sequence.iter().flatten() {
                    checked_name("sequence file", file, true)?;
                }
                checked_name("main file", &lease.settings.main_file, true)?
            }
        };
        let root = self.dir.join(&hash);
        let hold = {
            let _guard = self.lock.lock().await;
            // Held before anything is evicted for it, so no other lease's preparation evicts
            // it while this lease renders.
            let hold = self.hold(&hash);
            if !root.is_dir() {
                self.fetch(client, &hash, lease).await?;
            } else {
                budget::touch(&root);
                if lease.input_kind == InputKind::File && !root.join(&relative).exists() {
                    // The same bytes were submitted before under another name: link the cached
                    // copy.
                    link_under_new_name(&root, &relative)?;
                }
            }
            hold
        };
        let main_file = root.join(&relative);
        let is_file = std::fs::symlink_metadata(&main_file).is_ok_and(|m| m.is_file());
        if !is_file {
            return Err(CacheError::MissingMainFile(
                relative.to_string_lossy().into_owned(),
            ));
        }
        Ok((PreparedInput { root, main_file }, hold))
    }

    /// Downloads, verifies and prepares `hash` into `cache/<hash>/`.
    async fn fetch(&self, client: &Client, hash: &str, lease: &Lease) -> Result<(), CacheError> {
        tracing::info!(hash, kind = ?lease.input_kind, "downloading job input");
        // Room for the download before it starts, when the coordinator says its size; the
        // file on disk is checked again below either way.
        let size = match client.blob_size(hash).await {
            Ok(size) => size.unwrap_or(0),
            Err(err) if err.is_transient() => return Err(CacheError::Download(err)),
            Err(_) => 0,
        };
        self.make_room(size, hash)?;
        let download = self.download(client, hash).await?;
        // The download now counts as part of the cache.
        self.make_room(0, hash)?;
        let staging = TempPath::new(&self.dir, hash, ".dir");
        std::fs::create_dir(staging.path()).map_err(io_err("cannot create a cache folder"))?;
        set_mode(staging.path(), 0o755)?;
        match lease.input_kind {
            InputKind::File => {
                let target = staging.path().join(&lease.input_name);
                std::fs::rename(download.path(), &target)
                    .map_err(io_err("cannot move the downloaded input"))?;
                set_mode(&target, 0o644)?;
            }
            InputKind::Zip => {
                let zip = self.dir.join(format!("{hash}.zip"));
                std::fs::rename(download.path(), &zip)
                    .map_err(io_err("cannot move the downloaded input"))?;
                let dest = staging.path().to_path_buf();
                let zip_for_task = zip.clone();
                let listed = match idlefarm_archive::list(&zip, &Limits::default()) {
                    Ok(entries) => entries,
                    Err(err) => {
                        let _ = std::fs::remove_file(&zip);
                        return Err(err.into());
                    }
                };
                let unpacked: u64 = listed.iter().map(|e| e.size).sum();
                if let Err(err) = self.make_room(unpacked, hash) {
                    let _ = std::fs::remove_file(&zip);
                    return Err(err);
                }
                // What the headers declare is what the budget made room for: an archive that
                // unpacks to more is stopped there.
                let limits = Limits {
                    max_total_bytes: unpacked,
                    ..Limits::default()
                };
                let extracted = tokio::task::spawn_blocking(move || {
                    idlefarm_archive::extract(&zip_for_task, &dest, &limits)
                })
                .await
                .map_err(|err| CacheError::Io {
                    context: "zip extraction stopped".to_owned(),
                    source: std::io::Error::other(err),
                });
                let _ = std::fs::remove_file(&zip);
                let entries = extracted??;
                tracing::debug!(hash, entries = entries.len(), "zip project extracted");
            }
        }
        let root = self.dir.join(hash);
        match std::fs::rename(staging.path(), &root) {
            Ok(()) => {
                let mut staging = staging;
                staging.disarm();
            }
            // Someone else finished first; theirs is as good as ours.
            Err(_) if root.is_dir() => {}
            Err(err) => return Err(io_err("cannot move the prepared input into place")(err)),
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Evicts least recently used inputs until `need` more bytes fit the budget, or says why
    /// they cannot.
    fn make_room(&self, need: u64, hash: &str) -> Result<(), CacheError> {
        let space = Space::of(&self.dir).map_err(io_err("cannot measure the cache's disk"))?;
        let in_use: Vec<String> = self.in_use().keys().cloned().collect();
        let mut keep: Vec<&str> = in_use.iter().map(String::as_str).collect();
        keep.push(hash);
        self.budget.make_room(&self.dir, need, &keep, space)?;
        Ok(())
    }

    /// Downloads the blob into a temp file and checks its hash; one retry on a mismatch.
    async fn download(&self, client: &Client, hash: &str) -> Result<TempPath, CacheError> {
        let mut mismatches = 0;
        let mut failures = 0;
        loop {
            let part = TempPath::new(&self.dir, hash, ".part");
            let mut file = tokio::fs::File::create(part.path())
                .await
                .map_err(io_err("cannot create a download file"))?;
            match client.download_blob(hash, &mut file).await {
                Ok(actual) if actual == hash => return Ok(part),
                Ok(actual) => {
                    mismatches += 1;
                    if mismatches >= 2 {
                        return Err(CacheError::Corrupt {
                            expected: hash.to_owned(),
                            actual,
                        });
                    }
                    tracing::warn!(
                        hash,
                        actual,
                        "downloaded input does not match its hash; retrying"
                    );
                }
                Err(err) if err.is_transient() && failures + 1 < DOWNLOAD_ATTEMPTS => {
                    failures += 1;
                    tracing::warn!(hash, "download failed ({err}); retrying");
                    tokio::time::sleep(Duration::from_secs(1 << failures)).await;
                }
                Err(err) => return Err(CacheError::Download(err)),
            }
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CacheError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(format!(
        "cannot set permissions of {}",
        path.display()
    )))
}

fn sync_dir(dir: &Path) {
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.sync_all();
    }
}

/// Hard-links the single cached file of `root` as `root/name`.
fn link_under_new_name(root: &Path, name: &Path) -> Result<(), CacheError> {
    let existing = std::fs::read_dir(root)
        .map_err(io_err("cannot read a cache folder"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()));
    match existing {
        Some(existing) => std::fs::hard_link(&existing, root.join(name))
            .map_err(io_err("cannot link a cached input under its new name")),
        None => Err(CacheError::MissingMainFile(
            name.to_string_lossy().into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_of_leases_being_worked_on_are_never_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let budget = DiskBudget {
            max_cache: 10_000,
            min_free: crate::budget::MinFree::Bytes(0),
        };
        let cache = InputCache::open(dir.path().join("cache"), budget).unwrap();
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        for hash in [&a, &b] {
            std::fs::create_dir(dir.path().join("cache").join(hash)).unwrap();
            std::fs::write(
                dir.path().join("cache").join(hash).join("scene.pov"),
                [0; 4000],
            )
            .unwrap();
        }
        // `a` is older, so it would go first; its lease still renders.
        let past = std::time::SystemTime::now() - Duration::from_secs(3600);
        let old = std::fs::File::open(dir.path().join("cache").join(&a)).unwrap();
        old.set_modified(past).unwrap();
        let hold = cache.hold(&a);
        cache.make_room(4000, &c).unwrap();
        assert!(dir.path().join("cache").join(&a).exists());
        assert!(!dir.path().join("cache").join(&b).exists());
        drop(hold);
        cache.make_room(8000, &c).unwrap();
        assert!(!dir.path().join("cache").join(&a).exists(), "released");
    }

    #[test]
    fn only_network_trouble_and_a_full_disk_give_the_lease_back() {
        use std::io::{Error, ErrorKind};
        let io = |kind: ErrorKind| CacheError::Io {
            context: "cannot move the downloaded input".into(),
            source: Error::from(kind),
        };
        let long = format!("{}.pov", "a".repeat(10_000));
        let name = checked_name("input name", &long, false).unwrap_err();
        assert!(!CacheError::from(name).is_transient());
        assert!(io(ErrorKind::StorageFull).is_transient());
        assert!(io(ErrorKind::QuotaExceeded).is_transient());
        assert!(
            CacheError::Io {
                context: "x".into(),
                source: Error::from_raw_os_error(libc::ENOSPC),
            }
            .is_transient()
        );
        for kind in [
            ErrorKind::InvalidFilename,
            ErrorKind::PermissionDenied,
            ErrorKind::ReadOnlyFilesystem,
            ErrorKind::Other,
        ] {
            assert!(!io(kind).is_transient(), "{kind:?}");
        }
        let too_long = CacheError::Io {
            context: "x".into(),
            source: Error::from_raw_os_error(libc::ENAMETOOLONG),
        };
        assert!(!too_long.is_transient());
        let archive = |source| {
            CacheError::Archive(ArchiveError::Io {
                path: "scene.pov".into(),
                source,
            })
        };
        assert!(archive(Error::from(ErrorKind::StorageFull)).is_transient());
        assert!(!archive(Error::from(ErrorKind::PermissionDenied)).is_transient());
        let download = |source| {
            CacheError::Download(ClientError::Io {
                context: "cannot write the downloaded input".into(),
                source,
            })
        };
        assert!(download(Error::from(ErrorKind::StorageFull)).is_transient());
        assert!(!download(Error::from(ErrorKind::PermissionDenied)).is_transient());
    }
}
