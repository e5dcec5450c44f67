//! Turns a finished job's frames into an MP4 (ffmpeg, H.264, yuv420p, even dimensions, the job's
//! fps) and a zip of the frames. Both are written under temp names and renamed into place.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// Why assembly failed; the frames are kept either way.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// ffmpeg could not be started.
    #[error("could not run {0}: {1} (is ffmpeg installed?)")]
    Spawn(String, io::Error),
    /// ffmpeg ran and failed.
    #[error("ffmpeg failed ({status}): {tail}")]
    Ffmpeg {
        /// Exit status.
        status: String,
        /// Last lines it printed.
        tail: String,
    },
    /// ffmpeg ran too long.
    #[error("ffmpeg did not finish within {0:?}")]
    Timeout(Duration),
    /// Reading frames or writing outputs failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Writing the zip failed.
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// Encodes `frames` (image files in frame order) into `out` at `fps`.
pub async fn encode_video(
    ffmpeg: &Path,
    frames: &[PathBuf],
    fps: f64,
    out: &Path,
) -> Result<(), AssembleError> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let list = tempfile::Builder::new()
        .prefix(".frames-")
        .suffix(".txt")
        .tempfile_in(dir)?;
    // The concat demuxer takes an explicit list, so frame steps and gaps in numbering are fine.
    let frame_time = 1.0 / fps;
    let mut text = String::new();
    for f in frames {
        let escaped = f.display().to_string().replace('\'', "'\\''");
        text.push_str(&format!("file '{escaped}'\nduration {frame_time:.6}\n"));
    }
    if let Some(last) = frames.last() {
        // The concat demuxer ignores the last duration unless the last file is repeated.
        let escaped = last.display().to_string().replace('\'', "'\\''");
        text.push_str(&format!("file '{escaped}'\n"));
    }
    std::fs::write(list.path(), text)?;
    let tmp = dir.join(format!(
        ".tmp-{}",
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
    ])
    .arg(list.path())
    .args(["-frames:v", &frames.len().to_string()])
    .args(["-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p"])
    .args(["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-r"])
    .arg(format!("{fps}"))
    .args(["-f", "mp4", "-movflags", "+faststart"])
    .arg(&tmp)
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let limit = Duration::from_secs(3600);
    let output = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| AssembleError::Timeout(limit))?
        .map_err(|e| AssembleError::Spawn(ffmpeg.display().to_string(), e))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(AssembleError::Ffmpeg {
            status: output.status.to_string(),
            tail,
        });
    }
    crate::files::rename_durable(&tmp, out)?;
    Ok(())
}

/// Writes a zip (stored, not compressed: images are compressed already) of `frames` to `out`.
pub fn zip_frames(frames: &[PathBuf], out: &Path) -> Result<(), AssembleError> {
    crate::files::write_atomic_with(out, |file| {
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for f in frames {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            zip.start_file(name.as_ref(), options)?;
            io::copy(&mut File::open(f)?, &mut zip)?;
        }
        zip.finish()?;
        Ok(())
    })
}
