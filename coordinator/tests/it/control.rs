//! Job and agent control end to end: who may see and steer which job, cancel, pause, priority,
//! retry, drain, the blocklist and quarantine of a broken PC, the live event stream, thumbnails,
//! and the answers to malformed requests. A real coordinator on 127.0.0.1, real agents, real
//! POV-Ray and ffmpeg; scenes are tens of pixels so renders take moments.
//!
//! The submodules share the helpers here: submitting a POV-Ray animation with the control
//! fields (`priority`, `tags`), raw API calls that return the status instead of failing, and
//! watching an agent's renderer processes.

mod access;
mod agents;
mod approval;
mod checks;
mod disk;
mod health;
mod input;
mod jobs;
mod stream;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_agent::AlwaysAvailable;
use idlefarm_coordinator::client::Client;
use idlefarm_protocol::{
    ErrorBody, JobInfo, RegisterRequest, RegisterResponse, SubmitResponse, submit_fields,
};
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use crate::common::Farm;
use crate::scenes::{pov_ini, pov_scene};

/// The agents' heartbeat interval (the harness's default).
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// Longest wait for anything that should happen within moments on an idle machine.
pub const SOON: Duration = Duration::from_secs(30);
/// Longest wait for a whole (tiny) job.
pub const JOB_LIMIT: Duration = Duration::from_secs(240);

/// A POV-Ray animation to submit: frames `1..=frames` at `width`×`height`.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    pub frames: i64,
    pub width: u32,
    pub height: u32,
    /// Fixed chunk size; automatic when `None`.
    pub chunk: Option<u32>,
    /// The form's `priority` field.
    pub priority: Option<&'static str>,
    /// The form's `tags` field.
    pub tags: Option<&'static str>,
}

impl Scene {
    /// `frames` frames of 48×36, one per chunk.
    pub fn tiny(frames: i64) -> Scene {
        Scene {
            frames,
            width: 48,
            height: 36,
            chunk: Some(1),
            priority: None,
            tags: None,
        }
    }

    /// The multipart form submitting this scene as job `name`. Each job gets its own scene
    /// bytes (a comment naming it), so no two jobs share an input by accident.
    pub fn form(&self, name: &str) -> Form {
        let pov = format!("// job {name}\n{}", pov_scene(None));
        let ini = pov_ini(1, self.frames, self.width, self.height);
        let part = |file: String, bytes: String| Part::bytes(bytes.into_bytes()).file_name(file);
        let mut form = Form::new()
            .part(submit_fields::FILE, part(format!("{name}.pov"), pov))
            .part(submit_fields::INI, part(format!("{name}.ini"), ini));
        if let Some(chunk) = self.chunk {
            form = form.text(submit_fields::CHUNK, chunk.to_string());
        }
        if let Some(priority) = self.priority {
            form = form.text(submit_fields::PRIORITY, priority);
        }
        if let Some(tags) = self.tags {
            form = form.text(submit_fields::TAGS, tags);
        }
        form
    }
}

/// An API answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `{ "error": ... }` message of an error answer (panics when the body is not one).
    pub fn error(&self) -> String {
        serde_json::from_str::<ErrorBody>(&self.body)
            .unwrap_or_else(|_| panic!("error answer is JSON {{error}}: {self:?}"))
            .error
    }

    /// Asserts the status and that the error message mentions `needle`.
    pub fn assert_error(&self, status: u16, needle: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        let message = self.error();
        assert!(
            message.contains(needle),
            "{what}: message {message:?} should mention {needle:?}"
        );
    }
}

