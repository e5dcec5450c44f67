//! Job submission: checks an upload, inspects the scene, and turns it into render settings.
//!
//! [`prepare`] takes what the server has streamed into a scratch folder and answers with the
//! job's input and settings, or with a 4xx [`ApiError`] a person can act on ("frame range
//! 1-400 is outside the scene's 1-250"). The job's defaults come from the scene file; the form
//! fields override them. Nothing is stored here: everything this module writes stays inside
//! the scratch folder, which the caller deletes.

mod blend;
mod fields;
pub mod frames;
mod inspector;
#[cfg(test)]
mod inspector_tests;
mod pov;
pub mod povray_ini;
#[cfg(test)]
mod povray_ini_tests;
mod povray_options;
mod project;
mod sequence;
#[cfg(test)]
mod sequence_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use idlefarm_protocol::submit_fields::{FILE, FRAMES, INI};
use idlefarm_protocol::{InputKind, RenderSettings, Renderer, SceneSummary, UploadKind};

use crate::error::ApiError;
use fields::{Overrides, sanitize_file_name};
use frames::{MAX_FRAME_NUMBER, NEGATIVE_FRAMES, frame_count};

pub(crate) use fields::display_name;
pub use frames::FrameRange;
pub use inspector::BlendInspector;
pub use povray_ini::{PovIni, parse_ini};

/// Most frames one job may have.
pub const MAX_JOB_FRAMES: i64 = 100_000;

/// Longest job name kept, in characters.
const MAX_NAME_CHARS: usize = fields::MAX_DISPLAY_CHARS;

/// External programs and limits used to check uploads.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The Blender executable that inspects `.blend` files.
    pub blender: PathBuf,
    /// Most bytes a zip project may unpack to.
    pub max_unpacked_bytes: u64,
    /// Whether a spare Blender inspects `.blend` files (the default starts one for each).
    pub inspector: BlendInspector,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            blender: PathBuf::from("blender"),
            max_unpacked_bytes: idlefarm_archive::DEFAULT_MAX_TOTAL_BYTES,
            inspector: BlendInspector::one_off(),
        }
    }
}

/// The submission form's text fields, as sent (see `idlefarm_protocol::submit_fields`).
#[derive(Debug, Clone, Default)]
pub struct SubmitFields {
    /// `START-END`, `START-END:STEP` or a single frame.
    pub frames: Option<String>,
    /// Fixed chunk size, or `auto`.
    pub chunk: Option<String>,
    /// Blender scene name.
    pub scene: Option<String>,
    /// Main scene file inside a zip project.
    pub main: Option<String>,
    /// Job name.
    pub name: Option<String>,
    /// Frames per second of the video.
    pub fps: Option<String>,
    /// `png` or `jpeg`.
    pub format: Option<String>,
    /// `1`/`true`: a zip's scene files are a sequence, one file per frame.
    pub sequence: Option<String>,
    /// The `[Section]` of the POV-Ray `.ini` to read.
    pub ini_section: Option<String>,
}

/// A file the server has already streamed to disk in the scratch folder.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The file name the browser sent (untrusted; never used as a path).
    pub file_name: String,
    /// Where the server stored it.
    pub path: PathBuf,
}

/// Everything one submission sent.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The scene: `.blend`, `.pov` or `.zip`.
    pub file: UploadedFile,
    /// A POV-Ray `.ini` beside it.
    pub ini: Option<UploadedFile>,
    /// The form's text fields.
    pub fields: SubmitFields,
}

