//! Scene sequences end to end: a zip of generated `.pov` files rendered one file per frame by
//! real agents and POV-Ray, each frame compared pixel for pixel with `povray` run directly on
//! its file; the question an ambiguous zip gets; a failing file; a yield in the middle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_agent::{Availability, ManualPresence};
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{JobInfo, JobState, PresenceState};

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::make_zip;

const LIMIT: Duration = Duration::from_secs(600);
const FILES: usize = 12;
const WIDTH: u32 = 48;
const HEIGHT: u32 = 32;

/// The include every file of the sequence shares.
const COMMON_INC: &str = "#declare BallColour = rgb <0.2, 0.5, 1>;\n\
     camera { location <0, 1, -5> look_at <0, 0, 0> }\n\
     light_source { <4, 6, -6> color White }\n\
     plane { y, -1 pigment { checker color White color Gray20 } }\n";

/// Frame `n`'s scene: the ball at its own place. `heavy` adds an area light so that a frame
/// takes a moment.
fn frame_scene(n: usize, heavy: bool) -> String {
    let light = if heavy {
        "light_source { <-4, 6, -6> color rgb 0.5 area_light <2, 0, 0>, <0, 2, 0>, 12, 12 }\n"
    } else {
        ""
    };
    format!(
        "#include \"colors.inc\"\n#include \"inc/common.inc\"\n{light}\
         sphere {{ <{:.2}, 0, 0>, 0.6 pigment {{ color BallColour }} }}\n",
        -2.2 + 0.4 * n as f64
    )
}

/// The ini the zip carries: size and quality for every file, and animation keys a sequence
/// ignores.
fn movie_ini() -> String {
    format!(
        "Width={WIDTH}\nHeight={HEIGHT}\nAntialias=On\nAntialias_Threshold=0.3\n\
         Initial_Frame=1\nFinal_Frame=100\nInitial_Clock=0\nFinal_Clock=5\n"
    )
}

/// Writes the project into `dir/project/` and zips it (names in plain, not natural, order,
/// so the coordinator has to sort them) as `dir/movie.zip`. `broken` replaces one file's scene.
fn make_project(dir: &Path, heavy: bool, broken: Option<usize>) -> PathBuf {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("inc")).unwrap();
    let mut files: Vec<(String, String)> = (1..=FILES)
        .map(|n| {
            let scene = match broken {
                Some(b) if b == n => "sphere { 0, 1 pigment { colr NoSuchColour } }\n".into(),
                _ => frame_scene(n, heavy),
            };
            (format!("frame{n}.pov"), scene)
        })
        .collect();
    files.sort();
    files.push(("inc/common.inc".into(), COMMON_INC.into()));
    files.push(("movie.ini".into(), movie_ini()));
    for (name, text) in &files {
        std::fs::write(project.join(name), text).unwrap();
    }
    let entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_bytes()))
        .collect();
    let zip = dir.join("movie.zip");
    make_zip(&zip, &entries);
    zip
}

fn sequence_options() -> SubmitOptions {
    SubmitOptions {
        sequence: true,
        fps: Some("12".into()),
        ..SubmitOptions::default()
    }
}

