//! Staged uploads: a scene file sent ahead of its submission (`POST /api/v1/uploads`, multipart
//! with the submission's `file` and optional `ini` fields), which
//! the coordinator inspects and keeps for its owner, so a person sees what the file holds and
//! adjusts the settings before the job exists. Submitting it (`upload` field of
//! `POST /api/v1/jobs`) consumes it.

use serde::{Deserialize, Serialize};

use crate::{RenderSettings, Renderer};

/// What kind of scene file an upload is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    /// A Blender `.blend`.
    Blend,
    /// A POV-Ray `.pov`.
    Pov,
    /// A zip project.
    Zip,
}

/// One scene of a `.blend` as Blender reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SceneSummary {
    /// The scene's name.
    pub name: String,
    /// First frame (inclusive).
    pub frame_start: i64,
    /// Last frame (inclusive).
    pub frame_end: i64,
    /// Frame step.
    pub frame_step: i64,
    /// Frames per second.
    pub fps: f64,
    /// Width in pixels before the percentage.
    pub resolution_x: u32,
    /// Height in pixels before the percentage.
    pub resolution_y: u32,
    /// Resolution scale in percent.
    pub percentage: u32,
    /// Render engine as Blender names it (`CYCLES`, `BLENDER_EEVEE`...).
    pub engine: String,
    /// Output file format as Blender names it (`PNG`, `OPEN_EXR`...).
    pub file_format: String,
}

/// Answer of `POST` and `GET` on an upload: what the coordinator found in a staged upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadInspection {
    /// The staged upload's id, for the `upload` field of a submission.
    pub id: String,
    /// The scene file's name as sent (shortened for display).
    pub file_name: String,
    /// The `.ini` file's name, when one was sent.
    pub ini_name: Option<String>,
    /// The scene file's size in bytes.
    pub size: u64,
    /// What kind of file it is.
    pub kind: UploadKind,
    /// The renderer its job would use.
    pub renderer: Renderer,
    /// Every scene of a `.blend` (also inside a zip); empty for POV-Ray.
    pub scenes: Vec<SceneSummary>,
    /// The scene Blender opens the file with, which a submission uses by default.
    pub active_scene: Option<String>,
    /// The job name a submission without a `name` gets.
    pub name: String,
    /// The settings a submission with no overrides gets (for a zip, `main_file` is the main
    /// scene file found).
    pub settings: RenderSettings,
    /// Things the submitter should know (missing external files, a replaced output format...).
    pub warnings: Vec<String>,
    /// When the staged upload is removed unless submitted, Unix seconds.
    pub expires_at: i64,
}