/// A checked submission, ready to become a job.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The file to store as the job's input blob: the `.blend`, the `.pov`, or the `.zip` itself.
    pub input: PathBuf,
    /// Whether the input is one scene file or a zip project.
    pub input_kind: InputKind,
    /// Sanitized base name of the upload (only `[A-Za-z0-9._-]`).
    pub input_name: String,
    /// How to render.
    pub settings: RenderSettings,
    /// Things the submitter should know (missing textures, replaced output format...).
    pub warnings: Vec<String>,
    /// Job name: the `name` field, else the upload's file name.
    pub name: String,
    /// Fixed chunk size, or `None` for automatic sizing.
    pub chunk_size: Option<u32>,
    /// What kind of file was uploaded.
    pub kind: UploadKind,
    /// Every scene of the `.blend` that was inspected (none for POV-Ray or a sequence).
    pub scenes: Vec<SceneSummary>,
    /// The scene Blender opens that `.blend` with.
    pub active_scene: Option<String>,
}

/// What an upload is, by its extension.
fn kind_of(display: &str) -> Result<UploadKind, ApiError> {
    let ext = display
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        Some("blend") => Ok(UploadKind::Blend),
        Some("pov") => Ok(UploadKind::Pov),
        Some("zip") => Ok(UploadKind::Zip),
        _ => Err(ApiError::bad_request(format!(
            "{display} is not a .blend, .pov or .zip file"
        ))),
    }
}

/// Checks an upload and works out the job's settings. `scratch` holds the upload; anything
/// written while checking (an extracted project, Blender's inspection script) goes there too.
pub async fn prepare(upload: Upload, scratch: &Path, tools: &Tools) -> Result<Prepared, ApiError> {
    let Upload { file, ini, fields } = upload;
    let display = display_name(&file.file_name);
    let kind = kind_of(&display).map_err(|e| e.on_field(FILE))?;
    let overrides = Overrides::parse(&fields)?;
    check_not_empty(&file.path, &display)
        .await
        .map_err(|e| e.on_field(FILE))?;

    let input_name = sanitize_file_name(&file.file_name);
    let name = match fields.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_NAME_CHARS)
            .collect(),
        // The display name is already cut to the same length.
        _ => display.clone(),
    };
    let mut warnings = Vec::new();
    if kind != UploadKind::Zip && overrides.main.is_some() {
        warnings.push("the main field was ignored: it only applies to zip projects".to_string());
    }
    if kind != UploadKind::Zip && overrides.sequence {
        warnings.push(
            "the sequence field was ignored: it only applies to zip projects holding several scene files"
                .to_string(),
        );
    }

    let found = inspect_scene(
        kind,
        &file,
        ini.as_ref(),
        &display,
        &input_name,
        &overrides,
        scratch,
        tools,
    )
    .await
    // Errors that name no field are about the scene file: what it holds or how it reads.
    .map_err(|e| e.on_field(FILE))?;
    let settings = found.settings;
    warnings.extend(found.warnings);
    if settings.renderer == Renderer::Povray && overrides.scene.is_some() {
        warnings.push("the scene field was ignored: it only applies to Blender files".into());
    }
    let read_an_ini = settings.povray.as_ref().is_some_and(|p| p.ini.is_some());
    if overrides.ini_section.is_some() && !read_an_ini {
        warnings.push("the ini_section field was ignored: the job has no POV-Ray .ini".into());
    }
    check_frames(&settings).map_err(|e| e.on_field(FRAMES))?;

    let (scenes, active_scene) = match found.inspection {
        Some(inspection) => (
            inspection
                .scenes
                .iter()
                .map(blend::SceneInfo::summary)
                .collect(),
            inspection.active_scene,
        ),
        None => (Vec::new(), None),
    };
    Ok(Prepared {
        input: file.path,
        input_kind: found.input_kind,
        input_name,
        settings,
        warnings,
        name,
        chunk_size: overrides.chunk,
        kind,
        scenes,
        active_scene,
    })
}

/// What [`inspect_scene`] found.
struct Found {
    input_kind: InputKind,
    settings: RenderSettings,
    warnings: Vec<String>,
    /// Blender's report on the `.blend` the settings came from, if any.
    inspection: Option<blend::Inspection>,
}

