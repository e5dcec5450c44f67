//! Frames are checked before they count, with real POV-Ray on every PC and a broken PC made by
//! wrapping POV-Ray in a script: one that renders an empty (black) scene, one that prints a
//! fatal message and then renders correctly, one that renders a slightly different scene.
//! Every job still comes out exactly as POV-Ray renders it directly; the broken PC's renders
//! are outvoted, recorded as wrong frames and get it quarantined; a frame that really is black
//! is accepted once a second PC agrees.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use idlefarm_agent::{AlwaysAvailable, Availability, ManualPresence};
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{FrameInfo, JobInfo, PresenceState, Renderer};

use super::agents::{agent, wait_agent};
use super::{JOB_LIMIT, eventually};
use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::povray_examples::{direct_render, psnr};
use crate::scenes::make_zip;

/// A moving sphere over a checkered floor, lit: no frame is a single colour, except frame
/// `black_frame` (if any), which has a camera and nothing else.
fn scene(black_frame: Option<i64>, sphere: &str) -> String {
    let black = black_frame.map_or("0".to_owned(), |f| format!("frame_number = {f}"));
    format!(
        "#include \"colors.inc\"
camera {{ location <0, 1, -4> look_at <0, 0, 0> }}
#if ({black})
#else
light_source {{ <4, 6, -6> color White }}
plane {{ y, -1 pigment {{ checker color White color Gray20 }} }}
sphere {{ <-1.5 + 3 * clock, 0, 0>, 0.7 pigment {{ color {sphere} }} }}
#end
"
    )
}

const SPHERE: &str = "rgb <1, 0.4, 0.1>";

/// The scene's ini: `frames` frames of 48×36.
fn ini(frames: i64) -> String {
    format!(
        "Input_File_Name=job.pov\nInitial_Frame=1\nFinal_Frame={frames}\nInitial_Clock=0\nFinal_Clock=1\n+W48 +H36\nAntialias=On\n"
    )
}

/// Writes the scene and its ini to `folder` and submits them as a zip in chunks of one frame.
async fn submit(farm: &Farm, folder: &Path, pov: &str, ini: &str) -> JobInfo {
    std::fs::create_dir_all(folder).unwrap();
    std::fs::write(folder.join("job.pov"), pov).unwrap();
    std::fs::write(folder.join("job.ini"), ini).unwrap();
    let zip = folder.join("job.zip");
    make_zip(
        &zip,
        &[("job.pov", pov.as_bytes()), ("job.ini", ini.as_bytes())],
    );
    let opts = SubmitOptions {
        chunk: Some("1".into()),
        ..SubmitOptions::default()
    };
    farm.client.submit(&zip, &opts).await.unwrap()
}

/// A `povray` wrapper named `name` in `dir`: runs `body` (a shell snippet that may rewrite
/// the arguments) and then the real POV-Ray.
fn wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    let real = which_povray();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --version ]; then exec {real} --version; fi\n\
             here=$(dirname \"$0\")\n\
             {body}\n\
             exec {real} \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A wrapper that renders `scene_file` (in the wrapper's folder) in place of the job's scene.
fn swapping_wrapper(dir: &Path, name: &str, scene_file: &str, scene: &str) -> PathBuf {
    std::fs::write(dir.join(scene_file), scene).unwrap();
    let swap = format!(
        "for a in \"$@\"; do shift; case \"$a\" in +I*) set -- \"$@\" \"+I$here/{scene_file}\";; *) set -- \"$@\" \"$a\";; esac; done"
    );
    wrapper(dir, name, &swap)
}

fn which_povray() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v povray"])
        .output()
        .unwrap();
    let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(!path.is_empty(), "povray is installed");
    path
}

/// Asserts every frame of the finished `job` is pixel-identical to POV-Ray's own render of
/// the scene in `folder`; returns the frames.
async fn assert_as_povray_renders(farm: &Farm, job: &JobInfo, folder: &Path) -> Vec<FrameInfo> {
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(farm, &job).await;
    let direct = direct_render(folder, "job.ini");
    let frames = farm.client.frames(job.id).await.unwrap();
    assert_eq!(frames.len(), direct.len());
    let dir = farm.data().join(format!("jobs/{}/frames", job.id));
    for (f, theirs) in frames.iter().zip(&direct) {
        let ours = image::open(dir.join(f.file.as_ref().unwrap())).unwrap();
        let theirs = image::open(theirs).unwrap();
        assert_eq!(
            psnr(&ours, &theirs),
            None,
            "frame {} differs from POV-Ray's own: {f:?}",
            f.frame
        );
    }
    assert!(
        !dir.join("check").exists() || std::fs::read_dir(dir.join("check")).unwrap().count() == 0,
        "no held render is left behind"
    );
    frames
}

