//! Blender files: recognising a `.blend`, asking Blender what is in it, and turning one of its
//! scenes into render settings.
//!
//! Blender runs in background mode with `--factory-startup --disable-autoexec`, so no Python
//! stored in the submitted file ever runs; only our own inspection script does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use idlefarm_protocol::submit_fields::{FPS, FRAMES, SCENE};
use idlefarm_protocol::{ImageFormat, RenderSettings, Renderer, SceneSummary};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::Tools;
use super::fields::{FPS_BOUNDS, Overrides, fps_in_bounds};
use crate::error::ApiError;

/// How long Blender may take to open a file and run the inspection script.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// The line prefix the inspection script prints its JSON report after.
const REPORT_PREFIX: &str = "IDLEFARM_INSPECT:";

/// Printed by Blender itself, never a reason for a failure.
const BLENDER_NOISE: [&str; 3] = ["Blender quit", "Blender ", "Read blend:"];

/// Reports every scene's settings and every external file the .blend references.
pub(super) const INSPECT_SCRIPT: &str = r#"
import json, os, sys
import bpy

def scene_info(scene):
    render = scene.render
    return {
        "name": scene.name,
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "frame_step": scene.frame_step,
        "fps": render.fps / render.fps_base,
        "resolution_x": render.resolution_x,
        "resolution_y": render.resolution_y,
        "resolution_percentage": render.resolution_percentage,
        "engine": render.engine,
        "file_format": render.image_settings.file_format,
    }

stored = bpy.utils.blend_paths(absolute=False, packed=False, local=False)
resolved = bpy.utils.blend_paths(absolute=True, packed=False, local=False)
if len(stored) != len(resolved):
    stored = resolved
active = bpy.context.scene or (bpy.data.scenes[0] if bpy.data.scenes else None)
report = {
    "scenes": [scene_info(s) for s in bpy.data.scenes],
    "active_scene": active.name if active else None,
    "external_files": [
        {"path": s, "absolute": os.path.normpath(r)} for s, r in zip(stored, resolved)
    ],
}
sys.stdout.write("IDLEFARM_INSPECT:" + json.dumps(report) + "\n")
sys.stdout.flush()
"#;

/// What Blender reports about a `.blend`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Inspection {
    pub scenes: Vec<SceneInfo>,
    pub active_scene: Option<String>,
    pub external_files: Vec<ExternalFile>,
}

/// One scene's render settings, as Blender names them.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct SceneInfo {
    pub name: String,
    pub frame_start: i64,
    pub frame_end: i64,
    pub frame_step: i64,
    pub fps: f64,
    pub resolution_x: u32,
    pub resolution_y: u32,
    pub resolution_percentage: u32,
    pub engine: String,
    pub file_format: String,
}

impl SceneInfo {
    /// The scene as the API reports it.
    pub fn summary(&self) -> SceneSummary {
        SceneSummary {
            name: self.name.clone(),
            frame_start: self.frame_start,
            frame_end: self.frame_end,
            frame_step: self.frame_step,
            fps: self.fps,
            resolution_x: self.resolution_x,
            resolution_y: self.resolution_y,
            percentage: self.resolution_percentage,
            engine: self.engine.clone(),
            file_format: self.file_format.clone(),
        }
    }
}

/// A file the .blend references: as stored (`//textures/wood.png`) and resolved.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ExternalFile {
    pub path: String,
    pub absolute: PathBuf,
}

/// Refuses a file that does not start like a .blend: `BLENDER`, or gzip / zstd compressed.
pub(super) async fn check_magic(path: &Path, display: &str) -> Result<(), ApiError> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut head = [0u8; 7];
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &head[..filled];
    let is_blend = head.starts_with(b"BLENDER")
        || head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if is_blend {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{display} is not a Blender file"
        )))
    }
}

