//! Staged uploads: `POST /api/v1/uploads` streams a scene file (and its `.ini`) to
//! `DATA/uploads/<id>/`, inspects it with the submission's own checks and keeps it for its
//! owner, who then submits it by id (`upload` field of `POST /api/v1/jobs`) with the settings
//! adjusted. A staged upload is removed when a submission uses it, or after
//! [`super::ServerConfig::upload_ttl`]; folders left by a crash go at the next start.
//!
//! A submission takes the upload by renaming its folder into the submission's scratch folder,
//! so two submissions of one upload cannot both use it; a refused submission puts it back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use idlefarm_protocol::{UploadInspection, submit_fields};
use serde::{Deserialize, Serialize};

use super::Coordinator;
use super::caller::Caller;
use super::jobs::submit_tools;
use super::multipart::{multipart_error, not_a_form, save_field};
use super::state::now_ms;
use crate::error::{ApiError, PathParams};
use crate::files::{DataDir, write_atomic};
use crate::submit::{self, SubmitFields, Upload, UploadedFile};

/// The staged upload's record, beside its files.
const RECORD: &str = "upload.json";
/// The scene file in a staged upload's folder.
const SCENE_FILE: &str = "scene";
/// The `.ini` in a staged upload's folder.
const INI_FILE: &str = "scene.ini";
/// Name prefix of a folder still receiving its upload (it has no id yet).
const INCOMING_PREFIX: &str = ".incoming-";
/// Most staged uploads one person keeps: a new one beyond it removes their oldest, so the
/// disk holds at most this many uploads of theirs whatever they forget to submit.
pub const MAX_STAGED_PER_USER: usize = 10;

/// What is stored of a staged upload beside its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The user who uploaded it: nobody else may see or submit it.
    owner: i64,
    /// When it was staged, Unix milliseconds.
    created_ms: i64,
    /// The scene file's name as the browser sent it.
    file_name: String,
    /// The `.ini`'s name as sent, if one was.
    ini_name: Option<String>,
    /// What the coordinator found.
    inspection: UploadInspection,
}

/// `POST /api/v1/uploads`: stages a scene file and answers with what it holds.
pub async fn stage(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<UploadInspection>), ApiError> {
    let form = form.map_err(|r| not_a_form("upload a scene file", r))?;
    remove_expired(&coord.data, coord.config.upload_ttl, false).await;
    // Dropped on any error, so a refused upload leaves nothing behind.
    let incoming = tempfile::Builder::new()
        .prefix(INCOMING_PREFIX)
        .tempdir_in(coord.data.uploads())
        .map_err(ApiError::internal)?;
    let (file, ini) = receive(form, incoming.path(), coord.config.max_upload_bytes).await?;
    let inspection = coord.stage_upload(&caller, incoming, file, ini).await?;
    Ok((StatusCode::CREATED, Json(inspection)))
}

/// Streams the form's `file` and optional `ini` into `dir`; any other field is refused.
async fn receive(
    mut form: Multipart,
    dir: &Path,
    limit: u64,
) -> Result<(UploadedFile, Option<UploadedFile>), ApiError> {
    let (mut file, mut ini) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let (slot, key, dest) = match name.as_str() {
            submit_fields::FILE => (&mut file, submit_fields::FILE, SCENE_FILE),
            submit_fields::INI => (&mut ini, submit_fields::INI, INI_FILE),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field `{other}`: an upload holds only `file` and an optional `ini`; settings go with the submission"
                )));
            }
        };
        if slot.is_some() {
            return Err(
                ApiError::bad_request(format!("only one `{key}` may be uploaded")).on_field(key),
            );
        }
        *slot = Some(save_field(field, key, dir.join(dest), limit).await?);
    }
    let file = file.ok_or_else(|| {
        ApiError::bad_request("no scene uploaded: send a `file` field with a .blend, .pov or .zip")
            .on_field(submit_fields::FILE)
    })?;
    Ok((file, ini))
}

