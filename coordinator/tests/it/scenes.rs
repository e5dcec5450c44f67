//! Tiny test scenes, made by the tests themselves: a `.blend` written by Blender from a Python
//! script, POV-Ray scenes with `.ini` files, and zip projects.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a `.blend` with an animated cube: `frames` frames at `w`×`h`, Cycles with 2 samples.
pub fn make_blend(dir: &Path, name: &str, frames: u32, w: u32, h: u32) -> PathBuf {
    make_blend_with_samples(dir, name, frames, w, h, 2)
}

/// [`make_blend`] with `samples` Cycles samples per pixel.
pub fn make_blend_with_samples(
    dir: &Path,
    name: &str,
    frames: u32,
    w: u32,
    h: u32,
    samples: u32,
) -> PathBuf {
    let engine = format!(
        "scene.render.engine = 'CYCLES'\nscene.cycles.samples = {samples}\nscene.cycles.use_denoising = False"
    );
    make_blend_for(dir, name, frames, w, h, &engine)
}

/// [`make_blend`] rendered with Eevee at `samples` samples per pixel (on a PC without a GPU
/// Blender renders it with software OpenGL, on the CPU).
pub fn make_eevee_blend(
    dir: &Path,
    name: &str,
    frames: u32,
    w: u32,
    h: u32,
    samples: u32,
) -> PathBuf {
    let engine = format!(
        "scene.render.engine = 'BLENDER_EEVEE'\nscene.eevee.taa_render_samples = {samples}"
    );
    make_blend_for(dir, name, frames, w, h, &engine)
}

/// The animated cube with `engine`: Python lines setting up `scene`'s render engine.
fn make_blend_for(dir: &Path, name: &str, frames: u32, w: u32, h: u32, engine: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        r#"
import bpy
scene = bpy.context.scene
{engine}
scene.render.resolution_x = {w}
scene.render.resolution_y = {h}
scene.render.resolution_percentage = 100
scene.render.fps = 24
scene.frame_start = 1
scene.frame_end = {frames}
scene.render.image_settings.file_format = 'PNG'
cube = bpy.data.objects['Cube']
cube.location = (-2, 0, 0)
cube.keyframe_insert(data_path='location', frame=1)
cube.location = (2, 0, 0)
cube.keyframe_insert(data_path='location', frame={frames})
bpy.ops.wm.save_as_mainfile(filepath=r'{}')
"#,
        path.display()
    );
    let out = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--python-expr", &script])
        .output()
        .expect("blender runs");
    assert!(
        out.status.success() && path.exists(),
        "blender could not write the test scene: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    path
}

/// A POV-Ray scene: a sphere moving with `clock`, optionally `#include`-ing a file of the project.
/// It always includes POV-Ray's own `colors.inc`, as nearly every real scene does (it comes with
/// Debian's `povray-includes`, only a Recommends of `povray`).
pub fn pov_scene(include: Option<&str>) -> String {
    let inc = include
        .map(|f| format!("#include \"{f}\"\n"))
        .unwrap_or_default();
    let pigment = if include.is_some() {
        "SceneColour"
    } else {
        "rgb <1, 0.4, 0.1>"
    };
    format!(
        "#include \"colors.inc\"
{inc}camera {{ location <0, 1, -4> look_at <0, 0, 0> }}
light_source {{ <4, 6, -6> color White }}
plane {{ y, -1 pigment {{ checker color White color Gray20 }} }}
sphere {{ <-1.5 + 3 * clock, 0, 0>, 0.7 pigment {{ color {pigment} }} }}
"
    )
}

/// A POV-Ray `.ini` for frames `first..=last` at `w`×`h`.
pub fn pov_ini(first: i64, last: i64, w: u32, h: u32) -> String {
    format!(
        "; test animation\nInitial_Frame={first}\nFinal_Frame={last}\nInitial_Clock=0\nFinal_Clock=1\nWidth={w}\nHeight={h}\nAntialias=On\n"
    )
}

/// Writes a zip holding `files` (name, content).
pub fn make_zip(path: &Path, files: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    for (name, content) in files {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap();
}
