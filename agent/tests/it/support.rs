//! Helpers shared by the tests: temp dirs the render user can reach, scenes, settings.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use idlefarm_agent::render::{RenderEnv, RenderUser};
use idlefarm_protocol::{ImageFormat, PovraySettings, RenderSettings, Renderer};

/// A temp dir open to everyone (tempfile makes them 0700), so `nobody` can reach it.
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Creates `dir` 0755.
pub fn mkdir(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.to_path_buf()
}

/// Renders as `nobody` when the tests run as root, as ourselves otherwise.
pub fn render_env() -> RenderEnv {
    RenderEnv {
        blender: "blender".into(),
        povray: "povray".into(),
        user: idlefarm_runtime::is_root().then(|| RenderUser::resolve("nobody").unwrap()),
        warm: Default::default(),
    }
}

/// A sphere moving left to right with `clock`; `heavy` adds focal blur and an area light so
/// each frame takes a noticeable moment.
pub fn ball_scene(heavy: bool) -> String {
    let mut scene = String::from(
        "#version 3.7;\n\
         global_settings { assumed_gamma 1.0 }\n\
         sphere { <clock * 2 - 1, 0, 0>, 0.5 pigment { color rgb <1, 0, 0> } }\n\
         plane { y, -1 pigment { checker rgb 1, rgb 0.2 } }\n",
    );
    if heavy {
        scene.push_str(
            "camera { location <0, 0, -5> look_at <0, 0, 0> focal_point <0, 0, 0> aperture 0.4 blur_samples 100 }\n\
             light_source { <5, 5, -5> color rgb 1 area_light <1, 0, 0>, <0, 1, 0>, 8, 8 adaptive 0 jitter }\n",
        );
    } else {
        scene.push_str(
            "camera { location <0, 0, -5> look_at <0, 0, 0> }\n\
             light_source { <5, 5, -5> color rgb 1 }\n",
        );
    }
    scene
}

/// Settings of a POV-Ray job over frames `1..=frames`.
pub fn povray_settings(main: &str, width: u32, height: u32, frames: i64) -> RenderSettings {
    RenderSettings {
        renderer: Renderer::Povray,
        main_file: main.into(),
        scene: None,
        frame_start: 1,
        frame_end: frames,
        frame_step: 1,
        fps: 24.0,
        resolution_x: width,
        resolution_y: height,
        percentage: 100,
        engine: None,
        format: ImageFormat::Png,
        povray: Some(PovraySettings {
            initial_frame: 1,
            final_frame: frames,
            initial_clock: 0.0,
            final_clock: 1.0,
            antialias: false,
            antialias_threshold: None,
            antialias_depth: None,
            cyclic: false,
            ini: None,
            ini_section: None,
        }),
        sequence: None,
    }
}

/// Width and height from a PNG's header.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
