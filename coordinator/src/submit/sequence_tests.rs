//! [`prepare`] for zips of several scene files: sequences, and the question asked when a zip
//! could be read either way.

use idlefarm_protocol::{InputKind, Renderer};

use super::tests::{Scratch, make_blend, zip_bytes};
use super::*;

fn sequence() -> SubmitFields {
    SubmitFields {
        sequence: Some("true".into()),
        ..SubmitFields::default()
    }
}

/// `frame1.pov` … `frame{n}.pov`, stored in the zip in plain (not natural) name order, each
/// including `inc/common.inc`, plus `extra` files.
fn pov_sequence_zip(n: usize, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut names: Vec<String> = (1..=n).map(|i| format!("frame{i}.pov")).collect();
    names.sort();
    let scenes: Vec<(String, String)> = names
        .into_iter()
        .map(|name| {
            let scene = format!(
                "#include \"inc/common.inc\"\nsphere {{ <{}, 0, 0>, 1 }}\n",
                name.len()
            );
            (name, scene)
        })
        .collect();
    let mut files: Vec<(&str, &[u8])> = scenes
        .iter()
        .map(|(name, scene)| (name.as_str(), scene.as_bytes()))
        .collect();
    files.push(("inc/common.inc", b"#declare R = 1;\n"));
    files.extend_from_slice(extra);
    zip_bytes(&files)
}

#[tokio::test]
async fn a_zip_of_povs_with_sequence_renders_one_file_per_frame_in_natural_order() {
    let scratch = Scratch::new();
    let ini: &[u8] = b"Width=48\nHeight=32\nAntialias=On\nInitial_Frame=1\nFinal_Frame=100\n";
    let zip = pov_sequence_zip(12, &[("movie.ini", ini)]);
    let file = scratch.file("movie.zip", &zip);
    let fields = SubmitFields {
        fps: Some("12".into()),
        ..sequence()
    };
    let prepared = scratch.prepare(file, fields).await.unwrap();
    let s = &prepared.settings;
    assert_eq!(prepared.input_kind, InputKind::Zip);
    assert_eq!(s.renderer, Renderer::Povray);
    let want: Vec<String> = (1..=12).map(|i| format!("frame{i}.pov")).collect();
    assert_eq!(s.sequence.as_deref(), Some(want.as_slice()));
    assert_eq!(s.frames(), (1..=12).collect::<Vec<_>>());
    assert_eq!(s.source_of(10), Some("frame10.pov"));
    assert_eq!((s.resolution_x, s.resolution_y, s.fps), (48, 32, 12.0));
    assert!(s.povray.as_ref().unwrap().antialias);
    assert_eq!(
        prepared.warnings,
        [
            "the animation settings in movie.ini (frames, clock) were ignored: in a sequence each scene file is one frame"
        ]
    );
}

#[tokio::test]
async fn a_zip_of_several_povs_without_main_or_sequence_names_both() {
    let scratch = Scratch::new();
    let file = scratch.file("movie.zip", &pov_sequence_zip(3, &[]));
    let err = scratch
        .prepare(file.clone(), SubmitFields::default())
        .await
        .unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(
        err.message,
        "the zip holds several .pov files (frame1.pov, frame2.pov, frame3.pov); choose one scene to render its animation with `main` (--main PATH), or render them as a sequence, one file per frame in name order, with `sequence` (--sequence)"
    );

    let both = SubmitFields {
        main: Some("frame1.pov".into()),
        ..sequence()
    };
    let err = scratch.prepare(file.clone(), both).await.unwrap_err();
    assert_eq!(err.status, 400);
    assert!(err.message.contains("not both"), "{}", err.message);

    let main = SubmitFields {
        main: Some("frame2.pov".into()),
        ..SubmitFields::default()
    };
    // Each submission gets a scratch folder of its own.
    let scratch = Scratch::new();
    let file = scratch.file("movie.zip", &pov_sequence_zip(3, &[]));
    let prepared = scratch.prepare(file, main).await.unwrap();
    assert_eq!(prepared.settings.main_file, "frame2.pov");
    assert_eq!(prepared.settings.sequence, None);
}

#[tokio::test]
async fn a_sequence_refuses_a_binary_scene_and_frames_outside_it() {
    let scratch = Scratch::new();
    let file = scratch.file(
        "movie.zip",
        &pov_sequence_zip(2, &[("frame3.pov", b"\0\x01")]),
    );
    let err = scratch.prepare(file, sequence()).await.unwrap_err();
    assert_eq!(err.status, 400);
    assert_eq!(
        err.message,
        "frame3.pov does not look like a POV-Ray scene (it is binary)"
    );

    let scratch = Scratch::new();
    let file = scratch.file("movie.zip", &pov_sequence_zip(4, &[]));
    let fields = SubmitFields {
        frames: Some("2-5".into()),
        ..sequence()
    };
    let err = scratch.prepare(file, fields).await.unwrap_err();
    assert_eq!(err.status, 422);
    assert!(err.message.contains("sequence's 1-4"), "{}", err.message);
}

#[tokio::test]
async fn sequence_on_a_single_scene_is_ignored_with_a_warning() {
    let scratch = Scratch::new();
    let file = scratch.file("ball.pov", b"sphere { 0, 1 }\n");
    let prepared = scratch.prepare(file, sequence()).await.unwrap();
    assert_eq!(prepared.settings.sequence, None);
    assert!(
        prepared.warnings[0].starts_with("the sequence field was ignored"),
        "{:?}",
        prepared.warnings
    );
}

#[tokio::test]
async fn a_zip_of_blends_with_sequence_takes_its_settings_from_the_first_file() {
    let scratch = Scratch::new();
    let first = scratch.path.join("first.blend");
    let other = scratch.path.join("other.blend");
    make_blend(&first, "scene.render.fps = 12").await;
    make_blend(&other, "scene.render.resolution_x = 640").await;
    let (first, other) = (std::fs::read(first).unwrap(), std::fs::read(other).unwrap());
    let zip = zip_bytes(&[
        ("shots/s10.blend", &other),
        ("shots/s2.blend", &first),
        ("shots/s9.blend", &other),
    ]);
    let file = scratch.file("shots.zip", &zip);
    let fields = SubmitFields {
        scene: Some("Scene".into()),
        ..sequence()
    };
    let prepared = scratch.prepare(file, fields).await.unwrap();
    let s = &prepared.settings;
    assert_eq!(s.renderer, Renderer::Blender);
    assert_eq!(
        s.sequence.as_deref(),
        Some(
            ["shots/s2.blend", "shots/s9.blend", "shots/s10.blend"]
                .map(String::from)
                .as_slice()
        )
    );
    assert_eq!((s.frame_start, s.frame_end, s.frame_step), (1, 3, 1));
    assert_eq!(
        (s.resolution_x, s.fps, s.scene.as_deref()),
        (64, 12.0, None)
    );
    assert_eq!(s.main_file, "shots/s2.blend");
    assert!(
        prepared
            .warnings
            .iter()
            .any(|w| w.starts_with("the scene field was ignored")),
        "{:?}",
        prepared.warnings
    );
}
