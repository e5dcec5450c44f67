//! The data directory's file layout, the content-addressed blob store for job inputs (blake3),
//! and the one way files are written: temp name, fsync, rename, fsync the directory. A crash
//! never leaves a half-written file under its final name.
//!
//! ```text
//! DATA/idlefarm.db                      SQLite (WAL)
//! DATA/blobs/ab/abcdef…                 job inputs by blake3 hash
//! DATA/jobs/<id>/frames/frame_00001.png finished frames
//! DATA/jobs/<id>/thumbs/frame_00001.jpg their thumbnails (JPEG, at most 320 px wide)
//! DATA/jobs/<id>/<name>.mp4, frames.zip assembled outputs
//! DATA/tmp/                             uploads in progress (same filesystem, so rename works)
//! DATA/uploads/<id>/                    staged uploads: the scene, its ini, upload.json
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use idlefarm_protocol::{ImageFormat, frame_file_name};

/// The coordinator's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the layout under `root` if needed.
    pub fn create(root: &Path) -> io::Result<DataDir> {
        for sub in ["blobs", "jobs", "tmp", "uploads"] {
            fs::create_dir_all(root.join(sub))?;
        }
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Scratch space for uploads in progress.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The folder of staged uploads (inspected scene files waiting to be submitted).
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// A staged upload's folder, if `id` is well-formed (64 lowercase hex digits, as
    /// [`crate::auth::new_secret`] makes them): an id from a request never leaves the folder.
    pub fn upload(&self, id: &str) -> Option<PathBuf> {
        let ok = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| self.uploads().join(id))
    }

    /// A job's folder.
    pub fn job_dir(&self, job: i64) -> PathBuf {
        self.root.join("jobs").join(job.to_string())
    }

    /// A job's frame folder.
    pub fn frames_dir(&self, job: i64) -> PathBuf {
        self.job_dir(job).join("frames")
    }

    /// A job's assembled video.
    pub fn video(&self, job: i64) -> PathBuf {
        self.job_dir(job).join("video.mp4")
    }

    /// A job's zip of frames.
    pub fn frames_zip(&self, job: i64) -> PathBuf {
        self.job_dir(job).join("frames.zip")
    }

    /// Where the blob with this hash lives, if the hash is well-formed (64 lowercase hex digits).
    pub fn blob(&self, hash: &str) -> Option<PathBuf> {
        let ok = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| self.root.join("blobs").join(&hash[..2]).join(hash))
    }

    /// Stores the file at `src` as a blob and returns its hash. Storing the same content twice
    /// keeps one copy.
    pub fn put_blob(&self, src: &Path) -> io::Result<String> {
        let hash = hash_file(src)?;
        let dest = self.blob(&hash).expect("blake3 hex is a valid blob name");
        if !dest.exists() {
            fs::create_dir_all(dest.parent().expect("blob has a parent"))?;
            let mut input = File::open(src)?;
            write_atomic_with(&dest, |out| io::copy(&mut input, out).map(|_| ()))?;
        }
        Ok(hash)
    }

    /// Where a frame's thumbnail is stored: `DATA/jobs/<id>/thumbs/frame_00001.jpg`.
    pub fn thumbnail(&self, job: i64, frame: i64) -> PathBuf {
        self.job_dir(job)
            .join("thumbs")
            .join(frame_file_name(frame, ImageFormat::Jpeg))
    }
}

/// blake3 of a file's content, hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Writes a file through `fill` to a temp name beside `path`, fsyncs it, renames it into place
/// and fsyncs the directory.
pub fn write_atomic_with<E: From<io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut pending = PendingFile::create_in(dir)?;
    fill(pending.file())?;
    pending.commit(path)?;
    Ok(())
}

/// A file being written under a temporary name in the folder of its final name. Dropped
/// without [`PendingFile::commit`], it disappears; committed, it appears whole under its final
/// name, durably. Lets a caller write and fsync first and decide later (outside any lock)
/// whether the file is wanted.
#[derive(Debug)]
pub struct PendingFile {
    tmp: tempfile::NamedTempFile,
}

impl PendingFile {
    /// A new empty temp file in `dir` (created if missing).
    pub fn create_in(dir: &Path) -> io::Result<PendingFile> {
        fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        Ok(PendingFile { tmp })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Fsyncs the content, renames it to `dest` (which must be in the same folder or at least
    /// on the same filesystem) and fsyncs `dest`'s folder.
    pub fn commit(self, dest: &Path) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(dest).map_err(|e| e.error)?;
        sync_dir(dest)
    }
}

/// Fsyncs the folder holding `path`, so a rename into it survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Moves a file written by another program (ffmpeg) into place durably: fsyncs it, renames it
/// (same filesystem) and fsyncs the destination folder.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    File::open(from)?.sync_all()?;
    fs::create_dir_all(to.parent().unwrap_or(Path::new(".")))?;
    fs::rename(from, to)?;
    sync_dir(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::create(dir.path()).unwrap();
        let src = dir.path().join("in.pov");
        fs::write(&src, b"sphere { 0, 1 }").unwrap();
        let a = data.put_blob(&src).unwrap();
        let b = data.put_blob(&src).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            fs::read(data.blob(&a).unwrap()).unwrap(),
            b"sphere { 0, 1 }"
        );
        assert!(data.blob("../../etc/passwd").is_none());
        assert!(data.blob(&a.to_uppercase()).is_none());
    }

    #[test]
    fn thumbnails_live_beside_the_frames_as_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::create(dir.path()).unwrap();
        let thumb = data.thumbnail(4, 12);
        assert_eq!(thumb, dir.path().join("jobs/4/thumbs/frame_00012.jpg"));
        write_atomic(&thumb, b"jpeg").unwrap();
        assert_eq!(fs::read(&thumb).unwrap(), b"jpeg");
    }

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
