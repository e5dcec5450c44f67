//! Safe reading and extraction of submitted zip projects.
//!
//! The coordinator calls [`list`] when a project is submitted, to refuse a bad archive before
//! anything is stored; the agent calls [`extract`] before rendering. Both run the same checks:
//! every entry must be a regular file or a folder with a plain relative path (no absolute paths,
//! no `..`, no backslashes, no links, no devices), no path may appear twice, and the number of
//! entries and the unpacked size are capped. Extraction counts the bytes it actually writes, so
//! an archive that lies about its sizes in its headers is still stopped at the limit.

use std::collections::{HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

/// File type bits of a unix mode, as zip tools store them in an entry's external attributes.
const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

/// Signature of a central directory file header.
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;

/// Longest name of one file or folder in an entry's path, in bytes (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Longest entry path, in bytes: with the folder a project is extracted into in front, it
/// stays far below Linux's 4,096-byte `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 1024;

/// Characters of a too-long entry name quoted in its error, start and end together.
const QUOTED_NAME_CHARS: usize = 80;

/// Caps on what an archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files and folders) an archive may hold.
    pub max_files: usize,
    /// Most bytes all files together may unpack to.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 10_000,
            max_total_bytes: 8 << 30,
        }
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

/// Checks every entry of the archive at `zip_path` without extracting anything.
///
/// Sizes are the ones the archive declares; [`extract`] enforces the size limit on real data.
pub fn list(zip_path: &Path, limits: &Limits) -> Result<Vec<Entry>, ArchiveError> {
    let mut archive = open(zip_path)?;
    let checked = check(zip_path, &mut archive, limits)?;
    Ok(checked.into_iter().map(|c| c.entry).collect())
}

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
    for Checked { index, entry } in checked {
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
        }
        out.flush().map_err(|e| io_error(&target, e))?;
        extracted.push(Entry {
            size: written,
            ..entry
        });
    }
    Ok(extracted)
}

/// An entry that passed the checks, with its index in the archive.
struct Checked {
    index: usize,
    entry: Entry,
}

fn open(zip_path: &Path) -> Result<ZipArchive<File>, ArchiveError> {
    let file = File::open(zip_path).map_err(|e| io_error(zip_path, e))?;
    ZipArchive::new(file).map_err(|e| match e {
        ZipError::Io(e) => ArchiveError::NotAZip(e.to_string()),
        other => ArchiveError::NotAZip(other.to_string()),
    })
}

