//! Hostile submissions (issue 11): each reproducer gets a 4xx a person can act on and leaves
//! nothing stored, or becomes a job the farm can actually render.

use std::time::Duration;

use idlefarm_protocol::JobState;
use reqwest::multipart::{Form, Part};

use crate::common::{Farm, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

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
