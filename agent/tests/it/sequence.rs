//! Scene sequences through the render module: one real POV-Ray run per scene file, each
//! delivered as its own frame, and a failing file that leaves the others rendered.

use std::path::Path;
use std::time::Duration;

use idlefarm_agent::Availability;
use idlefarm_agent::render::{self, RenderControl, RenderJob, RenderOutcome, RenderedFrame};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A still scene with its sphere at `x`.
fn still_scene(x: f64) -> String {
    format!(
        "#version 3.7;\n\
         global_settings {{ assumed_gamma 1.0 }}\n\
         camera {{ location <0, 0, -5> look_at <0, 0, 0> }}\n\
         light_source {{ <5, 5, -5> color rgb 1 }}\n\
         sphere {{ <{x}, 0, 0>, 0.5 pigment {{ color rgb <1, 0, 0> }} }}\n"
    )
}

/// A sequence job over `files` (name, scene) written to `<dir>/input`, rendering `frames`.
fn sequence_job(dir: &Path, files: &[(&str, String)], frames: Vec<i64>) -> RenderJob {
    let input = mkdir(&dir.join("input"));
    for (name, scene) in files {
        std::fs::write(input.join(name), scene).unwrap();
    }
    let mut settings = povray_settings(files[0].0, 32, 24, files.len() as i64);
    settings.sequence = Some(files.iter().map(|(name, _)| name.to_string()).collect());
    RenderJob {
        settings,
        frames,
        main_file: input.join(files[0].0),
        input_root: input,
        out_dir: mkdir(&dir.join("out")),
    }
}

async fn render_all(job: RenderJob) -> (RenderOutcome, Vec<RenderedFrame>) {
    let (_presence, presence_rx) = watch::channel(Availability::Available);
    let (suspended, _) = watch::channel(false);
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel();
    let control = RenderControl {
        presence: presence_rx,
        max_suspend: Duration::from_secs(60),
        cancel: CancellationToken::new(),
        suspended,
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        render::render(&job, &render_env(), frames_tx, control),
    )
    .await
    .expect("the sequence rendered within 2 minutes");
    let mut frames = Vec::new();
    while let Ok(frame) = frames_rx.try_recv() {
        frames.push(frame);
    }
    (outcome, frames)
}

#[tokio::test]
async fn each_frame_is_its_own_scene_file() {
    let dir = open_tempdir();
    let files: Vec<(&str, String)> = vec![
        ("s1.pov", still_scene(-1.0)),
        ("s2.pov", still_scene(0.0)),
        ("s3.pov", still_scene(1.0)),
    ];
    // A chunk from the middle of the job: frames 2 and 3 are files 2 and 3.
    let job = sequence_job(dir.path(), &files, vec![2, 3]);
    let (outcome, frames) = render_all(job).await;
    assert_eq!(outcome, RenderOutcome::Complete);
    let numbers: Vec<i64> = frames.iter().map(|f| f.frame).collect();
    assert_eq!(numbers, [2, 3]);
    let images: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| std::fs::read(&f.path).unwrap())
        .collect();
    assert!(frames[0].path.ends_with("frame_00002.png"));
    assert_eq!(png_size(&images[0]), (32, 24));
    assert_ne!(
        images[0], images[1],
        "different files give different images"
    );
}

#[tokio::test]
async fn a_failing_file_fails_the_lease_after_the_others_are_delivered() {
    let dir = open_tempdir();
    let files: Vec<(&str, String)> = vec![
        ("s1.pov", still_scene(-1.0)),
        (
            "s2.pov",
            "sphere { 0, 1 pigment { colr rgb 1 } }\n".to_owned(),
        ),
        ("s3.pov", still_scene(1.0)),
    ];
    let job = sequence_job(dir.path(), &files, vec![1, 2, 3]);
    let (outcome, frames) = render_all(job).await;
    let numbers: Vec<i64> = frames.iter().map(|f| f.frame).collect();
    assert_eq!(numbers, [1, 3]);
    match outcome {
        RenderOutcome::Failed { message, log_tail } => {
            assert_eq!(
                message,
                "s2.pov: povray exited with status 1 while rendering frames 2"
            );
            assert!(log_tail.contains("s2.pov"), "{log_tail}");
            assert!(log_tail.contains("Parse Error"), "{log_tail}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
