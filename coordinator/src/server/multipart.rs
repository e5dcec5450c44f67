//! Reading multipart forms (job submissions, staged uploads) without holding them in memory:
//! files stream to disk chunk by chunk, text fields are refused as soon as they grow too long,
//! and every malformed or oversized form is a 4xx naming what to fix.

use std::path::PathBuf;

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::submit::UploadedFile;

/// Longest value a form's text field may have, in bytes.
pub const MAX_TEXT_FIELD_BYTES: usize = 1000;

/// The answer to a request that is not a multipart form; `what` says what to send as one.
pub fn not_a_form(what: &str, rejection: MultipartRejection) -> ApiError {
    ApiError::bad_request(format!(
        "{what} as multipart/form-data: {}",
        rejection.body_text()
    ))
}

/// A broken form or one past the upload limit of `limit` bytes.
pub fn multipart_error(err: MultipartError, limit: u64) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "the upload is larger than this coordinator accepts ({} MiB; `idlefarm serve --max-upload` changes it)",
            limit >> 20
        ))
    } else {
        ApiError::bad_request(format!("malformed upload: {}", err.body_text()))
    }
}

/// Streams a file field to `dest`; the field named `key` must be a file upload.
pub async fn save_field(
    mut field: Field<'_>,
    key: &'static str,
    dest: PathBuf,
    limit: u64,
) -> Result<UploadedFile, ApiError> {
    let file_name = field.file_name().map(str::to_owned).ok_or_else(|| {
        ApiError::bad_request("the `file` and `ini` fields must be file uploads").on_field(key)
    })?;
    let mut out = tokio::fs::File::create(&dest).await?;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(UploadedFile {
        file_name,
        path: dest,
    })
}

/// Reads a text field chunk by chunk, refusing it as soon as it passes
/// [`MAX_TEXT_FIELD_BYTES`]: a field is never held in memory whole before its size is known.
pub async fn read_text_field(
    mut field: Field<'_>,
    key: &'static str,
    limit: u64,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(ApiError::bad_request(format!(
                "field `{key}` is too long; it may hold at most {MAX_TEXT_FIELD_BYTES} bytes"
            ))
            .on_field(key));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| {
        ApiError::bad_request(format!("field `{key}` is not UTF-8 text")).on_field(key)
    })
}
