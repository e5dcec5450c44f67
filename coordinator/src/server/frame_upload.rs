//! Receiving a rendered frame from an agent without trusting it. The lease and frame are checked
//! before this runs; then the body is streamed to a temp file in the job's frames folder under a
//! limit derived from the job's frame size (never buffered whole); the image header is checked
//! against the job's frame size before anything is decoded, and the decoder's memory is capped
//! to what one frame of that size needs. What is kept ends where the image ends.

use std::io::{BufReader, Seek};
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures::StreamExt;
use idlefarm_protocol::ImageFormat;
use tokio::io::AsyncWriteExt;

use super::image_end::image_end;
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

/// Cuts the received file where the image ends (dropping anything appended), checks the image's
/// header against the job's frame size, then decodes it with the decoder's memory capped to
/// what that size needs; returns the decoded image (for the thumbnail). A header declaring
/// another size is refused before anything is decoded. Blocking.
pub fn check(
    pending: &mut PendingFile,
    format: ImageFormat,
    expected: (u32, u32),
    frame: i64,
) -> Result<image::DynamicImage, ApiError> {
    use image::ImageDecoder;
    let fmt = crate::compare::decoder_format(format);
    let invalid = |e: image::ImageError| {
        ApiError::bad_request(format!(
            "frame {frame} is not a valid {format:?} image: {e}"
        ))
    };
    let mut file = pending.file().try_clone()?;
    file.rewind()?;
    // What is stored is what is decoded: the file is cut where the image ends.
    let end = image_end(BufReader::new(&file), format).map_err(|why| {
        ApiError::bad_request(format!(
            "frame {frame} is not a valid {format:?} image: {why}"
        ))
    })?;
    let received = file.metadata()?.len();
    if end < received {
        tracing::warn!(
            frame,
            dropped = received - end,
            "bytes after the image dropped"
        );
        file.set_len(end)?;
    }
    file.rewind()?;
    let mut reader = image::ImageReader::with_format(BufReader::new(file), fmt);
    // Without the width and height limits, so a wrong size is reported as such.
    let mut header_limits = decode_limits(expected);
    (
        header_limits.max_image_width,
        header_limits.max_image_height,
    ) = (None, None);
    reader.limits(header_limits);
    // Reads the header (and, for PNG, the chunks before the pixels) only.
    let mut decoder = reader.into_decoder().map_err(invalid)?;
    let got = decoder.dimensions();
    if got != expected {
        return Err(wrong_size(frame, got, expected));
    }
    let mut limits = decode_limits(expected);
    limits.reserve(decoder.total_bytes()).map_err(invalid)?;
    decoder.set_limits(limits).map_err(invalid)?;
    image::DynamicImage::from_decoder(decoder).map_err(invalid)
}

/// What decoding a frame of `size` may allocate: its pixels at the widest sample (RGBA, 16
/// bits) and a few MiB for the decoder's own buffers.
fn decode_limits((w, h): (u32, u32)) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(u64::from(w) * u64::from(h) * 8 + (8 << 20));
    limits
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