/// Opens `file` with Blender (a spare one when `tools` keeps it) and runs the inspection
/// script. `display` names the file in messages; everything a Blender started for this file
/// writes goes to `scratch`.
pub(super) async fn inspect(
    tools: &Tools,
    file: &Path,
    display: &str,
    scratch: &Path,
) -> Result<Inspection, ApiError> {
    let blender = tools.blender.as_path();
    let scratch = std::path::absolute(scratch)?;
    // Absolute, so a name starting with '-' can never be read as an option.
    let file = std::path::absolute(file)?;
    let spare = tools
        .inspector
        .report(blender, &file, REPORT_PREFIX, INSPECT_TIMEOUT)
        .await
        .map_err(|e| {
            ApiError::bad_request(format!("{display} could not be opened by Blender: {e}"))
        })?;
    if let Some(report) = spare {
        return read_report(&report, display);
    }
    let script = scratch.join("idlefarm-inspect-blend.py");
    tokio::fs::write(&script, INSPECT_SCRIPT).await?;

    let child = tokio::process::Command::new(blender)
        .arg("-b")
        .arg("--factory-startup")
        .arg("--disable-autoexec")
        .arg(&file)
        .arg("--python")
        .arg(&script)
        .arg("--python-exit-code")
        .arg("1")
        .env("HOME", &scratch)
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ApiError::internal(format!(
                "cannot run Blender ({}) to inspect {display}: {e}",
                blender.display()
            ))
        })?;
    let output = match tokio::time::timeout(INSPECT_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output?,
        Err(_) => {
            return Err(ApiError::bad_request(format!(
                "{display} could not be opened by Blender: it took longer than {} s",
                INSPECT_TIMEOUT.as_secs()
            )));
        }
    };

    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(REPORT_PREFIX));
    if let Some(report) = report {
        return read_report(report, display);
    }

    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = failure_reason(&format!("{stdout}\n{stderr}"))
        .map(|line| hide_paths(&line, &file, display, &scratch))
        .unwrap_or_else(|| format!("Blender exited with {}", output.status));
    Err(ApiError::bad_request(format!(
        "{display} could not be opened by Blender: {reason}"
    )))
}

/// The inspection script's report (the JSON after [`REPORT_PREFIX`]).
fn read_report(report: &str, display: &str) -> Result<Inspection, ApiError> {
    let inspection: Inspection = serde_json::from_str(report)
        .map_err(|e| ApiError::internal(format!("Blender's report on {display}: {e}")))?;
    if inspection.scenes.is_empty() {
        return Err(ApiError::bad_request(format!("{display} holds no scene")));
    }
    Ok(inspection)
}

/// The line of Blender's output that best says why it failed: the last `Error` line, else the
/// last line that is not Blender's own chatter.
fn failure_reason(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let error = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Error") || l.contains("Error:"));
    error
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| !BLENDER_NOISE.iter().any(|noise| l.starts_with(noise)))
        })
        .map(|line| line.strip_prefix("Error: ").unwrap_or(line).to_string())
}

/// Replaces the coordinator's own paths in Blender's message by names the submitter knows.
fn hide_paths(line: &str, file: &Path, display: &str, scratch: &Path) -> String {
    let line = line.replace(&file.display().to_string(), display);
    line.replace(&format!("{}/", scratch.display()), "")
}

/// Render settings from one scene of an inspected .blend, plus warnings for the submitter.
/// `project` is the extracted project folder of a zip (None for a lone .blend): only files
/// inside it count as present.
pub(super) fn settings(
    inspection: &Inspection,
    display: &str,
    main_file: String,
    overrides: &Overrides,
    project: Option<&Path>,
) -> Result<(RenderSettings, Vec<String>), ApiError> {
    let wanted = overrides
        .scene
        .clone()
        .or_else(|| inspection.active_scene.clone())
        .unwrap_or_else(|| inspection.scenes[0].name.clone());
    let Some(scene) = inspection.scenes.iter().find(|s| s.name == wanted) else {
        let names: Vec<&str> = inspection.scenes.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::unprocessable(format!(
            "scene \"{wanted}\" is not in {display} (it has: {})",
            names.join(", ")
        ))
        .on_field(SCENE));
    };

    let scene_step = scene.frame_step.max(1);
    let (frame_start, frame_end, frame_step) = match overrides.frames {
        Some(range) => {
            if !range.within(scene.frame_start, scene.frame_end) {
                return Err(ApiError::unprocessable(format!(
                    "frame range {}-{} is outside the scene's {}-{}",
                    range.start, range.end, scene.frame_start, scene.frame_end
                ))
                .on_field(FRAMES));
            }
            // Only what the submitter wrote is overridden: without ":STEP" the scene's step holds.
            (range.start, range.end, range.step.unwrap_or(scene_step))
        }
        None => (scene.frame_start, scene.frame_end, scene_step),
    };

    let mut warnings = Vec::new();
    let format = match (overrides.format, scene.file_format.as_str()) {
        (Some(format), _) => format,
        (None, "PNG") => ImageFormat::Png,
        (None, "JPEG") => ImageFormat::Jpeg,
        (None, other) => {
            warnings.push(format!(
                "the scene's output format {other} was replaced by PNG"
            ));
            ImageFormat::Png
        }
    };
    warnings.extend(missing_files(&inspection.external_files, project));

    let fps = match overrides.fps {
        Some(fps) => fps,
        None if fps_in_bounds(scene.fps) => scene.fps,
        None => {
            return Err(ApiError::unprocessable(format!(
                "scene \"{}\" in {display} runs at {} fps, which no video can be made at; give the video's frame rate with the fps field ({FPS_BOUNDS})",
                scene.name, scene.fps
            ))
            .on_field(FPS));
        }
    };
    let settings = RenderSettings {
        renderer: Renderer::Blender,
        main_file,
        scene: Some(scene.name.clone()),
        frame_start,
        frame_end,
        frame_step,
        fps,
        resolution_x: scene.resolution_x,
        resolution_y: scene.resolution_y,
        percentage: scene.resolution_percentage,
        engine: Some(scene.engine.clone()),
        format,
        povray: None,
        sequence: None,
    };
    Ok((settings, warnings))
}