/// `povray` run by hand on `frameN.pov` in the project folder with the job's settings.
fn direct_render(project: &Path, n: usize, out: &Path) -> image::RgbaImage {
    let file = out.join(format!("direct{n}.png"));
    let output = std::process::Command::new("povray")
        .current_dir(project)
        .arg(format!("+Iframe{n}.pov"))
        .arg(format!("+O{}", file.display()))
        .args(["+FN", &format!("+W{WIDTH}"), &format!("+H{HEIGHT}")])
        .args(["+A0.3", "-D", "-V"])
        .output()
        .expect("povray runs");
    assert!(
        output.status.success(),
        "povray on frame{n}.pov: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    image::open(&file).unwrap().to_rgba8()
}

/// The stored frame `n` of `job`.
fn stored_frame(farm: &Farm, job: &JobInfo, n: i64) -> image::RgbaImage {
    let path = farm
        .data()
        .join(format!("jobs/{}/frames/frame_{n:05}.png", job.id));
    image::open(path).unwrap().to_rgba8()
}

/// Every frame is its own file rendered once: identical to `povray` run on that file.
fn assert_frames_are_their_files(farm: &Farm, job: &JobInfo, project: &Path) {
    let out = tempfile::tempdir().unwrap();
    let mut previous: Option<image::RgbaImage> = None;
    for n in 1..=FILES {
        let stored = stored_frame(farm, job, n as i64);
        let direct = direct_render(project, n, out.path());
        assert_eq!(stored.dimensions(), direct.dimensions());
        assert!(
            stored == direct,
            "frame {n} differs from povray run on frame{n}.pov"
        );
        if let Some(previous) = previous {
            assert!(stored != previous, "frames {} and {n} are the same", n - 1);
        }
        previous = Some(stored);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sequence_of_twelve_files_renders_each_once_in_natural_order() {
    let dir = shared_tempdir();
    let zip = make_project(dir.path(), false, None);
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    farm.add_agent("b");
    let job = farm.client.submit(&zip, &sequence_options()).await.unwrap();
    let want: Vec<String> = (1..=FILES).map(|n| format!("frame{n}.pov")).collect();
    assert_eq!(job.settings.sequence.as_deref(), Some(want.as_slice()));
    assert_eq!(
        job.settings.frames(),
        (1..=FILES as i64).collect::<Vec<_>>()
    );
    assert_eq!(job.settings.fps, 12.0);
    assert!(
        job.warnings.iter().any(|w| w.contains("movie.ini")),
        "{:?}",
        job.warnings
    );

    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;
    let frames = farm.client.frames(job.id).await.unwrap();
    let sources: Vec<Option<String>> = frames.iter().map(|f| f.source.clone()).collect();
    let want: Vec<Option<String>> = want.into_iter().map(Some).collect();
    assert_eq!(sources, want, "each frame names its file");
    assert_frames_are_their_files(&farm, &job, &dir.path().join("project"));
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zip_of_several_scenes_without_main_or_sequence_asks_which() {
    let dir = shared_tempdir();
    let zip = make_project(dir.path(), false, None);
    let farm = Farm::start(|_| {}).await;
    let err = farm
        .client
        .submit(&zip, &SubmitOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("(422 Unprocessable Entity)"), "{err}");
    assert!(err.contains("--main PATH"), "{err}");
    assert!(err.contains("--sequence"), "{err}");
    assert!(farm.client.jobs().await.unwrap().is_empty());
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_file_fails_its_frame_with_its_log_while_the_others_complete() {
    let dir = shared_tempdir();
    let zip = make_project(dir.path(), false, Some(5));
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    // One chunk: the agent renders every file, then reports the one that failed. Its retries
    // fail too, and a job whose only agent failed on it 3 times fails.
    let opts = SubmitOptions {
        chunk: Some(FILES.to_string()),
        ..sequence_options()
    };
    let job = farm.client.submit(&zip, &opts).await.unwrap();
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.frames.done, FILES as u64 - 1, "{job:?}");
    let frames = farm.client.frames(job.id).await.unwrap();
    for f in &frames {
        match f.frame {
            5 => {
                assert_ne!(f.state, "done");
                assert!(f.failures >= 1, "{f:?}");
                assert_eq!(f.source.as_deref(), Some("frame5.pov"));
            }
            _ => assert_eq!((f.state.as_str(), f.failures), ("done", 0), "{f:?}"),
        }
    }
    let failures = farm.client.failures(job.id).await.unwrap();
    let first = failures.first().expect("the failure is recorded");
    assert!(first.message.starts_with("frame5.pov: povray"), "{first:?}");
    let log = first.log_tail.as_deref().unwrap_or_default();
    assert!(log.contains("frame5.pov"), "{log}");
    assert!(log.contains("Parse Error"), "{log}");
    let error = job.error.unwrap_or_default();
    assert!(error.contains("frame5.pov"), "{error}");
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_yielded_chunk_resumes_at_the_right_file() {
    let dir = shared_tempdir();
    let zip = make_project(dir.path(), true, None);
    let mut farm = Farm::start(|_| {}).await;
    let presence = Arc::new(ManualPresence::new(Availability::Available));
    farm.add_agent_with("a", presence.clone(), |c| {
        c.max_suspend = Duration::from_millis(300);
    });
    let opts = SubmitOptions {
        chunk: Some(FILES.to_string()),
        ..sequence_options()
    };
    let job = farm.client.submit(&zip, &opts).await.unwrap();

    // A person sits down once a few files are done: the chunk is yielded.
    let start = Instant::now();
    loop {
        let j = farm.client.job(job.id).await.unwrap();
        if j.frames.done >= 3 {
            break;
        }
        assert!(start.elapsed() < LIMIT, "nothing rendered: {j:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    presence.set(Availability::Unavailable(PresenceState::UserPresent));
    let start = Instant::now();
    let done_before = loop {
        let agents = farm.client.agents().await.unwrap();
        let j = farm.client.job(job.id).await.unwrap();
        if agents[0].yields == 1 && j.frames.rendering == 0 {
            break j.frames.done;
        }
        assert!(start.elapsed() < LIMIT, "no yield: {agents:?} {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        done_before < FILES as u64,
        "the chunk finished before the yield"
    );
    eprintln!("yielded with {done_before} of {FILES} files done");

    presence.set(Availability::Available);
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;
    let frames = farm.client.frames(job.id).await.unwrap();
    let first_lease = frames.iter().filter(|f| f.attempts == 1).count() as u64;
    assert_eq!(first_lease, done_before, "{frames:?}");
    assert!(frames.iter().all(|f| f.failures == 0), "{frames:?}");
    assert_frames_are_their_files(&farm, &job, &dir.path().join("project"));
    farm.stop().await;
}

/// Writes a `.blend` whose cube moves over frames 1-10 and whose current frame is `current`.
fn make_blend_at(path: &Path, current: u32) {
    let script = format!(
        "import bpy\n\
         s = bpy.context.scene\n\
         s.render.engine = 'CYCLES'\n\
         s.cycles.samples = 2\n\
         s.cycles.use_denoising = False\n\
         s.render.resolution_x = 32\n\
         s.render.resolution_y = 18\n\
         s.render.resolution_percentage = 100\n\
         s.frame_start = 1\n\
         s.frame_end = 10\n\
         cube = bpy.data.objects['Cube']\n\
         cube.location = (-3, 0, 0)\n\
         cube.keyframe_insert(data_path='location', frame=1)\n\
         cube.location = (3, 0, 0)\n\
         cube.keyframe_insert(data_path='location', frame=10)\n\
         s.frame_set({current})\n\
         bpy.ops.wm.save_as_mainfile(filepath={:?})\n",
        path.to_str().unwrap()
    );
    let out = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--python-expr", &script])
        .output()
        .expect("blender runs");
    assert!(
        out.status.success() && path.exists(),
        "cannot write {}",
        path.display()
    );
}

/// Blender run by hand on `file` for frame `frame`.
fn direct_blender(file: &Path, frame: u32, out: &Path) -> image::RgbaImage {
    let pattern = out.join("direct_#####");
    let output = std::process::Command::new("blender")
        .args(["-b", "--factory-startup", "--disable-autoexec"])
        .arg(file)
        .arg("-o")
        .arg(&pattern)
        .args(["-F", "PNG", "-x", "1", "-f", &frame.to_string()])
        .output()
        .expect("blender runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    image::open(out.join(format!("direct_{frame:05}.png")))
        .unwrap()
        .to_rgba8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sequence_of_blends_renders_each_files_current_frame() {
    let dir = shared_tempdir();
    // (file, its current frame), named so that natural order differs from plain order.
    let shots = [("shot2.blend", 9), ("shot10.blend", 2), ("shot9.blend", 5)];
    let mut entries = Vec::new();
    for (name, current) in shots {
        let path = dir.path().join(name);
        make_blend_at(&path, current);
        entries.push((name, std::fs::read(&path).unwrap()));
    }
    let zip = dir.path().join("shots.zip");
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    make_zip(&zip, &files);

    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let job = farm.client.submit(&zip, &sequence_options()).await.unwrap();
    let order = ["shot2.blend", "shot9.blend", "shot10.blend"].map(String::from);
    assert_eq!(job.settings.sequence.as_deref(), Some(order.as_slice()));
    let job = wait_for_job(&farm.client, job.id, LIMIT).await;
    assert_complete(&farm, &job).await;

    let out = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for (n, (name, current)) in [("shot2.blend", 9), ("shot9.blend", 5), ("shot10.blend", 2)]
        .into_iter()
        .enumerate()
    {
        let stored = stored_frame(&farm, &job, n as i64 + 1);
        let direct = direct_blender(&dir.path().join(name), current, out.path());
        assert!(
            stored == direct,
            "frame {} is not {name} at frame {current}",
            n + 1
        );
        assert!(!seen.contains(&stored), "frame {} repeats another", n + 1);
        seen.push(stored);
    }
    farm.stop().await;
}
