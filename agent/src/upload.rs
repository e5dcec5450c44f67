//! Frame uploads: each finished frame is read (refusing links and incomplete images) and sent
//! to the coordinator in the order frames finish, retrying while it cannot be reached. A 409
//! means the frame no longer matters (lease gone, frame already done); other 4xx refuse it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use idlefarm_protocol::ImageFormat;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Upload};
use crate::heartbeat::MAX_BACKOFF;
use crate::render::RenderedFrame;

/// Frames the uploader handled.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Stored, or already done (409): nothing more to do for them.
    pub handled: BTreeSet<i64>,
    /// Frames the coordinator refused, with its reason.
    pub rejected: Vec<(i64, String)>,
}

/// Uploads frames in the order they finish until the channel closes.
pub async fn upload_frames(
    client: Arc<Client>,
    lease_id: i64,
    format: ImageFormat,
    mut frames: mpsc::UnboundedReceiver<RenderedFrame>,
    stop: CancellationToken,
) -> UploadReport {
    let mut report = UploadReport::default();
    while let Some(RenderedFrame {
        frame,
        path,
        renderer_error,
    }) = frames.recv().await
    {
        let image = match read_frame(&path, format).await {
            Ok(image) => image,
            Err(reason) => {
                tracing::warn!(lease = lease_id, frame, "{reason}");
                report.rejected.push((frame, reason));
                continue;
            }
        };
        let mut delay = Duration::from_secs(1);
        loop {
            match client
                .upload_frame(
                    lease_id,
                    frame,
                    format,
                    image.clone(),
                    renderer_error.as_deref(),
                )
                .await
            {
                Ok(Upload::Stored) => {
                    tracing::debug!(lease = lease_id, frame, "frame uploaded");
                    report.handled.insert(frame);
                }
                Ok(Upload::Conflict) => {
                    tracing::info!(
                        lease = lease_id,
                        frame,
                        "frame not needed any more (lease gone or frame already done)"
                    );
                    report.handled.insert(frame);
                }
                Err(err) if err.is_transient() => {
                    tracing::warn!(
                        lease = lease_id,
                        frame,
                        "upload failed ({err}); retrying in {delay:?}"
                    );
                    tokio::select! {
                        _ = stop.cancelled() => return report,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(err) => {
                    tracing::warn!(lease = lease_id, frame, "frame refused: {err}");
                    report.rejected.push((frame, err.to_string()));
                }
            }
            break;
        }
        let _ = tokio::fs::remove_file(&path).await;
    }
    report
}

/// Reads a finished frame, refusing links and files that do not end like a complete image.
async fn read_frame(path: &Path, format: ImageFormat) -> Result<Vec<u8>, String> {
    // A complete file is expected; allow a moment for the last write to land, just in case.
    for attempt in 0..5 {
        let mut file = tokio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .await
            .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
        let meta = file.metadata().await.map_err(|err| err.to_string())?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        let mut image = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut image)
            .await
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        if looks_complete(&image, format) {
            return Ok(image);
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Err(format!("{} is not a complete image", path.display()))
}

/// Whether `image` ends the way a complete file of `format` ends.
fn looks_complete(image: &[u8], format: ImageFormat) -> bool {
    match format {
        ImageFormat::Png => {
            image.starts_with(b"\x89PNG\r\n\x1a\n")
                && image.len() >= 12
                && &image[image.len() - 8..image.len() - 4] == b"IEND"
        }
        ImageFormat::Jpeg => image.starts_with(&[0xFF, 0xD8]) && image.ends_with(&[0xFF, 0xD9]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_images_are_recognised() {
        let png = b"\x89PNG\r\n\x1a\n....\x00\x00\x00\x00IEND\xaeB`\x82";
        assert!(looks_complete(png, ImageFormat::Png));
        assert!(!looks_complete(&png[..png.len() - 3], ImageFormat::Png));
        assert!(looks_complete(
            &[0xFF, 0xD8, 1, 2, 0xFF, 0xD9],
            ImageFormat::Jpeg
        ));
        assert!(!looks_complete(&[0xFF, 0xD8, 1, 2], ImageFormat::Jpeg));
    }
}
