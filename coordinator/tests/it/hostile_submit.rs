//! Hostile submissions (issue 11): each reproducer gets a 4xx a person can act on and leaves
//! nothing stored, or becomes a job the farm can actually render.

use std::path::Path;
use std::time::Duration;

use idlefarm_protocol::{ErrorBody, JobState};
use reqwest::multipart::{Form, Part};

use crate::common::{Farm, shared_tempdir, wait_for_job};
use crate::scenes::{make_zip, pov_ini, pov_scene};

/// Posts a multipart form as the farm's admin; returns the status and the body.
async fn post(farm: &Farm, form: Form) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(farm.client.url("/jobs"))
        .bearer_auth(farm.client.token().expect("logged in"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn file(name: &str, bytes: impl Into<Vec<u8>>) -> Part {
    Part::bytes(bytes.into()).file_name(name.to_owned())
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// Posts `form` and checks it is refused with `status`, a JSON message containing every one
/// of `needles` and no path of the coordinator's, and that no job, blob or scratch file is left.
async fn assert_refused(farm: &Farm, form: Form, status: u16, needles: &[&str]) -> String {
    let (got, body) = post(farm, form).await;
    let message = serde_json::from_str::<ErrorBody>(&body)
        .unwrap_or_else(|_| panic!("error answer is JSON {{error}}: {body:.300}"))
        .error;
    assert_eq!(got, status, "status; message: {message:.300}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "message {message:.300} should mention {needle:?}"
        );
    }
    let data = farm.data().display().to_string();
    assert!(
        !message.contains(&data) && !message.contains("/tmp/"),
        "no internal path in {message:.300}"
    );
    assert!(farm.client.jobs().await.unwrap().is_empty(), "no job");
    let stored: Vec<String> = ["blobs", "tmp", "jobs"]
        .iter()
        .flat_map(|d| files_under(&farm.data().join(d)))
        .collect();
    assert!(stored.is_empty(), "nothing was stored: {stored:?}");
    message
}

fn pov_form(ini: &str) -> Form {
    Form::new()
        .part("file", file("s.pov", pov_scene(None)))
        .part("ini", file("s.ini", ini.to_owned()))
}

/// Item 1: a 10,000-character file name becomes a short, valid input name that an agent can
/// create, so the job renders instead of stalling the farm.
#[tokio::test(flavor = "multi_thread")]
async fn a_ten_thousand_character_file_name_becomes_a_job_an_agent_renders() {
    let mut farm = Farm::start(|_| {}).await;
    let long = format!("{}.pov", "a".repeat(10_000));
    let form = Form::new().part("file", file(&long, pov_scene(None))).part(
        "ini",
        file(&long.replace(".pov", ".ini"), pov_ini(1, 2, 32, 24)),
    );
    let (status, body) = post(&farm, form).await;
    assert_eq!(status, 201, "{body:.300}");
    let jobs = farm.client.jobs().await.unwrap();
    let job = &jobs[0];
    let input = &job.settings.main_file;
    assert!(input.len() <= 64, "input name is {} long", input.len());
    assert!(input.ends_with("aaa.pov"), "{input}");
    assert!(job.name.chars().count() <= 200, "job name is cut");
    assert!(job.name.ends_with(".pov"), "{}", job.name);

    farm.add_agent("pc1");
    let done = wait_for_job(&farm.client, job.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, JobState::Done, "{:?}", done.error);
    assert_eq!(done.frames.done, 2);
    farm.stop().await;
}

/// This process's peak resident memory in KiB (the coordinator under test runs in it).
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Item 4: a 256 MiB `name` field is refused while it streams in, naming the field, and the
/// coordinator's peak memory does not grow by anything like the field's size.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_text_field_is_refused_while_it_streams_in() {
    let farm = Farm::start(|_| {}).await;
    // Resets the peak so only this upload counts.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_kib();
    let chunks = (0..4096).map(|_| Ok::<Vec<u8>, std::io::Error>(vec![b'a'; 64 << 10]));
    let name = Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
    let form = Form::new()
        .part("name", name)
        .part("file", file("s.pov", pov_scene(None)));
    assert_refused(
        &farm,
        form,
        400,
        &["field `name` is too long", "1000 bytes"],
    )
    .await;
    let grown = peak_rss_kib() - before;
    assert!(grown < 64 << 10, "peak memory grew by {grown} KiB");

    let form = pov_form(&pov_ini(1, 2, 32, 24)).text("frames", "1".repeat(1001));
    assert_refused(&farm, form, 400, &["field `frames` is too long"]).await;
    farm.stop().await;
}

/// Item 5: ini frame numbers beyond the `frames` field's bounds (here one whose frame count
/// wrapped around and panicked) are a 400 naming the key and the bounds, and leave no blob.
#[tokio::test(flavor = "multi_thread")]
async fn ini_frame_numbers_out_of_bounds_are_refused_and_leave_no_blob() {
    let farm = Farm::start(|_| {}).await;
    let bounds = "frames go from -1048574 to 1048574";
    let wrap = pov_form("Initial_Frame=-9223372036854775808\nFinal_Frame=0\n");
    assert_refused(&farm, wrap, 400, &["Initial_Frame", bounds]).await;
    let switches = pov_form("+KFI1 +KFF9223372036854775807\n");
    assert_refused(&farm, switches, 400, &["+KFF", bounds]).await;
    let subset = pov_form("Initial_Frame=1\nFinal_Frame=10\nSubset_End_Frame=2000000\n");
    assert_refused(&farm, subset, 400, &["Subset_End_Frame", bounds]).await;
    let field = pov_form(&pov_ini(1, 2, 32, 24)).text("frames", "-9223372036854775808-0");
    assert_refused(&farm, field, 400, &["-9223372036854775808", bounds]).await;
    farm.stop().await;
}

/// Item 9: negative frames are refused at submission, from the form or from an ini, and
/// every frame name `/frames` lists (frame 0 included) downloads.
#[tokio::test(flavor = "multi_thread")]
async fn negative_frames_are_refused_and_listed_frames_download() {
    let mut farm = Farm::start(|_| {}).await;
    let why = "negative frame numbers cannot be rendered";
    let field = pov_form(&pov_ini(-10, 10, 32, 24)).text("frames", "-5");
    assert_refused(&farm, field, 400, &["\"-5\"", why]).await;
    let ini = pov_form(&pov_ini(-5, -1, 32, 24));
    assert_refused(&farm, ini, 422, &["-5--1", why, "frames field"]).await;

    let (status, body) = post(&farm, pov_form(&pov_ini(0, 1, 32, 24))).await;
    assert_eq!(status, 201, "{body:.300}");
    let id = farm.client.jobs().await.unwrap()[0].id;
    farm.add_agent("pc1");
    let job = wait_for_job(&farm.client, id, Duration::from_secs(120)).await;
    assert_eq!(job.state, JobState::Done, "{:?}", job.error);
    let frames = farm.client.frames(id).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.frame).collect::<Vec<_>>(), [0, 1]);
    for frame in frames {
        let name = frame.file.expect("a done frame has a file");
        let res = reqwest::Client::new()
            .get(farm.client.url(&format!("/jobs/{id}/frames/{name}")))
            .bearer_auth(farm.client.token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert!(image::load_from_memory(&res.bytes().await.unwrap()).is_ok());
    }
    farm.stop().await;
}