impl Coordinator {
    /// Inspects the scene received into `incoming` and, when it passes the submission's
    /// checks, keeps it as `caller`'s staged upload under a new id.
    async fn stage_upload(
        &self,
        caller: &Caller,
        incoming: tempfile::TempDir,
        file: UploadedFile,
        ini: Option<UploadedFile>,
    ) -> Result<UploadInspection, ApiError> {
        let size = tokio::fs::metadata(&file.path).await?.len();
        let scratch = tempfile::Builder::new()
            .prefix("inspect-")
            .tempdir_in(self.data.tmp())
            .map_err(ApiError::internal)?;
        let upload = Upload {
            file: file.clone(),
            ini: ini.clone(),
            fields: SubmitFields::default(),
        };
        let prepared = submit::prepare(upload, scratch.path(), &submit_tools(self)).await?;

        let id = crate::auth::new_secret();
        let created_ms = now_ms();
        let ttl_ms = i64::try_from(self.config.upload_ttl.as_millis()).unwrap_or(i64::MAX);
        let inspection = UploadInspection {
            id: id.clone(),
            file_name: submit::display_name(&file.file_name),
            ini_name: ini.as_ref().map(|i| submit::display_name(&i.file_name)),
            size,
            kind: prepared.kind,
            renderer: prepared.settings.renderer,
            scenes: prepared.scenes,
            active_scene: prepared.active_scene,
            name: prepared.name,
            settings: prepared.settings,
            warnings: prepared.warnings,
            expires_at: created_ms.saturating_add(ttl_ms) / 1000,
        };
        let record = Record {
            owner: caller.user_id,
            created_ms,
            file_name: file.file_name,
            ini_name: ini.map(|i| i.file_name),
            inspection: inspection.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(ApiError::internal)?;
        write_atomic(&incoming.path().join(RECORD), &json)?;
        let home = self
            .data
            .upload(&id)
            .ok_or_else(|| ApiError::internal("a new upload id is not hex"))?;
        // Appears whole under its id, record included, or not at all.
        tokio::fs::rename(incoming.keep(), &home).await?;
        remove_oldest(&self.data, caller.user_id, MAX_STAGED_PER_USER).await;
        Ok(inspection)
    }

    /// What was found in the caller's staged upload `id`: a 404 when it does not exist, has
    /// expired or is someone else's.
    pub(crate) async fn staged_upload(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<UploadInspection, ApiError> {
        Ok(find(self, caller, id).await?.1.inspection)
    }
}

/// `GET /api/v1/uploads/{id}`: a staged upload of the caller's.
pub async fn show(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<UploadInspection>, ApiError> {
    Ok(Json(coord.staged_upload(&caller, &id).await?))
}

/// The 404 for an upload id that cannot be used, whatever the reason: another user's upload
/// is indistinguishable from none.
fn no_upload() -> ApiError {
    ApiError::not_found(
        "no such upload: it was submitted already, has expired (uploads are kept for a day) or was never made; upload the file again",
    )
    .on_field(submit_fields::UPLOAD)
}

/// The folder and record of the caller's staged upload `id`; an expired one is removed.
async fn find(
    coord: &Coordinator,
    caller: &Caller,
    id: &str,
) -> Result<(PathBuf, Record), ApiError> {
    let dir = coord.data.upload(id).ok_or_else(no_upload)?;
    let record = read_record(&dir).await.ok_or_else(no_upload)?;
    if record.owner != caller.user_id {
        return Err(no_upload());
    }
    if expired(&record, coord.config.upload_ttl) {
        let _ = tokio::fs::remove_dir_all(&dir).await;
        return Err(no_upload());
    }
    Ok((dir, record))
}

async fn read_record(dir: &Path) -> Option<Record> {
    let bytes = tokio::fs::read(dir.join(RECORD)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn expired(record: &Record, ttl: std::time::Duration) -> bool {
    let age = now_ms().saturating_sub(record.created_ms);
    u128::try_from(age).unwrap_or(0) >= ttl.as_millis()
}

/// A staged upload taken out of `DATA/uploads/` by a submission.
pub(super) struct Claimed {
    /// Where it lives while the submission is checked (inside the submission's scratch).
    dir: PathBuf,
    /// Where it goes back to if the submission is refused.
    home: PathBuf,
    record: Record,
}

impl Claimed {
    /// The submission of this upload with the form's `fields`.
    pub fn upload(&self, fields: SubmitFields) -> Upload {
        let file = UploadedFile {
            file_name: self.record.file_name.clone(),
            path: self.dir.join(SCENE_FILE),
        };
        let ini = self.record.ini_name.clone().map(|file_name| UploadedFile {
            file_name,
            path: self.dir.join(INI_FILE),
        });
        Upload { file, ini, fields }
    }

    /// Puts a refused submission's upload back, to be corrected and submitted again.
    pub async fn give_back(self) {
        if let Err(e) = tokio::fs::rename(&self.dir, &self.home).await {
            tracing::warn!("could not put a staged upload back: {e}");
        }
    }
}

/// Takes the caller's staged upload `id` for a submission, into `scratch`: from then on no
/// other submission finds it.
pub(super) async fn claim(
    coord: &Coordinator,
    caller: &Caller,
    id: &str,
    scratch: &Path,
) -> Result<Claimed, ApiError> {
    let (home, record) = find(coord, caller, id).await?;
    let dir = scratch.join("staged");
    // Another submission of the same upload may have taken it since it was found.
    tokio::fs::rename(&home, &dir)
        .await
        .map_err(|_| no_upload())?;
    Ok(Claimed { dir, home, record })
}

/// Removes expired staged uploads and ones without a readable record. Folders still receiving
/// an upload are removed only `at_start`, when nothing can be receiving.
pub(crate) async fn remove_expired(data: &DataDir, ttl: std::time::Duration, at_start: bool) {
    let Ok(mut entries) = tokio::fs::read_dir(data.uploads()).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if name.starts_with(INCOMING_PREFIX) {
            at_start
        } else {
            match read_record(&entry.path()).await {
                Some(record) => expired(&record, ttl),
                // Only a crash between writing and renaming leaves an id without its record.
                None => at_start,
            }
        };
        if stale {
            let path = entry.path();
            let removed = if path.is_dir() {
                tokio::fs::remove_dir_all(&path).await
            } else {
                tokio::fs::remove_file(&path).await
            };
            if let Err(e) = removed {
                tracing::warn!("could not remove stale upload {name}: {e}");
            }
        }
    }
}

/// Removes `owner`'s oldest staged uploads beyond the newest `keep`.
async fn remove_oldest(data: &DataDir, owner: i64, keep: usize) {
    let Ok(mut entries) = tokio::fs::read_dir(data.uploads()).await else {
        return;
    };
    let mut theirs = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Some(record) = read_record(&entry.path()).await
            && record.owner == owner
        {
            theirs.push((record.created_ms, entry.path()));
        }
    }
    theirs.sort();
    let extra = theirs.len().saturating_sub(keep);
    for (_, path) in theirs.into_iter().take(extra) {
        if let Err(e) = tokio::fs::remove_dir_all(&path).await {
            tracing::warn!("could not remove an old staged upload: {e}");
        }
    }
}
