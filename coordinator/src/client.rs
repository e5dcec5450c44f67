//! A typed HTTP client for the coordinator's job API, used by the CLI (and by tests).

use std::path::Path;

use anyhow::{Context, bail};
use idlefarm_protocol::{API_PREFIX, AgentInfo, ErrorBody, FrameInfo, JobInfo, SubmitResponse};
use reqwest::multipart::{Form, Part};

/// Settings a submitter may give with a scene; `None` means "from the file".
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// POV-Ray `.ini` beside a `.pov`.
    pub ini: Option<std::path::PathBuf>,
    /// Frame range, `A-B[:STEP]`.
    pub frames: Option<String>,
    /// Fixed chunk size, or `auto`.
    pub chunk: Option<String>,
    /// Blender scene name.
    pub scene: Option<String>,
    /// Main file inside a zip.
    pub main: Option<String>,
    /// Job name.
    pub name: Option<String>,
    /// Video frame rate.
    pub fps: Option<String>,
    /// Output format.
    pub format: Option<String>,
}

/// Talks to one coordinator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the coordinator at `base` (e.g. `http://127.0.0.1:7870`).
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The coordinator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Full URL of an API path (under `/api/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base)
    }

    async fn check(
        &self,
        res: reqwest::Result<reqwest::Response>,
    ) -> anyhow::Result<reqwest::Response> {
        let res = res.with_context(|| format!("cannot reach the coordinator at {}", self.base))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        bail!("{message} ({status})")
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let res = self
            .check(self.http.get(self.url(path)).send().await)
            .await?;
        Ok(res.json().await?)
    }

    /// Submits a scene file with options.
    pub async fn submit(&self, file: &Path, opts: &SubmitOptions) -> anyhow::Result<JobInfo> {
        use idlefarm_protocol::submit_fields as f;
        let mut form = Form::new().part(f::FILE, file_part(file).await?);
        if let Some(ini) = &opts.ini {
            form = form.part(f::INI, file_part(ini).await?);
        }
        let texts = [
            (f::FRAMES, &opts.frames),
            (f::CHUNK, &opts.chunk),
            (f::SCENE, &opts.scene),
            (f::MAIN, &opts.main),
            (f::NAME, &opts.name),
            (f::FPS, &opts.fps),
            (f::FORMAT, &opts.format),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                form = form.text(name, v.clone());
            }
        }
        let res = self
            .http
            .post(self.url("/jobs"))
            .multipart(form)
            .send()
            .await;
        let res = self.check(res).await?;
        Ok(res.json::<SubmitResponse>().await?.job)
    }

    /// One job.
    pub async fn job(&self, id: i64) -> anyhow::Result<JobInfo> {
        self.get_json(&format!("/jobs/{id}")).await
    }

    /// All jobs.
    pub async fn jobs(&self) -> anyhow::Result<Vec<JobInfo>> {
        self.get_json("/jobs").await
    }

    /// A job's frames.
    pub async fn frames(&self, id: i64) -> anyhow::Result<Vec<FrameInfo>> {
        self.get_json(&format!("/jobs/{id}/frames")).await
    }

    /// All agents.
    pub async fn agents(&self) -> anyhow::Result<Vec<AgentInfo>> {
        self.get_json("/agents").await
    }

    /// Downloads an API path to a file (atomically: temp name, then rename).
    pub async fn download(&self, path: &str, dest: &Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut res = self
            .check(self.http.get(self.url(path)).send().await)
            .await?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new().prefix(".part-").tempfile_in(dir)?;
        let mut out = tokio::fs::File::from_std(tmp.reopen()?);
        let mut n = 0u64;
        while let Some(chunk) = res.chunk().await? {
            out.write_all(&chunk).await?;
            n += chunk.len() as u64;
        }
        out.flush().await?;
        out.sync_all().await?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(n)
    }
}

async fn file_part(path: &Path) -> anyhow::Result<Part> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} is not a file", path.display()))?;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().await?.len();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    Ok(Part::stream_with_length(body, len).file_name(name))
}
