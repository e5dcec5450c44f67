//! Handlers for people and the CLI: submitting jobs, listing jobs and agents, downloading frames,
//! the video and the frames zip.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use idlefarm_protocol::{
    AgentInfo, FailureInfo, FrameInfo, JobInfo, SubmitResponse, submit_fields,
};
use tokio_util::io::ReaderStream;

use super::Coordinator;
use super::actions::authorize_job;
use super::caller::Caller;
use super::control::{JobTerms, checked_tags};
use super::multipart::{multipart_error, not_a_form, read_text_field, save_field};
use super::uploads;
use crate::error::ApiError;
use crate::error::PathParams;
use crate::submit::{self, SubmitFields, Upload};

/// The submission's text fields besides `upload`.
const TEXT_FIELDS: [&str; 11] = [
    submit_fields::FRAMES,
    submit_fields::CHUNK,
    submit_fields::SCENE,
    submit_fields::MAIN,
    submit_fields::SEQUENCE,
    submit_fields::INI_SECTION,
    submit_fields::NAME,
    submit_fields::FPS,
    submit_fields::FORMAT,
    submit_fields::PRIORITY,
    submit_fields::TAGS,
];

pub async fn api_not_found() -> ApiError {
    ApiError::not_found(format!(
        "no such API route; {} lists them all",
        idlefarm_protocol::routes::OPENAPI
    ))
}

/// The programs and limits that check this coordinator's uploads.
pub(super) fn submit_tools(coord: &Coordinator) -> submit::Tools {
    submit::Tools {
        blender: coord.config.blender.clone(),
        max_unpacked_bytes: coord.config.max_unpacked_bytes,
        inspector: coord.config.blend_inspector.clone(),
    }
}

/// `POST /api/v1/jobs`: a multipart form with the scene file (or a staged `upload`) and
/// settings.
pub async fn submit(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    let mut form = form.map_err(|r| not_a_form("submit a job", r))?;
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
                let dest = scratch.path().join("upload");
                file = Some(save_field(field, submit_fields::FILE, dest, limit).await?);
            }
            submit_fields::INI if ini.is_none() => {
                let dest = scratch.path().join("upload.ini");
                ini = Some(save_field(field, submit_fields::INI, dest, limit).await?);
            }
            submit_fields::FILE | submit_fields::INI => {
                let key = if name == submit_fields::FILE {
                    submit_fields::FILE
                } else {
                    submit_fields::INI
                };
                return Err(
                    ApiError::bad_request(format!("only one `{name}` may be uploaded"))
                        .on_field(key),
                );
            }
            other => {
                let key = TEXT_FIELDS
                    .into_iter()
                    .chain([submit_fields::UPLOAD])
                    .find(|k| *k == other)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("unknown form field `{other}`"))
                    })?;
                let value = read_text_field(field, key, limit).await?;
                let value = value.trim().to_owned();
                if !value.is_empty() {
                    text.insert(key, value);
                }
            }
        }
    }
    let terms = job_terms(&caller, &mut text)?;
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
        ini_section: field(submit_fields::INI_SECTION),
    };
    let (upload, staged) = match (field(submit_fields::UPLOAD), file) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send either a staged `upload` or a `file`, not both",
            )
            .on_field(submit_fields::FILE));
        }
        (Some(_), None) if ini.is_some() => {
            return Err(ApiError::bad_request(
                "a staged `upload` already holds its .ini; send no `ini` with it",
            )
            .on_field(submit_fields::INI));
        }
        (Some(id), None) => {
            let claimed = uploads::claim(&coord, &caller, &id, scratch.path()).await?;
            (claimed.upload(fields), Some(claimed))
        }
        (None, Some(file)) => (Upload { file, ini, fields }, None),
        (None, None) => {
            return Err(ApiError::bad_request(
                "no scene uploaded: send a `file` field with a .blend, .pov or .zip",
            )
            .on_field(submit_fields::FILE));
        }
    };
    let result = async {
        let prepared = submit::prepare(upload, scratch.path(), &submit_tools(&coord)).await?;
        coord.add_job(prepared, terms).await
    }
    .await;
    let job = match (result, staged) {
        (Ok(job), _) => job,
        // A refused submission of a staged upload leaves it staged, to be corrected and sent again.
        (Err(e), Some(claimed)) => {
            claimed.give_back().await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
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

/// The submission's owner, priority and required tags, taken out of its text fields.
fn job_terms(
    caller: &Caller,
    text: &mut HashMap<&'static str, String>,
) -> Result<JobTerms, ApiError> {
    Ok(JobTerms {
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
                    .on_field(submit_fields::PRIORITY)
                })?,
            None => 0,
        },
        required_tags: match text.remove(submit_fields::TAGS) {
            Some(tags) => checked_tags(tags.split(',').map(str::to_owned).collect())
                .map_err(|e| e.on_field(submit_fields::TAGS))?,
            None => Vec::new(),
        },
    })
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

/// Sends a stored file. Images and videos are shown in the browser (`inline`), anything else is
/// a download. Each answer has an ETag from the file's size and modification time (stored files
/// are replaced whole, by rename), so a page that shows a thumbnail again gets a 304.
pub(crate) async fn send_file(
    path: PathBuf,
    content_type: &str,
    download_name: &str,
    request: &HeaderMap,
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("{download_name} is not available (yet)")))?;
    let meta = file.metadata().await?;
    let len = meta.len();
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{len:x}-{modified:x}\"");
    let disposition = if content_type.starts_with("image/") || content_type.starts_with("video/") {
        "inline"
    } else {
        "attachment"
    };
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header(
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{download_name}\""),
        );
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    builder
        .header(header::CONTENT_LENGTH, len)
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
    headers: HeaderMap,
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
    send_file(
        coord.data.frames_dir(id).join(&file),
        content_type,
        &file,
        &headers,
    )
    .await
}

pub async fn video(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    headers: HeaderMap,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    send_file(
        coord.data.video(id),
        "video/mp4",
        &format!("job-{id}.mp4"),
        &headers,
    )
    .await
}

pub async fn frames_zip(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    headers: HeaderMap,
    PathParams(id): PathParams<i64>,
) -> Result<Response, ApiError> {
    authorize_job(&coord, &caller, id).await?;
    send_file(
        coord.data.frames_zip(id),
        "application/zip",
        &format!("job-{id}-frames.zip"),
        &headers,
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
