//! The spare Blender ([`BlendInspector::with_spare`]) against a Blender started for each file,
//! on real `.blend` files.

use std::path::Path;
use std::time::Duration;

use super::tests::{Scratch, make_blend, zip_bytes};
use super::*;

/// Tools whose spare Blender is waiting already; also returns its process id.
fn with_a_spare_ready() -> (Tools, u32) {
    let tools = Tools {
        inspector: BlendInspector::replaced_at_once(),
        ..Tools::default()
    };
    tools.inspector.keep_ready(&tools.blender);
    let pid = tools
        .inspector
        .spare_pid()
        .expect("a spare Blender started");
    (tools, pid)
}

async fn prepare_with(
    scratch: &Scratch,
    file: UploadedFile,
    tools: &Tools,
) -> Result<Prepared, ApiError> {
    let upload = Upload {
        file,
        ini: None,
        fields: SubmitFields::default(),
    };
    prepare(upload, &scratch.path, tools).await
}

/// Two scenes, the second one active, and images referenced beside the file (one present).
async fn project(scratch: &Scratch) -> Vec<u8> {
    let blend = scratch.path.join("made.blend");
    let extra = "other = bpy.data.scenes.new('Other')\n\
                 other.frame_end = 77\n\
                 bpy.context.window_manager.windows[0].scene = other\n\
                 for name in ('wood', 'gone'):\n    \
                 img = bpy.data.images.new(name, 4, 4)\n    \
                 img.source = 'FILE'\n    \
                 img.filepath = '//textures/' + name + '.png'\n    \
                 img.use_fake_user = True";
    make_blend(&blend, extra).await;
    zip_bytes(&[
        ("shots/shot.blend", &std::fs::read(&blend).unwrap()),
        ("shots/textures/wood.png", b"not really a png"),
    ])
}

#[tokio::test]
async fn a_spare_blender_reports_what_a_blender_started_for_the_file_does() {
    let scratch = Scratch::new();
    let zip = project(&scratch).await;
    let one_off = prepare_with(
        &scratch,
        scratch.file("project.zip", &zip),
        &Tools::default(),
    )
    .await
    .unwrap();
    assert_eq!(one_off.active_scene.as_deref(), Some("Other"));
    assert_eq!(one_off.settings.frame_end, 77);

    let (tools, first) = with_a_spare_ready();
    // A scratch folder of its own: the project is unpacked into it.
    let again = Scratch::new();
    let spared = prepare_with(&again, again.file("project.zip", &zip), &tools)
        .await
        .unwrap();
    assert_eq!(spared.settings, one_off.settings);
    assert_eq!(spared.warnings, one_off.warnings);
    assert_eq!(spared.scenes, one_off.scenes);
    assert_eq!(spared.active_scene, one_off.active_scene);
    let next = tools.inspector.spare_pid().expect("a new spare waits");
    assert_ne!(next, first, "the spare inspected the file and gave way");

    // The report came from the spare itself, not from the one-off path behind it.
    let blend = scratch.path.join("made.blend");
    let report = (tools.inspector)
        .report(
            &tools.blender,
            &blend,
            "IDLEFARM_INSPECT:",
            Duration::from_secs(120),
        )
        .await
        .unwrap()
        .expect("the spare reports");
    assert!(report.contains("\"active_scene\": \"Other\""), "{report}");
}

#[tokio::test]
async fn a_file_blender_cannot_open_is_refused_as_without_a_spare() {
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "").await;
    let cut = &std::fs::read(&blend).unwrap()[..1000];
    let one_off = prepare_with(&scratch, scratch.file("cut.blend", cut), &Tools::default())
        .await
        .unwrap_err();

    let (tools, first) = with_a_spare_ready();
    let spared = prepare_with(&scratch, scratch.file("cut.blend", cut), &tools)
        .await
        .unwrap_err();
    assert_eq!(spared.status, 400);
    assert_eq!(spared.message, one_off.message);
    assert!(
        spared
            .message
            .starts_with("cut.blend could not be opened by Blender: "),
        "{}",
        spared.message
    );
    assert_ne!(tools.inspector.spare_pid(), Some(first));
    assert!(tools.inspector.spare_pid().is_some(), "a new spare waits");
}

#[tokio::test]
async fn a_spare_serves_only_the_blender_it_runs() {
    let (tools, first) = with_a_spare_ready();
    let scratch = Scratch::new();
    let blend = scratch.path.join("made.blend");
    make_blend(&blend, "").await;
    let other = Path::new("/nonexistent/blender");
    let report = (tools.inspector)
        .report(other, &blend, "IDLEFARM_INSPECT:", Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(report, None, "left to the one-off path");
    // The spare for the other program could not start; the one that waited is gone.
    assert_ne!(tools.inspector.spare_pid(), Some(first));
    // Not served with a spare: a Blender started for the file reports.
    let file = scratch.file("made.blend", &std::fs::read(&blend).unwrap());
    let prepared = prepare_with(&scratch, file, &tools).await.unwrap();
    assert_eq!(prepared.settings.frame_end, 24);
}

#[tokio::test]
async fn the_spare_never_runs_the_files_own_python() {
    let scratch = Scratch::new();
    let marker = scratch.path.join("ran");
    let blend = scratch.path.join("made.blend");
    // A text block registered to run whenever the file is opened with scripts allowed.
    let marker_path = serde_json::to_string(marker.to_str().unwrap()).unwrap();
    let extra = format!(
        "marker = {marker_path}\n\
         text = bpy.data.texts.new('startup.py')\n\
         text.write('open(%r, \"w\").write(\"ran\")\\n' % marker)\n\
         text.use_module = True"
    );
    make_blend(&blend, &extra).await;
    // It does run when Blender is allowed to: the check below can see it.
    let status = tokio::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--enable-autoexec"])
        .arg(&blend)
        .args(["--python-expr", "pass"])
        .env("HOME", &scratch.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert!(marker.exists(), "the scene's script runs with autoexec on");
    std::fs::remove_file(&marker).unwrap();

    let (tools, _) = with_a_spare_ready();
    let report = (tools.inspector)
        .report(
            &tools.blender,
            &blend,
            "IDLEFARM_INSPECT:",
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(report.is_some(), "the spare inspected the file");
    assert!(!marker.exists(), "the scene's own Python ran in the spare");
}