fn in_use() -> Arc<ManualPresence> {
    Arc::new(ManualPresence::new(Availability::Unavailable(
        PresenceState::UserPresent,
    )))
}

async fn enrolled(farm: &Farm, names: &[&str]) {
    for name in names {
        wait_agent(farm, name, "the agent enrols with POV-Ray", |a| {
            a.renderers.iter().any(|r| r.renderer == Renderer::Povray)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pc_rendering_black_frames_is_outvoted_and_quarantined_and_the_job_comes_out_right() {
    let scripts = shared_tempdir();
    let black = swapping_wrapper(
        scripts.path(),
        "povray-black",
        "empty.pov",
        "camera { location <0, 1, -4> look_at <0, 0, 0> }\n",
    );
    let mut farm = Farm::start(|_| {}).await;
    let good_presence = Arc::new(ManualPresence::new(Availability::Available));
    let black_presence = in_use();
    farm.add_agent_with("good", good_presence.clone(), |_| {});
    farm.add_agent_with("broken", black_presence.clone(), |c| c.povray = black);
    enrolled(&farm, &["good", "broken"]).await;
    let folder = farm.dir.path().join("scene");
    let job = submit(&farm, &folder, &scene(None, SPHERE), &ini(10)).await;

    // The good PC renders the first frames; then its person comes back and the broken PC,
    // free now, renders black frames next to them.
    eventually("the good PC renders three frames", JOB_LIMIT, || async {
        let j = farm.client.job(job.id).await.unwrap();
        match j.frames.done >= 3 {
            true => Ok(()),
            false => Err(format!("{:?}", farm.client.frames(job.id).await.unwrap())),
        }
    })
    .await;
    good_presence.set(Availability::Unavailable(PresenceState::UserPresent));
    black_presence.set(Availability::Available);
    eventually("the broken PC's frames are held", JOB_LIMIT, || async {
        let frames = farm.client.frames(job.id).await.unwrap();
        let held = (frames.iter())
            .filter(|f| f.state == "queued" && f.check.is_some())
            .count();
        match held >= 2 {
            true => Ok(()),
            false => Err(format!("{frames:?}")),
        }
    })
    .await;
    // Its person leaves again: the good PC renders the held frames, outvoting the black ones.
    good_presence.set(Availability::Available);
    let broken = wait_agent(&farm, "broken", "the broken PC is quarantined", |a| {
        a.quarantined_until.is_some()
    })
    .await;

    let frames = assert_as_povray_renders(&farm, &job, &folder).await;
    let good = agent(&farm, "good").await.id;
    assert!(
        frames.iter().all(|f| f.agent_id == Some(good)),
        "{frames:?}"
    );
    let checked: Vec<&FrameInfo> = frames.iter().filter(|f| f.check.is_some()).collect();
    assert!(
        checked.len() >= 2,
        "the broken PC's frames were checked: {frames:?}"
    );
    for f in &checked {
        let note = f.check.as_deref().unwrap();
        assert!(note.contains("looked wrong"), "frame {}: {note}", f.frame);
    }
    // The job page's frame detail says so too.
    let url = format!(
        "{}/jobs/{}?part=frame&frame={}",
        farm.url, job.id, checked[0].frame
    );
    let page = reqwest::Client::new()
        .get(&url)
        .bearer_auth(farm.client.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{page:?}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("checked:") && html.contains("looked wrong"),
        "{html}"
    );
    let failures = farm.client.failures(job.id).await.unwrap();
    assert!(failures.len() >= 2, "{failures:?}");
    for f in &failures {
        assert_eq!(f.agent_id, broken.id, "{f:?}");
        assert!(
            f.message.contains("a single colour (rgb 0, 0, 0)") && f.message.contains("PSNR"),
            "{f:?}"
        );
    }
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_really_black_frame_and_a_renderer_error_are_accepted_once_a_second_pc_agrees() {
    let scripts = shared_tempdir();
    let loud = wrapper(
        scripts.path(),
        "povray-loud",
        "echo 'Fatal error in renderer: out of memory (simulated by the test)' >&2",
    );
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent_with("quiet", Arc::new(AlwaysAvailable), |_| {});
    farm.add_agent_with("loud", Arc::new(AlwaysAvailable), |c| c.povray = loud);
    enrolled(&farm, &["quiet", "loud"]).await;
    let folder = farm.dir.path().join("scene");
    let job = submit(&farm, &folder, &scene(Some(4), SPHERE), &ini(8)).await;

    let frames = assert_as_povray_renders(&farm, &job, &folder).await;
    let dir = farm.data().join(format!("jobs/{}/frames", job.id));
    let four = &frames[3];
    let img = image::open(dir.join(four.file.as_ref().unwrap())).unwrap();
    assert!(
        img.to_rgb8().pixels().all(|p| p.0 == [0, 0, 0]),
        "frame 4 is black"
    );
    let note = four.check.as_deref().expect("frame 4 was checked");
    assert!(note.contains("confirmed by "), "{note}");
    let loud_id = agent(&farm, "loud").await.id;
    for f in frames.iter().filter(|f| f.agent_id == Some(loud_id)) {
        // Whichever of two agreeing renders is kept, the loud PC's counts only once the quiet
        // one confirmed it.
        let note = f.check.as_deref().unwrap_or_default();
        assert!(
            note.contains("confirmed by quiet"),
            "a frame from the PC that printed a fatal error counts only when confirmed: {f:?}"
        );
    }
    assert!(
        frames.iter().filter(|f| f.check.is_some()).count() >= 2,
        "{frames:?}"
    );
    let failures = farm.client.failures(job.id).await.unwrap();
    assert!(
        failures.is_empty(),
        "agreeing PCs are not blamed: {failures:?}"
    );
    for name in ["quiet", "loud"] {
        assert_eq!(agent(&farm, name).await.quarantined_until, None, "{name}");
    }
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_verify_every_frame_is_rendered_twice_and_a_pc_rendering_differently_is_outvoted_across_a_restart()
 {
    let scripts = shared_tempdir();
    let odd = swapping_wrapper(
        scripts.path(),
        "povray-odd",
        "odd.pov",
        &scene(None, "rgb <0.1, 0.4, 1>"),
    );
    let mut farm = Farm::start(|c| c.verify_percent = 100.0).await;
    let people = in_use();
    farm.add_agent_with("a", people.clone(), |_| {});
    farm.add_agent_with("b", people.clone(), |_| {});
    farm.add_agent_with("odd", Arc::new(AlwaysAvailable), |c| c.povray = odd);
    enrolled(&farm, &["a", "b", "odd"]).await;
    let folder = farm.dir.path().join("scene");
    let job = submit(&farm, &folder, &scene(None, SPHERE), &ini(6)).await;

    // The odd PC renders every frame first; each is held for a second PC's render.
    eventually("every frame is held", JOB_LIMIT, || async {
        let frames = farm.client.frames(job.id).await.unwrap();
        let held = frames
            .iter()
            .filter(|f| f.state == "queued" && f.check.is_some())
            .count();
        match held == 6 {
            true => Ok(()),
            false => Err(format!("{frames:?}")),
        }
    })
    .await;
    // The held renders survive a restart of the coordinator (which stops these agents too);
    // two fresh PCs then render every frame again.
    let before = farm.client.frames(job.id).await.unwrap();
    farm.restart_server().await;
    let after = farm.client.frames(job.id).await.unwrap();
    let json = |f: &Vec<FrameInfo>| serde_json::to_value(f).unwrap();
    assert_eq!(json(&before), json(&after), "held frames survive a restart");
    farm.add_agent_with("a2", Arc::new(AlwaysAvailable), |_| {});
    farm.add_agent_with("b2", Arc::new(AlwaysAvailable), |_| {});
    drop(people);

    let frames = assert_as_povray_renders(&farm, &job, &folder).await;
    let odd = agent(&farm, "odd").await;
    assert!(odd.quarantined_until.is_some(), "{odd:?}");
    for f in &frames {
        assert_ne!(f.agent_id, Some(odd.id), "{f:?}");
        let note = f.check.as_deref().expect("every frame was verified");
        assert!(note.contains("confirmed by "), "frame {}: {note}", f.frame);
    }
    let failures = farm.client.failures(job.id).await.unwrap();
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f.agent_id == odd.id),
        "{failures:?}"
    );
    farm.stop().await;
}