fn check(
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

/// Turns a stored entry name into a clean relative path, or says why it cannot be one.
fn normalize(name: &str) -> Result<String, ArchiveError> {
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
fn quoted(name: &str) -> String {
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

fn entry_error(entry: &str, err: ZipError) -> ArchiveError {
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

fn io_error(path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `8 GiB`, `300 MiB`, `12 bytes`: sizes in messages a person reads.
fn human_size(bytes: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use zip::ZipWriter;
    use zip::write::SimpleFileOptions;

    /// What to put in a test archive.
    enum Item<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    fn build(dir: &Path, items: &[Item]) -> PathBuf {
        let path = dir.join("test.zip");
        let mut zip = ZipWriter::new(File::create(&path).unwrap());
        let options = SimpleFileOptions::default().unix_permissions(0o644);
        for item in items {
            match item {
                Item::File(name, data) => {
                    zip.start_file(*name, options).unwrap();
                    zip.write_all(data).unwrap();
                }
                Item::Dir(name) => zip.add_directory(*name, options).unwrap(),
                Item::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
            }
        }
        zip.finish().unwrap();
        path
    }

    /// Rewrites every occurrence of `from` in the file (names in local and central headers).
    fn patch(path: &Path, from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let mut bytes = fs::read(path).unwrap();
        let mut i = 0;
        while i + from.len() <= bytes.len() {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
            }
            i += 1;
        }
        fs::write(path, bytes).unwrap();
    }

    /// Finds the central directory header of `name` (its last occurrence in the file).
    fn central_header(bytes: &[u8], name: &str) -> usize {
        let name = name.as_bytes();
        let at = (0..=bytes.len() - name.len())
            .rev()
            .find(|&i| &bytes[i..i + name.len()] == name)
            .unwrap();
        let header = at - 46;
        assert_eq!(
            &bytes[header..header + 4],
            &CENTRAL_HEADER_SIGNATURE.to_le_bytes()
        );
        header
    }

    fn set_unix_mode(path: &Path, name: &str, mode: u32) {
        let mut bytes = fs::read(path).unwrap();
        let header = central_header(&bytes, name);
        bytes[header + 38..header + 42].copy_from_slice(&(mode << 16).to_le_bytes());
        fs::write(path, bytes).unwrap();
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn extracts_nested_folders_with_fixed_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[
                Item::File("scene.pov", b"sphere {}"),
                Item::Dir("textures/"),
                Item::File("textures/wood/oak.png", b"png-bytes"),
                Item::File("./inc//colors.inc", b"#declare X = 1;"),
            ],
        );
        let listed = list(&zip, &limits()).unwrap();
        let paths: Vec<&str> = listed.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "scene.pov",
                "textures",
                "textures/wood/oak.png",
                "inc/colors.inc"
            ]
        );
        assert!(listed[1].is_dir);

        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let extracted = extract(&zip, &dest, &limits()).unwrap();
        assert_eq!(extracted, listed);
        assert_eq!(
            fs::read(dest.join("textures/wood/oak.png")).unwrap(),
            b"png-bytes"
        );
        assert_eq!(
            fs::read(dest.join("inc/colors.inc")).unwrap(),
            b"#declare X = 1;"
        );
        let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("scene.pov"), 0o644);
        assert_eq!(mode("textures"), 0o755);
        assert_eq!(mode("textures/wood"), 0o755);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_zip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notes.zip");
        fs::write(&path, "just some text").unwrap();
        let err = list(&path, &limits()).unwrap_err();
        assert!(matches!(err, ArchiveError::NotAZip(_)), "{err}");
        assert!(err.to_string().contains("not a zip file"), "{err}");
    }

    #[test]
    fn refuses_a_truncated_zip() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(tmp.path(), &[Item::File("a.pov", &[b'x'; 500])]);
        let bytes = fs::read(&zip).unwrap();
        fs::write(&zip, &bytes[..bytes.len() - 30]).unwrap();
        assert!(matches!(
            list(&zip, &limits()),
            Err(ArchiveError::NotAZip(_))
        ));
    }

    #[test]
    fn refuses_damaged_entry_data_on_extraction() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("test.zip");
        let mut zip = ZipWriter::new(File::create(&path).unwrap());
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zip.start_file("a.pov", stored).unwrap();
        zip.write_all(b"camera { location <0,0,-5> }").unwrap();
        zip.finish().unwrap();
        patch(&path, b"location", b"LOCATION");

        list(&path, &limits()).unwrap();
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let err = extract(&path, &dest, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Corrupt { ref entry, .. } if entry == "a.pov"),
            "{err}"
        );
    }

    #[test]
    fn refuses_absolute_paths() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["/etc/cron.d/evil", "C:/Windows/evil.pov"] {
            let zip = build(tmp.path(), &[Item::File(name, b"x")]);
            let err = list(&zip, &limits()).unwrap_err();
            assert!(
                matches!(err, ArchiveError::AbsolutePath { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn refuses_parent_components() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["../evil.pov", "a/../../evil.pov", "a/b/.."] {
            let zip = build(
                tmp.path(),
                &[Item::File("ok.pov", b"x"), Item::File(name, b"x")],
            );
            let err = list(&zip, &limits()).unwrap_err();
            assert!(
                matches!(err, ArchiveError::ParentDir { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn refuses_names_and_paths_beyond_file_system_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let long_name = format!("{}.inc", "a".repeat(300));
        let deep = format!("{}x.inc", "dir/".repeat(300));
        let cases = [
            (
                long_name.as_str(),
                "304 bytes long, and file systems allow at most 255",
            ),
            (
                deep.as_str(),
                "1205 bytes long, and at most 1024 are allowed",
            ),
        ];
        for (name, reason) in cases {
            let zip = build(
                tmp.path(),
                &[Item::File("ok.pov", b"x"), Item::File(name, b"x")],
            );
            let err = list(&zip, &limits()).unwrap_err();
            assert!(
                matches!(err, ArchiveError::NameTooLong { .. }),
                "{name}: {err}"
            );
            let message = err.to_string();
            assert!(message.contains(reason), "{message}");
            assert!(message.contains(&name[..20]), "names the entry: {message}");
            assert!(message.len() < 300, "quotes a shortened name: {message}");
        }
        let longest = format!("{}.inc", "b".repeat(MAX_NAME_BYTES - 4));
        let zip = build(tmp.path(), &[Item::File(&longest, b"x")]);
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        extract(&zip, &dest, &limits()).unwrap();
        assert!(dest.join(&longest).is_file());
    }

    #[test]
    fn refuses_backslashes() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(tmp.path(), &[Item::File("..\\..\\evil.pov", b"x")]);
        let err = list(&zip, &limits()).unwrap_err();
        assert!(matches!(err, ArchiveError::Backslash { .. }), "{err}");
    }

    #[test]
    fn refuses_symlinks_and_never_extracts_them() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[
                Item::Symlink("textures", "/etc"),
                Item::File("textures/passwd", b"x"),
            ],
        );
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Symlink { ref entry } if entry == "textures"),
            "{err}"
        );

        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        assert!(extract(&zip, &dest, &limits()).is_err());
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
    }

    #[test]
    fn refuses_devices_and_pipes() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[Item::File("scene.pov", b"x"), Item::File("fifo", b"")],
        );
        set_unix_mode(&zip, "fifo", S_IFIFO | 0o644);
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::NotRegular { ref entry, kind: "named pipe" } if entry == "fifo"),
            "{err}"
        );
    }

    #[test]
    fn refuses_too_many_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[
                Item::File("a", b"1"),
                Item::File("b", b"2"),
                Item::File("c", b"3"),
            ],
        );
        let small = Limits {
            max_files: 2,
            ..limits()
        };
        let err = list(&zip, &small).unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooManyFiles { count: 3, limit: 2 }),
            "{err}"
        );
    }

    #[test]
    fn refuses_too_much_declared_data() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[Item::File("a", &[0; 60]), Item::File("big", &[0; 60])],
        );
        let small = Limits {
            max_total_bytes: 100,
            ..limits()
        };
        let err = list(&zip, &small).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { ref entry, limit: 100 } if entry == "big"));
        assert!(err.to_string().contains("100 bytes"), "{err}");
    }

    #[test]
    fn counts_written_bytes_not_declared_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(tmp.path(), &[Item::File("bomb", &[7; 5000])]);
        // Make the central directory claim the file unpacks to 10 bytes.
        let mut bytes = fs::read(&zip).unwrap();
        let header = central_header(&bytes, "bomb");
        bytes[header + 24..header + 28].copy_from_slice(&10u32.to_le_bytes());
        fs::write(&zip, bytes).unwrap();

        let small = Limits {
            max_total_bytes: 1000,
            ..limits()
        };
        assert_eq!(list(&zip, &small).unwrap()[0].size, 10);
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        let err = extract(&zip, &dest, &small).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::TooLarge { .. } | ArchiveError::Corrupt { .. }
            ),
            "{err}"
        );
        let left = fs::metadata(dest.join("bomb"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(left <= 1000, "{left} bytes were written");
    }

    #[test]
    fn refuses_paths_that_normalize_to_the_same_file() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[
                Item::File("a/scene.pov", b"1"),
                Item::File("./a//scene.pov", b"2"),
            ],
        );
        let err = list(&zip, &limits()).unwrap_err();
        assert!(matches!(err, ArchiveError::Duplicate { ref entry } if entry == "a/scene.pov"));
    }

    #[test]
    fn refuses_entries_stored_twice_under_the_same_name() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[Item::File("scene.pov", b"1"), Item::File("scenf.pov", b"2")],
        );
        patch(&zip, b"scenf.pov", b"scene.pov");
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Duplicate { ref entry } if entry == "scene.pov"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_file_that_is_also_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(
            tmp.path(),
            &[Item::File("tex", b"1"), Item::File("tex/wood.png", b"2")],
        );
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::FileIsFolder { ref file, .. } if file == "tex"),
            "{err}"
        );
    }

    #[test]
    fn refuses_an_archive_without_files() {
        let tmp = tempfile::tempdir().unwrap();
        let only_dirs = build(tmp.path(), &[Item::Dir("textures/")]);
        assert!(matches!(
            list(&only_dirs, &limits()),
            Err(ArchiveError::Empty)
        ));
        let nothing = build(tmp.path(), &[]);
        assert!(matches!(
            list(&nothing, &limits()),
            Err(ArchiveError::Empty)
        ));
    }

    #[test]
    fn never_overwrites_what_is_already_in_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let zip = build(tmp.path(), &[Item::File("inc/colors.inc", b"x")]);
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        std::os::unix::fs::symlink("/tmp", dest.join("inc")).unwrap();
        let err = extract(&zip, &dest, &limits()).unwrap_err();
        assert!(matches!(err, ArchiveError::Blocked { .. }), "{err}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(8 << 30), "8 GiB");
        assert_eq!(human_size(1536 << 10), "1.5 MiB");
        assert_eq!(human_size(100), "100 bytes");
    }
}