/// Checks the scene file by its kind and works out its settings with `overrides` applied.
#[allow(clippy::too_many_arguments)] // one submission's parts, passed through once
async fn inspect_scene(
    kind: UploadKind,
    file: &UploadedFile,
    ini: Option<&UploadedFile>,
    display: &str,
    input_name: &str,
    overrides: &Overrides,
    scratch: &Path,
    tools: &Tools,
) -> Result<Found, ApiError> {
    let mut warnings = Vec::new();
    match kind {
        UploadKind::Blend => {
            if ini.is_some() {
                warnings
                    .push("the .ini file was ignored: it only applies to POV-Ray scenes".into());
            }
            blend::check_magic(&file.path, display).await?;
            let inspection = blend::inspect(tools, &file.path, display, scratch).await?;
            let (settings, more) =
                blend::settings(&inspection, display, input_name.to_owned(), overrides, None)?;
            warnings.extend(more);
            Ok(Found {
                input_kind: InputKind::File,
                settings,
                warnings,
                inspection: Some(inspection),
            })
        }
        UploadKind::Pov => {
            pov::check_text(&file.path, display).await?;
            let ini = read_uploaded_ini(ini, overrides).await?;
            let ini = ini.as_ref().map(|(ini, name)| (ini, name.as_str()));
            Ok(Found {
                input_kind: InputKind::File,
                settings: pov::settings(input_name.to_owned(), ini, overrides)?,
                warnings,
                inspection: None,
            })
        }
        UploadKind::Zip => {
            let ini = read_uploaded_ini(ini, overrides).await?;
            let ini = ini.as_ref().map(|(ini, name)| (ini, name.as_str()));
            let (settings, more, inspection) =
                project::prepare(&file.path, display, ini, scratch, tools, overrides).await?;
            warnings.extend(more);
            Ok(Found {
                input_kind: InputKind::Zip,
                settings,
                warnings,
                inspection,
            })
        }
    }
}

async fn check_not_empty(path: &Path, display: &str) -> Result<(), ApiError> {
    if tokio::fs::metadata(path).await?.len() == 0 {
        return Err(ApiError::bad_request(format!(
            "the uploaded file {display} is empty"
        )));
    }
    Ok(())
}

async fn read_uploaded_ini(
    ini: Option<&UploadedFile>,
    overrides: &Overrides,
) -> Result<Option<(PovIni, String)>, ApiError> {
    let Some(ini) = ini else { return Ok(None) };
    let display = display_name(&ini.file_name);
    let read = async {
        check_not_empty(&ini.path, &display).await?;
        pov::read_ini(&ini.path, &display, overrides.ini_section.as_deref()).await
    };
    Ok(Some((read.await.map_err(|e| e.on_field(INI))?, display)))
}

/// The job's frames, wherever they came from (the form, an ini, a scene): within the bounds
/// the `frames` field has, not negative, and few enough, counted without overflow.
fn check_frames(settings: &RenderSettings) -> Result<(), ApiError> {
    let (start, end) = (settings.frame_start, settings.frame_end);
    if start.unsigned_abs() > MAX_FRAME_NUMBER.unsigned_abs()
        || end.unsigned_abs() > MAX_FRAME_NUMBER.unsigned_abs()
    {
        return Err(ApiError::unprocessable(format!(
            "the job's frames {start}-{end} are out of bounds; frames go from -{MAX_FRAME_NUMBER} to {MAX_FRAME_NUMBER}, so choose others with the frames field"
        )));
    }
    if start < 0 {
        return Err(ApiError::unprocessable(format!(
            "the job's frames {start}-{end} include negative ones: {NEGATIVE_FRAMES}; choose frames from 0 with the frames field"
        )));
    }
    let count = frame_count(start, end, settings.frame_step);
    match count {
        Some(count) if count <= MAX_JOB_FRAMES => Ok(()),
        _ => Err(ApiError::unprocessable(format!(
            "the job would have {} frames; at most {MAX_JOB_FRAMES} are allowed, so choose fewer with the frames field",
            count.map_or("too many".to_string(), |c| c.to_string())
        ))),
    }
}
