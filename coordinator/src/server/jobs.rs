//! Handlers for people and the CLI: submitting jobs, listing jobs and agents, downloading frames,
//! the video and the frames zip.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::multipart::MultipartRejection;
use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::{StatusCode, header};
use axum::response::Response;
use idlefarm_protocol::{
    AgentInfo, FailureInfo, FrameInfo, JobInfo, SubmitResponse, submit_fields,
};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::Coordinator;
use super::actions::authorize_job;
use super::caller::Caller;
use super::control::{JobTerms, checked_tags};
use crate::error::{ApiError, PathParams};
use crate::submit::{self, SubmitFields, Upload, UploadedFile};

/// Longest value a submission's text field may have, in bytes.
const MAX_TEXT_FIELD_BYTES: usize = 1000;

pub async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API route; see README.md for the API")
}

fn multipart_error(err: MultipartError, limit: u64) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!(
            "the upload is larger than this coordinator accepts ({} MiB; `idlefarm serve --max-upload` changes it)",
            limit >> 20
        ))
    } else {
        ApiError::bad_request(format!("malformed upload: {}", err.body_text()))
    }
}

async fn save_field(
    mut field: Field<'_>,
    dest: PathBuf,
    limit: u64,
) -> Result<UploadedFile, ApiError> {
    let file_name = field
        .file_name()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("the `file` and `ini` fields must be file uploads"))?;
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
async fn read_text_field(mut field: Field<'_>, key: &str, limit: u64) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(ApiError::bad_request(format!(
                "field `{key}` is too long; it may hold at most {MAX_TEXT_FIELD_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("field `{key}` is not UTF-8 text")))
}

/// `POST /api/v1/jobs`: a multipart form with the scene file and settings.
pub async fn submit(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let mut form = form.map_err(|r| {
        ApiError::bad_request(format!(
            "submit a job as multipart/form-data: {}",
            r.body_text()
        ))
    })?;
    let limit = coord.config.max_upload_bytes;
    // Everything of this upload lives in `scratch` until it is accepted; dropping it removes it.
    let scratch = tempfile::Builder::new()
        .prefix("submit-")
        .tempdir_in(coord.data.tmp())
        .map_err(ApiError::internal)?;
    let mut file = None;
    let mut ini = None;
    let mut text: HashMap<&'static str, String> = HashMap::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            submit_fields::FILE if file.is_none() => {
                file = Some(save_field(field, scratch.path().join("upload"), limit).await?);
            }
            submit_fields::INI if ini.is_none() => {
                ini = Some(save_field(field, scratch.path().join("upload.ini"), limit).await?);
            }
            submit_fields::FILE | submit_fields::INI => {
                return Err(ApiError::bad_request(format!(
                    "only one `{name}` may be uploaded"
                )));
            }
            other => {
                let key = [
                    submit_fields::FRAMES,
                    submit_fields::CHUNK,
                    submit_fields::SCENE,
                    submit_fields::MAIN,
                    submit_fields::SEQUENCE,
                    submit_fields::NAME,
                    submit_fields::FPS,
                    submit_fields::FORMAT,
                    submit_fields::PRIORITY,
                    submit_fields::TAGS,
                ]
                .into_iter()
                .find(|k| *k == other)
                .ok_or_else(|| ApiError::bad_request(format!("unknown form field `{other}`")))?;
                let value = read_text_field(field, key, limit).await?;
                let value = value.trim().to_owned();
                if !value.is_empty() {
                    text.insert(key, value);
                }
            }
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::bad_request("no scene uploaded: send a `file` field with a .blend, .pov or .zip")
    })?;
    let terms = JobTerms {
        owner: Some(caller.user_id),
        priority: match text.remove(submit_fields::PRIORITY) {
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| (-1000..=1000).contains(p))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "priority `{p}` is not a whole number between -1000 and 1000"
                    ))
                })?,
            None => 0,
        },
        required_tags: match text.remove(submit_fields::TAGS) {
            Some(tags) => checked_tags(tags.split(',').map(str::to_owned).collect())?,
            None => Vec::new(),
        },
    };
    let mut field = |k| text.remove(k);
    let fields = SubmitFields {
        frames: field(submit_fields::FRAMES),
        chunk: field(submit_fields::CHUNK),
        scene: field(submit_fields::SCENE),
        main: field(submit_fields::MAIN),
        name: field(submit_fields::NAME),
        fps: field(submit_fields::FPS),
        format: field(submit_fields::FORMAT),
        sequence: field(submit_fields::SEQUENCE),
    };
    let tools = submit::Tools {
        blender: coord.config.blender.clone(),
        ..submit::Tools::default()
    };
    let prepared = submit::prepare(Upload { file, ini, fields }, scratch.path(), &tools).await?;
    let job = coord.add_job(prepared, terms).await?;
    coord
        .audit(
            &caller.name,
            "job.submit",
            &format!("job {}", job.id),
            &job.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(SubmitResponse { job })))
}

pub async fn list_jobs(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<Vec<JobInfo>>, ApiError> {
    Ok(Json(coord.job_infos(|owner| caller.may_see(owner)).await?))
}

pub async fn get_job(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<JobInfo>, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    Ok(Json(coord.job_info(id).await?))
}

pub async fn list_frames(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<Vec<FrameInfo>>, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    Ok(Json(coord.frame_infos(id).await?))
}

pub async fn failures(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<Vec<FailureInfo>>, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    Ok(Json(coord.store.job_failures(id).await?))
}

pub(crate) async fn send_file(
    path: PathBuf,
    content_type: &str,
    download_name: &str,
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("{download_name} is not available (yet)")))?;
    let len = file.metadata().await?.len();
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{download_name}\""),
        )
        .body(Body::from_stream(ReaderStream::new(file)))
        .map_err(ApiError::internal)
}

/// Whether `file` may name a stored frame: every name [`idlefarm_protocol::frame_file_name`]
/// gives a job's frames (which are never negative) passes, and nothing that leaves the folder.
fn is_frame_file(file: &str) -> bool {
    file.starts_with("frame_")
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && !file.contains("..")
}

pub async fn frame_file(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams((id, file)): PathParams<(i64, String)>,
) -> Result<Response, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    if !is_frame_file(&file) {
        return Err(ApiError::bad_request(
            "frame files are named like frame_00001.png",
        ));
    }
    let content_type = if file.ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    send_file(coord.data.frames_dir(id).join(&file), content_type, &file).await
}

pub async fn video(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    send_file(coord.data.video(id), "video/mp4", &format!("job-{id}.mp4")).await
}

pub async fn frames_zip(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    send_file(
        coord.data.frames_zip(id),
        "application/zip",
        &format!("job-{id}-frames.zip"),
    )
    .await
}

pub async fn list_agents(
    State(coord): State<Arc<Coordinator>>,
    _caller: Caller,
) -> Result<Json<Vec<AgentInfo>>, ApiError> {
    Ok(Json(coord.agent_infos().await?))
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::{ImageFormat, frame_file_name};

    use super::is_frame_file;
    use crate::submit::frames::MAX_FRAME_NUMBER;

    #[test]
    fn every_listed_frame_name_is_downloadable() {
        for frame in [0, 1, 99_999, 100_000, MAX_FRAME_NUMBER] {
            for format in [ImageFormat::Png, ImageFormat::Jpeg] {
                let name = frame_file_name(frame, format);
                assert!(is_frame_file(&name), "{name}");
            }
        }
        for bad in [
            "frame_../x.png",
            "frame_a/b.png",
            "x.png",
            "frame_%2e%2e.png",
        ] {
            assert!(!is_frame_file(bad), "{bad}");
        }
    }
}
