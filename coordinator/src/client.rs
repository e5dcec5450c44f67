//! A typed HTTP client for the coordinator's API, used by the CLI (and by tests). It sends an
//! API token (`Authorization: Bearer …`) when it has one: [`Client::for_cli`] loads the one
//! `idlefarm login` saved for the server.

use std::path::Path;

use std::sync::Arc;

use anyhow::{Context, bail};
use idlefarm_protocol::accounts::{self as wire, API_TOKEN_ENV};
use idlefarm_protocol::{API_PREFIX, AgentInfo, ErrorBody, FrameInfo, JobInfo, SubmitResponse};
use idlefarm_tls::{Fingerprint, Pin};
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use crate::accounts::credentials::{self, Credentials};

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
    /// Render a zip's scene files as a sequence, one file per frame.
    pub sequence: bool,
    /// The `[Section]` of the POV-Ray `.ini` to read.
    pub ini_section: Option<String>,
    /// Job name.
    pub name: Option<String>,
    /// Video frame rate.
    pub fps: Option<String>,
    /// Output format.
    pub format: Option<String>,
    /// Priority (higher runs first).
    pub priority: Option<String>,
    /// Tags an agent must have, comma-separated.
    pub tags: Option<String>,
}

/// Talks to one coordinator.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client for the coordinator at `base` (e.g. `http://127.0.0.1:7870`).
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// A client for an HTTPS coordinator that accepts only the certificate `pin` expects (or,
    /// while it expects none, the first one it sees: see [`Pin`]).
    pub fn pinned(base: &str, pin: &Arc<Pin>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(pin.client_config())
            .build()
            .context("cannot set up HTTPS")?;
        Ok(Client {
            http,
            ..Client::new(base)
        })
    }

    /// The same client, sending `token` as `Authorization: Bearer <token>` (or nothing).
    pub fn with_token(self, token: Option<String>) -> Client {
        Client { token, ..self }
    }

    /// A client for the CLI: with the API token from `IDLEFARM_API_TOKEN`, else the one saved
    /// by `idlefarm login` for this server, else none.
    /// Over HTTPS, the certificate `idlefarm login` pinned for the server is required.
    pub fn for_cli(base: &str) -> anyhow::Result<Client> {
        let saved = match credentials::default_path() {
            Ok(path) => Credentials::load(&path)?.get(base).cloned(),
            Err(_) => None,
        };
        let token = match std::env::var(API_TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
            _ => saved.as_ref().map(|l| l.token.clone()),
        };
        let pinned = (saved.as_ref())
            .and_then(|l| l.fingerprint.as_deref())
            .map(str::parse::<Fingerprint>)
            .transpose()?;
        let client = match pinned {
            Some(fingerprint) => Client::pinned(base, &Pin::new(Some(fingerprint)))?,
            None => Client::new(base),
        };
        Ok(client.with_token(token))
    }

    /// Whether it sends an API token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The API token it sends, if any (for requests made by hand, e.g. an event stream).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to an API path, with the token if there is one.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The coordinator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Full URL of an API path: a route from `idlefarm_protocol::routes` (which starts with
    /// `/api/v1`), or a path relative to `/api/v1`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with(API_PREFIX) {
            format!("{}{path}", self.base)
        } else {
            format!("{}{API_PREFIX}{path}", self.base)
        }
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
            .check(self.request(Method::GET, path).send().await)
            .await?;
        Ok(res.json().await?)
    }

    async fn send_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let res = self
            .check(self.request(method, path).json(body).send().await)
            .await?;
        Ok(res.json().await?)
    }

    /// `POST`s a JSON body to an API path, ignoring the answer's body.
    pub async fn post_json<B: serde::Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        self.send_json::<_, serde::de::IgnoredAny>(Method::POST, path, body)
            .await
            .map(|_| ())
    }

    /// `PATCH`es a JSON body to an API path, ignoring the answer's body.
    pub async fn patch_json<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<()> {
        self.send_json::<_, serde::de::IgnoredAny>(Method::PATCH, path, body)
            .await
            .map(|_| ())
    }

    /// `DELETE`s an API path.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.check(self.request(Method::DELETE, path).send().await)
            .await?;
        Ok(())
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
            (f::INI_SECTION, &opts.ini_section),
            (f::NAME, &opts.name),
            (f::FPS, &opts.fps),
            (f::FORMAT, &opts.format),
            (f::PRIORITY, &opts.priority),
            (f::TAGS, &opts.tags),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                form = form.text(name, v.clone());
            }
        }
        if opts.sequence {
            form = form.text(f::SEQUENCE, "true");
        }
        let res = self
            .request(Method::POST, "/jobs")
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

    /// A job's failed leases, with the renderer's log tails.
    pub async fn failures(&self, id: i64) -> anyhow::Result<Vec<idlefarm_protocol::FailureInfo>> {
        self.get_json(&format!("/jobs/{id}/failures")).await
    }

    /// All agents.
    pub async fn agents(&self) -> anyhow::Result<Vec<AgentInfo>> {
        self.get_json("/agents").await
    }

    /// The enrolment requests waiting for an admin (admins).
    pub async fn enrolment_requests(
        &self,
    ) -> anyhow::Result<Vec<idlefarm_protocol::EnrolmentRequestInfo>> {
        self.get_json(idlefarm_protocol::routes::ENROLMENT_REQUESTS)
            .await
    }

    /// Downloads an API path to a file (atomically: temp name, then rename).
    pub async fn download(&self, path: &str, dest: &Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut res = self
            .check(self.request(Method::GET, path).send().await)
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

/// Account calls: logging in and out, users, enrolment tokens, the audit log.
impl Client {
    /// Trades a name and password for an API token (what `idlefarm login` saves).
    pub async fn create_api_token(
        &self,
        name: &str,
        password: &str,
        label: &str,
    ) -> anyhow::Result<wire::TokenResponse> {
        let req = wire::TokenRequest {
            name: name.to_owned(),
            password: password.to_owned(),
            label: label.to_owned(),
        };
        self.send_json(Method::POST, wire::TOKENS_PATH, &req).await
    }

    /// Logs in with a name and password: a client that sends a new API token labelled `label`.
    pub async fn login(self, name: &str, password: &str, label: &str) -> anyhow::Result<Client> {
        let token = self.create_api_token(name, password, label).await?.token;
        Ok(self.with_token(Some(token)))
    }

    /// Revokes the API token this client sends.
    pub async fn revoke_api_token(&self) -> anyhow::Result<()> {
        self.delete(wire::CURRENT_TOKEN_PATH).await
    }

    /// Who this client is logged in as.
    pub async fn whoami(&self) -> anyhow::Result<wire::SessionInfo> {
        self.get_json(wire::SESSION_PATH).await
    }

    /// Every user (admins only).
    pub async fn users(&self) -> anyhow::Result<Vec<wire::UserInfo>> {
        self.get_json(wire::USERS_PATH).await
    }

    /// Adds a user; the answer holds the generated password when none was given.
    pub async fn add_user(&self, user: &wire::NewUser) -> anyhow::Result<wire::NewUserResponse> {
        self.send_json(Method::POST, wire::USERS_PATH, user).await
    }

    /// Removes a user.
    pub async fn remove_user(&self, name: &str) -> anyhow::Result<()> {
        self.delete(&wire::user_path(name)).await
    }

    /// Makes a user an admin or a submitter.
    pub async fn set_role(&self, name: &str, role: wire::Role) -> anyhow::Result<wire::UserInfo> {
        let req = wire::RoleChange { role };
        self.send_json(Method::PATCH, &wire::user_path(name), &req)
            .await
    }

    /// Sets a user's password; returns the generated one when none was given.
    pub async fn set_password(
        &self,
        name: &str,
        password: Option<String>,
    ) -> anyhow::Result<Option<String>> {
        let res: wire::PasswordResponse = self
            .send_json(
                Method::PUT,
                &wire::user_password_path(name),
                &wire::PasswordChange { password },
            )
            .await?;
        Ok(res.password)
    }

    /// Every enrolment token, newest first.
    pub async fn enrolment_tokens(&self) -> anyhow::Result<Vec<wire::EnrolmentTokenInfo>> {
        self.get_json(wire::ENROLMENT_TOKENS_PATH).await
    }

    /// Makes an enrolment token, expiring after `expires_secs` if given.
    pub async fn create_enrolment_token(
        &self,
        expires_secs: Option<u64>,
    ) -> anyhow::Result<wire::CreatedEnrolmentToken> {
        let req = wire::NewEnrolmentToken { expires_secs };
        self.send_json(Method::POST, wire::ENROLMENT_TOKENS_PATH, &req)
            .await
    }

    /// Revokes an enrolment token.
    pub async fn revoke_enrolment_token(&self, id: i64) -> anyhow::Result<()> {
        self.delete(&wire::enrolment_token_path(id)).await
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&self, limit: u32) -> anyhow::Result<Vec<wire::AuditEntry>> {
        self.get_json(&wire::audit_path(limit)).await
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
