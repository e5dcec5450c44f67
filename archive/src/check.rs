//! The checks every archive passes before anything is extracted: entry types, names, duplicates,
//! counts, sizes and how far each entry expands.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use crate::error::{entry_error, io_error};
use crate::names::normalize;
use crate::{ArchiveError, Entry, Limits};

/// File type bits of a unix mode, as zip tools store them in an entry's external attributes.
pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFSOCK: u32 = 0o140_000;
pub(crate) const S_IFLNK: u32 = 0o120_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFBLK: u32 = 0o060_000;
pub(crate) const S_IFDIR: u32 = 0o040_000;
pub(crate) const S_IFCHR: u32 = 0o020_000;
pub(crate) const S_IFIFO: u32 = 0o010_000;

/// Signature of a central directory file header.
pub(crate) const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;

/// An entry that passed the checks, with its index in the archive.
pub(crate) struct Checked {
    pub(crate) index: usize,
    pub(crate) entry: Entry,
    /// The entry's compressed size: what the reader really consumes, whatever the header
    /// claims the entry unpacks to.
    pub(crate) compressed: u64,
}

/// Opens the archive; anything the zip reader cannot make sense of is [`ArchiveError::NotAZip`].
pub(crate) fn open(zip_path: &Path) -> Result<ZipArchive<File>, ArchiveError> {
    let file = File::open(zip_path).map_err(|e| io_error(zip_path, e))?;
    ZipArchive::new(file).map_err(|e| match e {
        ZipError::Io(e) => ArchiveError::NotAZip(e.to_string()),
        other => ArchiveError::NotAZip(other.to_string()),
    })
}

/// Runs every check on the archive's entries, in order, and returns those to extract.
pub(crate) fn check(
    zip_path: &Path,
    archive: &mut ZipArchive<File>,
    limits: &Limits,
) -> Result<Vec<Checked>, ArchiveError> {
    if archive.len() > limits.max_files {
        return Err(ArchiveError::TooManyFiles {
            count: archive.len(),
            limit: limits.max_files,
        });
    }
    check_no_hidden_duplicates(zip_path, archive, limits)?;

    let mut checked: Vec<Checked> = Vec::with_capacity(archive.len());
    let mut seen: HashSet<String> = HashSet::new();
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let stored_name = archive
            .name_for_index(index)
            .unwrap_or_default()
            .to_string();
        let file = archive
            .by_index_raw(index)
            .map_err(|e| entry_error(&stored_name, e))?;
        if file.encrypted() {
            return Err(ArchiveError::Encrypted { entry: stored_name });
        }
        let compression = file.compression();
        if !matches!(
            compression,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(ArchiveError::UnsupportedCompression {
                entry: stored_name,
                method: compression.to_string(),
            });
        }
        let file_type = file.unix_mode().map(|mode| mode & S_IFMT);
        match file_type {
            None | Some(0) | Some(S_IFREG) | Some(S_IFDIR) => {}
            Some(S_IFLNK) => return Err(ArchiveError::Symlink { entry: stored_name }),
            Some(other) => {
                let kind = match other {
                    S_IFCHR => "character device",
                    S_IFBLK => "block device",
                    S_IFIFO => "named pipe",
                    S_IFSOCK => "socket",
                    _ => "special file",
                };
                return Err(ArchiveError::NotRegular {
                    entry: stored_name,
                    kind,
                });
            }
        }
        let is_dir = stored_name.ends_with('/') || file_type == Some(S_IFDIR);
        let size = if is_dir { 0 } else { file.size() };
        let compressed = file.compressed_size();
        drop(file);

        let path = normalize(&stored_name)?;
        if path.is_empty() {
            if is_dir {
                continue; // "./" names the project folder itself
            }
            return Err(ArchiveError::BadName {
                entry: stored_name,
                reason: "the name is empty",
            });
        }
        if !seen.insert(path.clone()) {
            return Err(ArchiveError::Duplicate { entry: path });
        }
        limits.check_ratio(&path, size, compressed)?;
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TooLarge {
                entry: path,
                limit: limits.max_total_bytes,
            });
        }
        checked.push(Checked {
            index,
            entry: Entry { path, size, is_dir },
            compressed,
        });
    }

    let files: HashSet<&str> = checked
        .iter()
        .filter(|c| !c.entry.is_dir)
        .map(|c| c.entry.path.as_str())
        .collect();
    if files.is_empty() {
        return Err(ArchiveError::Empty);
    }
    for c in &checked {
        let path = c.entry.path.as_str();
        for (i, _) in path.match_indices('/') {
            if files.contains(&path[..i]) {
                return Err(ArchiveError::FileIsFolder {
                    file: path[..i].to_string(),
                    entry: path.to_string(),
                });
            }
        }
    }
    Ok(checked)
}

/// The zip reader keeps only the last of several entries with the same stored name, so count
/// the central directory's headers ourselves: a hidden duplicate is refused, not dropped.
fn check_no_hidden_duplicates(
    zip_path: &Path,
    archive: &ZipArchive<File>,
    limits: &Limits,
) -> Result<(), ArchiveError> {
    let file = File::open(zip_path).map_err(|e| io_error(zip_path, e))?;
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(archive.central_directory_start()))
        .map_err(|e| io_error(zip_path, e))?;

    let mut names: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut count = 0usize;
    let mut header = [0u8; 46];
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_error(zip_path, e)),
        }
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]])
            != CENTRAL_HEADER_SIGNATURE
        {
            break;
        }
        let field = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]) as usize;
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let mut name = vec![0u8; name_len];
        reader
            .read_exact(&mut name)
            .map_err(|e| ArchiveError::NotAZip(e.to_string()))?;
        reader
            .seek_relative((extra_len + comment_len) as i64)
            .map_err(|e| io_error(zip_path, e))?;
        count += 1;
        if count > limits.max_files {
            return Err(ArchiveError::TooManyFiles {
                count,
                limit: limits.max_files,
            });
        }
        let seen = names.entry(name.clone()).or_insert(0);
        *seen += 1;
        if *seen > 1 {
            return Err(ArchiveError::Duplicate {
                entry: String::from_utf8_lossy(&name).into_owned(),
            });
        }
    }
    if count != archive.len() {
        return Err(ArchiveError::NotAZip(format!(
            "its central directory lists {count} entries, its end record {}",
            archive.len()
        )));
    }
    Ok(())
}
