//! Extraction of a checked archive: files 0644, folders 0755, never through a link, never over
//! an existing file, and every written byte counted against the limits.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::check::{Checked, check, open};
use crate::error::{entry_error, io_error};
use crate::{ArchiveError, Entry, Limits};

/// Checks the archive like [`list`], then extracts it into `dest`, which must be an existing folder.
///
/// Files are created with mode 0644 and folders with 0755; nothing is ever written through a
/// symbolic link, and no existing file is overwritten. On error `dest` may hold part of the
/// archive; the caller removes it.
pub fn extract(zip_path: &Path, dest: &Path, limits: &Limits) -> Result<Vec<Entry>, ArchiveError> {
    let mut archive = open(zip_path)?;
    let checked = check(zip_path, &mut archive, limits)?;
    let dest_meta = fs::metadata(dest).map_err(|e| io_error(dest, e))?;
    if !dest_meta.is_dir() {
        return Err(io_error(
            dest,
            io::Error::new(io::ErrorKind::NotADirectory, "not a folder"),
        ));
    }

    let mut total: u64 = 0;
    let mut extracted = Vec::with_capacity(checked.len());
    for Checked {
        index,
        entry,
        compressed,
    } in checked
    {
        if entry.is_dir {
            make_dirs(dest, &entry.path, &entry.path)?;
            extracted.push(entry);
            continue;
        }
        if let Some((parent, _)) = entry.path.rsplit_once('/') {
            make_dirs(dest, parent, &entry.path)?;
        }
        let target = dest.join(&entry.path);
        // create_new (O_EXCL) refuses to open an existing path, including a symbolic link.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&target)
            .map_err(|e| io_error(&target, e))?;
        out.set_permissions(Permissions::from_mode(0o644))
            .map_err(|e| io_error(&target, e))?;

        let mut file = archive
            .by_index(index)
            .map_err(|e| entry_error(&entry.path, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ArchiveError::Corrupt {
                        entry: entry.path,
                        reason: e.to_string(),
                    });
                }
            };
            total += n as u64;
            if total > limits.max_total_bytes {
                drop(out);
                let _ = fs::remove_file(&target);
                return Err(ArchiveError::TooLarge {
                    entry: entry.path,
                    limit: limits.max_total_bytes,
                });
            }
            out.write_all(&buf[..n]).map_err(|e| io_error(&target, e))?;
            written += n as u64;
            // The reader consumes at most `compressed` bytes, so this holds even when the
            // headers lie about the unpacked size.
            if let Err(err) = limits.check_ratio(&entry.path, written, compressed) {
                drop(out);
                let _ = fs::remove_file(&target);
                return Err(err);
            }
        }
        out.flush().map_err(|e| io_error(&target, e))?;
        extracted.push(Entry {
            size: written,
            ..entry
        });
    }
    Ok(extracted)
}

/// Creates `rel` (a normalized path) under `dest`, one folder at a time, refusing to pass
/// through anything that is not a real folder.
fn make_dirs(dest: &Path, rel: &str, entry: &str) -> Result<(), ArchiveError> {
    let mut current = dest.to_path_buf();
    for part in rel.split('/') {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => {
                return Err(ArchiveError::Blocked {
                    entry: entry.to_string(),
                    path: current.display().to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&current)
                    .map_err(|e| io_error(&current, e))?;
                fs::set_permissions(&current, Permissions::from_mode(0o755))
                    .map_err(|e| io_error(&current, e))?;
            }
            Err(e) => return Err(io_error(&current, e)),
        }
    }
    Ok(())
}