/// A request to an API path as `client` (with its token, if it has one).
fn request(client: &Client, method: Method, path: &str) -> reqwest::RequestBuilder {
    let req = reqwest::Client::new().request(method, client.url(path));
    match client.token() {
        Some(token) => req.bearer_auth(token),
        None => req,
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.expect("the coordinator answers");
    let status = res.status().as_u16();
    Answer {
        status,
        body: res.text().await.unwrap_or_default(),
    }
}

/// Sends a request with an optional JSON body; returns the answer whatever its status.
pub async fn call(
    client: &Client,
    method: Method,
    path: &str,
    json: Option<serde_json::Value>,
) -> Answer {
    let req = request(client, method, path);
    answer(match json {
        Some(body) => req.json(&body),
        None => req,
    })
    .await
}

/// Sends a request with a raw body and content type; returns the answer whatever its status.
pub async fn call_raw(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: &'static str,
) -> Answer {
    let req = request(client, method, path)
        .header("content-type", content_type)
        .body(body);
    answer(req).await
}

/// Posts a job submission form; returns the answer whatever its status.
pub async fn post_form(client: &Client, form: Form) -> Answer {
    answer(request(client, Method::POST, idlefarm_protocol::routes::JOBS).multipart(form)).await
}

/// Submits `scene` as job `name`, as `client`.
pub async fn submit(client: &Client, name: &str, scene: &Scene) -> JobInfo {
    let answer = post_form(client, scene.form(name)).await;
    assert_eq!(answer.status, 201, "submission of {name}: {answer:?}");
    serde_json::from_str::<SubmitResponse>(&answer.body)
        .expect("a submission answer")
        .job
}

/// Starts an always-available in-process agent; returns its work directory.
pub fn add_agent(farm: &mut Farm, name: &str) -> PathBuf {
    farm.add_agent_with(name, Arc::new(AlwaysAvailable), |_| {})
}

/// Enrols an agent named `name` by hand, without renderers (it never runs); returns its id
/// and secret.
pub async fn enrol(farm: &Farm, name: &str) -> RegisterResponse {
    let req = RegisterRequest {
        token: farm.token.clone(),
        name: name.to_owned(),
        renderers: vec![],
    };
    let res = reqwest::Client::new()
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_REGISTER))
        .json(&req)
        .send()
        .await
        .expect("the coordinator answers");
    assert_eq!(res.status(), 200, "enrolment of {name}");
    res.json().await.expect("credentials")
}

/// Pids of the renderers of the agent working in `work_dir`: every process whose command line
/// mentions it (only renderers are given paths inside it).
pub fn renderers(work_dir: &Path) -> Vec<u32> {
    let needle = work_dir.display().to_string();
    let entries = std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten();
    entries
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// The lease folders the agent in `work_dir` still keeps.
pub fn lease_dirs(work_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(work_dir.join("leases")) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls `probe` every 20 ms until it answers `Ok`; panics with its last `Err` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < limit,
                "{what}: not so after {limit:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `check` every 100 ms for `how_long`, and once more at the end.
pub async fn throughout(how_long: Duration, mut check: impl AsyncFnMut()) {
    let start = Instant::now();
    while start.elapsed() < how_long {
        check().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await;
}

/// Waits until the agent in `work_dir` renders `job` and has delivered at least one frame.
pub async fn wait_rendering(farm: &Farm, job: i64, work_dir: &Path) -> JobInfo {
    eventually("a renderer runs and frames arrive", JOB_LIMIT, || async {
        let j = farm.client.job(job).await.expect("the job is listed");
        assert!(
            !j.state.is_final(),
            "job {job} ended before it could be watched: {j:?}"
        );
        let procs = renderers(work_dir);
        if j.frames.done >= 1 && !procs.is_empty() {
            Ok(j)
        } else {
            Err(format!("{:?}, renderers {procs:?}", j.frames))
        }
    })
    .await
}

/// Asserts no frame of `job` and no agent has a failure counted.
pub async fn assert_no_failures(farm: &Farm, job: i64) {
    let frames = farm.client.frames(job).await.unwrap();
    let failed: Vec<_> = frames.iter().filter(|f| f.failures != 0).collect();
    assert!(failed.is_empty(), "frames with failures: {failed:?}");
    for a in farm.client.agents().await.unwrap() {
        assert_eq!(a.failures, 0, "agent {} has failures: {a:?}", a.name);
    }
}

/// Sum of the frames every agent delivered.
pub async fn frames_delivered(farm: &Farm) -> i64 {
    let agents = farm.client.agents().await.unwrap();
    agents.iter().map(|a| a.frames_done).sum()
}