/// One warning per referenced file that the upload does not provide. A file counts as present
/// only when it exists inside the project folder: agents get the upload, nothing else.
fn missing_files(files: &[ExternalFile], project: Option<&Path>) -> Vec<String> {
    let root = project.and_then(|p| p.canonicalize().ok());
    let mut warnings: Vec<String> = Vec::new();
    for file in files {
        let present = match (&root, file.absolute.canonicalize()) {
            (Some(root), Ok(path)) => path.starts_with(root) && path.is_file(),
            _ => false,
        };
        let warning = format!(
            "missing external file: {} (referenced by the scene but not in the upload)",
            file.path
        );
        if !present && !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_blenders_error_line() {
        let output = "Blender 3.4.1\nRead blend: /s/x.blend\nError: Failed to read blend file '/s/x.blend': Missing DNA block\n\nBlender quit\n";
        assert_eq!(
            failure_reason(output).unwrap(),
            "Failed to read blend file '/s/x.blend': Missing DNA block"
        );
        assert_eq!(
            failure_reason("Blender 3.4.1\nSegmentation fault\nBlender quit").unwrap(),
            "Segmentation fault"
        );
        assert_eq!(failure_reason("Blender 3.4.1\n\nBlender quit"), None);
    }

    #[test]
    fn hides_the_coordinators_paths() {
        let line = "Error: Cannot read file '/data/scratch/1/upload': No such file";
        let hidden = hide_paths(
            line,
            Path::new("/data/scratch/1/upload"),
            "shot.blend",
            Path::new("/data/scratch/1"),
        );
        assert_eq!(hidden, "Error: Cannot read file 'shot.blend': No such file");
        let in_project = hide_paths(
            "Error: '/data/scratch/1/project/a.blend'",
            Path::new("/x"),
            "a",
            Path::new("/data/scratch/1"),
        );
        assert_eq!(in_project, "Error: 'project/a.blend'");
    }

    #[test]
    fn a_scenes_frame_rate_must_suit_a_video_unless_the_form_gives_one() {
        let scene = |fps: f64| SceneInfo {
            name: "Scene".into(),
            frame_start: 1,
            frame_end: 2,
            frame_step: 1,
            fps,
            resolution_x: 8,
            resolution_y: 8,
            resolution_percentage: 100,
            engine: "CYCLES".into(),
            file_format: "PNG".into(),
        };
        let inspection = |fps: f64| Inspection {
            scenes: vec![scene(fps)],
            active_scene: None,
            external_files: vec![],
        };
        let run = |fps: f64, overrides: &Overrides| {
            settings(
                &inspection(fps),
                "s.blend",
                "s.blend".into(),
                overrides,
                None,
            )
        };
        let none = Overrides::default();
        assert_eq!(run(23.976, &none).unwrap().0.fps, 23.976);
        for bad in [0.001, 1e-7, 32767.0 / 1e-5] {
            let err = run(bad, &none).unwrap_err();
            assert_eq!(err.status, 422, "{bad}");
            assert!(
                err.message.contains("fps field") && err.message.contains("0.01 to 1000"),
                "{}",
                err.message
            );
        }
        let given = Overrides {
            fps: Some(12.0),
            ..Overrides::default()
        };
        assert_eq!(run(0.001, &given).unwrap().0.fps, 12.0);
    }

    #[test]
    fn files_outside_the_project_are_missing_even_if_they_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        std::fs::create_dir_all(project.join("textures")).unwrap();
        std::fs::write(project.join("textures/wood.png"), b"png").unwrap();
        std::fs::write(tmp.path().join("outside.png"), b"png").unwrap();
        let file = |path: &str, absolute: PathBuf| ExternalFile {
            path: path.into(),
            absolute,
        };
        let files = [
            file("//textures/wood.png", project.join("textures/wood.png")),
            file("//textures/gone.png", project.join("textures/gone.png")),
            file("//../outside.png", tmp.path().join("outside.png")),
            file("//textures/gone.png", project.join("textures/gone.png")),
        ];
        let warnings = missing_files(&files, Some(&project));
        assert_eq!(
            warnings,
            [
                "missing external file: //textures/gone.png (referenced by the scene but not in the upload)",
                "missing external file: //../outside.png (referenced by the scene but not in the upload)",
            ]
        );
        assert_eq!(missing_files(&files[..1], None).len(), 1);
    }
}
