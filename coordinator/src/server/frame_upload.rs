//! Receiving a rendered frame from an agent without trusting it. The lease and frame are checked
//! before this runs; then the body is streamed to a temp file in the job's frames folder under a
//! limit derived from the job's frame size (never buffered whole), and the image is decoded from
//! that file before it is kept.

use std::io::{BufReader, Seek};
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use idlefarm_protocol::ImageFormat;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::files::PendingFile;

/// The smallest upload limit, whatever the frame size: room for metadata and odd encoders.
const MIN_BODY_LIMIT: u64 = 4 << 20;

/// The most bytes a frame of `size` may take on the wire: its pixels uncompressed at the
/// widest sample PNG and JPEG allow (RGBA, 16 bits) with each row's filter byte, plus a quarter
/// and a MiB of slack for chunk framing and metadata; at least [`MIN_BODY_LIMIT`].
pub fn body_limit((w, h): (u32, u32)) -> u64 {
    let raw = u64::from(w) * u64::from(h) * 8 + u64::from(h);
    (raw + raw / 4 + (1 << 20)).max(MIN_BODY_LIMIT)
}

/// Streams `body` into a new temp file in `dir`. Refuses (413) a declared length beyond `limit`
/// before reading anything, and an undeclared one as soon as it passes `limit`; the temp file
/// is gone then.
pub async fn receive(
    headers: &HeaderMap,
    body: Body,
    dir: &Path,
    limit: u64,
    frame: i64,
) -> Result<PendingFile, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "frame {frame} is larger than {limit} bytes, more than any image of the job's frame size needs"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let dir = dir.to_path_buf();
    let mut pending = tokio::task::spawn_blocking(move || PendingFile::create_in(&dir))
        .await
        .map_err(ApiError::internal)??;
    let mut out = tokio::fs::File::from_std(pending.file().try_clone()?);
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("frame {frame} upload was interrupted: {e}"))
        })?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large());
        }
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(pending)
}

/// Decodes the received image and checks its size is the job's; returns the decoded image (for
/// the thumbnail). Blocking.
pub fn check(
    pending: &mut PendingFile,
    format: ImageFormat,
    expected: (u32, u32),
    frame: i64,
) -> Result<image::DynamicImage, ApiError> {
    let fmt = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
    };
    let invalid = |e: image::ImageError| {
        ApiError::bad_request(format!(
            "frame {frame} is not a valid {format:?} image: {e}"
        ))
    };
    let mut file = pending.file().try_clone()?;
    file.rewind()?;
    let img = image::ImageReader::with_format(BufReader::new(file), fmt)
        .decode()
        .map_err(invalid)?;
    let got = (img.width(), img.height());
    if got != expected {
        return Err(wrong_size(frame, got, expected));
    }
    Ok(img)
}

fn wrong_size(frame: i64, got: (u32, u32), expected: (u32, u32)) -> ApiError {
    ApiError::bad_request(format!(
        "frame {frame} is {}x{} but the job renders {}x{}",
        got.0, got.1, expected.0, expected.1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_limit_grows_with_the_frame_and_has_a_floor() {
        assert_eq!(body_limit((64, 48)), MIN_BODY_LIMIT);
        let hd = body_limit((1920, 1080));
        assert!(hd > 1920 * 1080 * 8, "a 16-bit RGBA HD frame fits");
        assert!(hd < 1920 * 1080 * 11, "but not much more");
    }
}