/// Item 10: a frame rate no video can be assembled at is refused at submission, not when the
/// job is already rendered.
#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_or_huge_fps_is_refused_at_submission() {
    let farm = Farm::start(|_| {}).await;
    for fps in ["1e-7", "0.001", "5000"] {
        let form = pov_form(&pov_ini(1, 2, 32, 24)).text("fps", fps);
        assert_refused(&farm, form, 400, &[fps, "from 0.01 to 1000"]).await;
    }
    farm.stop().await;
}

/// Item 12: zip entries whose names pass file-system limits are a 400 naming the entry (not a
/// 500 showing the data directory).
#[tokio::test(flavor = "multi_thread")]
async fn long_zip_entry_names_are_a_400_naming_the_entry() {
    let scenes = shared_tempdir();
    let farm = Farm::start(|_| {}).await;
    let pov = pov_scene(None).into_bytes();
    let long_name = format!("{}.inc", "a".repeat(300));
    let deep = format!("{}x.inc", "d/".repeat(600));
    for (entry, reason) in [(&long_name, "at most 255"), (&deep, "at most 1024")] {
        let zip = scenes.path().join("p.zip");
        make_zip(&zip, &[("scene.pov", &pov), (entry.as_str(), b"// x")]);
        let form = Form::new().part("file", file("p.zip", std::fs::read(&zip).unwrap()));
        let message = assert_refused(&farm, form, 400, &["p.zip", &entry[..40], reason]).await;
        assert!(
            message.len() < 400,
            "the entry is quoted shortened: {message}"
        );
    }
    farm.stop().await;
}
