//! The agent's side of the coordinator's HTTP API: enrolment, the credentials file, and the
//! authenticated calls (heartbeat, lease, blob download, frame upload, lease end).
//!
//! Credentials live in `work_dir/credentials.json` (mode 0600, written atomically). When the
//! coordinator answers 401 to them, the agent enrols again once with its token and retries.
//!
//! Over HTTPS the coordinator's certificate is pinned ([`idlefarm_tls::Pin`]): the fingerprint
//! given with `--fingerprint`, or else the one seen when the agent enrolled (trust on first
//! use), kept in the credentials. Another certificate is refused before any request is sent.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use idlefarm_protocol::routes;
use idlefarm_protocol::{
    AUTHORIZATION, ErrorBody, HeartbeatRequest, HeartbeatResponse, ImageFormat, LeaseEnd,
    LeaseRequest, LeaseResponse, RegisterRequest, RegisterResponse, RendererInfo,
};
use idlefarm_tls::{Fingerprint, Pin};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Name of the credentials file inside the work directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// Time limit of small JSON requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of one frame upload.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// What `credentials.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The coordinator these credentials belong to (base URL).
    pub coordinator: String,
    /// The agent's id.
    pub agent_id: i64,
    /// The agent's secret.
    pub secret: String,
    /// The pinned certificate of an HTTPS coordinator (`AB:CD:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A failed call to the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator could not be reached, or the connection broke.
    #[error("cannot reach the coordinator: {}", network_cause(.0))]
    Network(#[from] reqwest::Error),
    /// The coordinator rejects both the saved credentials and the enrolment token.
    #[error(
        "the coordinator rejected the enrolment token (revoked or mistyped?): ask the admin for a new one"
    )]
    Unauthorized,
    /// The coordinator answered with an error status.
    #[error("the coordinator answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// The `error` of its [`ErrorBody`], or the raw body.
        message: String,
    },
    /// An admin turned this PC's enrolment request down.
    #[error(
        "an admin turned this PC's enrolment request down; start it with --token, or ask the admin"
    )]
    Rejected,
    /// An HTTPS coordinator presented another certificate than the pinned one.
    #[error("{}", idlefarm_tls::mismatch_message(*.presented, *.pinned))]
    CertificateChanged {
        /// What it presented.
        presented: Fingerprint,
        /// What is pinned.
        pinned: Fingerprint,
    },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What failed.
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether trying again later may help (network trouble, coordinator overloaded or down).
    pub fn is_transient(&self) -> bool {
        match self {
            // Refused every time, but the real coordinator may come back.
            ClientError::Network(_) | ClientError::CertificateChanged { .. } => true,
            ClientError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            ClientError::Unauthorized | ClientError::Rejected | ClientError::Io { .. } => false,
        }
    }

    /// The HTTP status, when the coordinator answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What went wrong on the network, in a person's words: reqwest's own message only names the
/// URL ("error sending request for url …"); the end of its chain says why ("Connection refused").
fn network_cause(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Why the coordinator at `base` cannot be used and when the agent tries again, for the log and
/// for `idlefarm-agent status`.
pub fn trouble_reaching(base: &str, err: &ClientError, retry: Duration) -> String {
    match err {
        ClientError::Network(err) => format!(
            "cannot reach the coordinator at {base} ({}); next try in {retry:?}",
            network_cause(err)
        ),
        other => format!("the coordinator at {base} fails ({other}); next try in {retry:?}"),
    }
}

/// Result of a frame upload that the agent does not treat as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The coordinator stored the frame.
    Stored,
    /// 409: the lease is gone or the frame is already done; nothing to do.
    Conflict,
}

/// An enrolled agent's connection to its coordinator.
#[derive(Debug)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    token: String,
    pub(crate) name: String,
    pub(crate) renderers: Vec<RendererInfo>,
    pub(crate) credentials_path: PathBuf,
    credentials: RwLock<Arc<Credentials>>,
    // Serialises re-enrolment so concurrent 401s enrol once.
    enrol: tokio::sync::Mutex<()>,
    /// The certificate pin, over HTTPS.
    pin: Option<Arc<Pin>>,
    /// Where waiting for an admin's approval is said.
    pub(crate) status: crate::status::StatusHub,
}

/// The base URL without a trailing slash, as stored in the credentials file.
pub fn normalize_base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

impl Client {
    /// Loads the saved credentials for `coordinator`, or enrols with `token` and saves them.
    /// Over HTTPS, `fingerprint` (when given) is the certificate to pin; otherwise the one the
    /// credentials pinned, or the one seen at enrolment.
    pub async fn connect(
        coordinator: &str,
        token: &str,
        name: &str,
        renderers: Vec<RendererInfo>,
        work_dir: &Path,
        fingerprint: Option<Fingerprint>,
        status: crate::status::StatusHub,
    ) -> Result<Client, ClientError> {
        let base = normalize_base(coordinator);
        let credentials_path = work_dir.join(CREDENTIALS_FILE);
        let mut saved = load_credentials(&credentials_path).filter(|c| c.coordinator == base);
        let saved_pin = (saved.as_ref())
            .and_then(|c| c.fingerprint.as_deref())
            .and_then(|f| f.parse::<Fingerprint>().ok());
        let pin = base
            .starts_with("https://")
            .then(|| Pin::new(fingerprint.or(saved_pin)));
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("idlefarm-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pin) = &pin {
            http = http.use_preconfigured_tls(pin.client_config());
        }
        let http = http.build()?;
        // A fingerprint given now replaces the pinned one (the certificate was renewed).
        if let (Some(credentials), Some(given)) =
            (&mut saved, fingerprint.filter(|_| pin.is_some()))
            && saved_pin != Some(given)
        {
            credentials.fingerprint = Some(given.to_string());
            save_credentials(&credentials_path, credentials).map_err(|source| ClientError::Io {
                context: format!("cannot save {}", credentials_path.display()),
                source,
            })?;
            tracing::info!("now pinning the coordinator's certificate SHA256 {given}");
        }
        let client = Client {
            http,
            base,
            token: token.to_owned(),
            name: name.to_owned(),
            renderers,
            credentials_path,
            credentials: RwLock::new(Arc::new(Credentials {
                coordinator: String::new(),
                agent_id: 0,
                secret: String::new(),
                fingerprint: None,
            })),
            enrol: tokio::sync::Mutex::new(()),
            pin,
            status,
        };
        match saved {
            Some(credentials) => {
                tracing::info!(agent_id = credentials.agent_id, "using saved credentials");
                *client.credentials.write().unwrap() = Arc::new(credentials);
            }
            None => client.enrol().await?,
        }
        Ok(client)
    }

    /// The coordinator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A failed request: a refused certificate when the pin says so, network trouble otherwise.
    pub(crate) fn network(&self, err: reqwest::Error) -> ClientError {
        if let Some(pin) = &self.pin
            && let (Some(presented), Some(pinned)) = (pin.presented(), pin.expected())
            && presented != pinned
        {
            return ClientError::CertificateChanged { presented, pinned };
        }
        ClientError::Network(err)
    }

    fn current(&self) -> Arc<Credentials> {
        self.credentials.read().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Enrols (with the token, or without one by asking an admin) and saves the credentials.
    async fn enrol(&self) -> Result<(), ClientError> {
        let registered = match self.token.is_empty() {
            true => self.enrol_by_approval().await?,
            false => self.enrol_with_token().await?,
        };
        let fingerprint = self.pin.as_ref().and_then(|pin| {
            if pin.expected().is_none()
                && let Some(seen) = pin.presented()
            {
                tracing::info!(
                    "trusting the coordinator's certificate SHA256 {seen} from now on (first \
                     use): check it is the one `idlefarm serve` printed"
                );
                pin.pin(seen);
            }
            pin.expected().map(|f| f.to_string())
        });
        let credentials = Credentials {
            coordinator: self.base.clone(),
            agent_id: registered.agent_id,
            secret: registered.secret,
            fingerprint,
        };
        save_credentials(&self.credentials_path, &credentials).map_err(|source| {
            ClientError::Io {
                context: format!("cannot save {}", self.credentials_path.display()),
                source,
            }
        })?;
        tracing::info!(
            agent_id = credentials.agent_id,
            "enrolled with the coordinator"
        );
        *self.credentials.write().unwrap() = Arc::new(credentials);
        Ok(())
    }

    /// Trades the enrolment token for a new id and secret.
    async fn enrol_with_token(&self) -> Result<RegisterResponse, ClientError> {
        let request = RegisterRequest {
            token: self.token.clone(),
            name: self.name.clone(),
            renderers: self.renderers.clone(),
        };
        let response = self
            .http
            .post(self.url(routes::AGENT_REGISTER))
            .timeout(REQUEST_TIMEOUT)
            .json(&request)
            .send()
            .await
            .map_err(|e| self.network(e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        Ok(check(response).await?.json().await?)
    }

    /// Sends an authenticated request built by `build`; on 401 enrols again once and retries.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let used = self.current();
        let response = build(&self.http)
            .header(AUTHORIZATION, bearer(&used))
            .send()
            .await
            .map_err(|e| self.network(e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check(response).await;
        }
        {
            let _guard = self.enrol.lock().await;
            if self.current() == used {
                tracing::warn!("the coordinator rejected our credentials: enrolling again");
                self.enrol().await?;
            }
        }
        let response = build(&self.http)
            .header(AUTHORIZATION, bearer(&self.current()))
            .send()
            .await
            .map_err(|e| self.network(e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        check(response).await
    }

    /// `POST /agent/heartbeat`.
    pub async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        let url = self.url(routes::AGENT_HEARTBEAT);
        let response = self
            .send(|http| http.post(&url).timeout(REQUEST_TIMEOUT).json(request))
            .await?;
        Ok(response.json().await?)
    }

    /// `POST /agent/lease`.
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        let url = self.url(routes::AGENT_LEASE);
        let response = self
            .send(|http| http.post(&url).timeout(REQUEST_TIMEOUT).json(request))
            .await?;
        Ok(response.json().await?)
    }

    /// The size of a job input in bytes, from a `HEAD` request, when the coordinator says.
    pub async fn blob_size(&self, hash: &str) -> Result<Option<u64>, ClientError> {
        let url = self.url(&routes::agent_blob(hash));
        let response = self.send(|http| http.head(&url)).await?;
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()))
    }

    /// Streams the blob `hash` into `dest`; returns the blake3 hex of what was received.
    pub async fn download_blob(
        &self,
        hash: &str,
        dest: &mut tokio::fs::File,
    ) -> Result<String, ClientError> {
        let url = self.url(&routes::agent_blob(hash));
        let response = self.send(|http| http.get(&url)).await?;
        let mut hasher = blake3::Hasher::new();
        let mut body = response.bytes_stream();
        let io_error = |source| ClientError::Io {
            context: "cannot write the downloaded input".to_owned(),
            source,
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            dest.write_all(&chunk).await.map_err(io_error)?;
        }
        dest.flush().await.map_err(io_error)?;
        dest.sync_all().await.map_err(io_error)?;
        Ok(hasher.finalize().to_hex().to_string())
    }

    /// `PUT` one frame's image.
    pub async fn upload_frame(
        &self,
        lease_id: i64,
        frame: i64,
        format: ImageFormat,
        image: Vec<u8>,
        renderer_error: Option<&str>,
    ) -> Result<Upload, ClientError> {
        let url = self.url(&routes::agent_frame(lease_id, frame, format));
        let content_type = match format {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        };
        let result = self
            .send(|http| {
                let req = http
                    .put(&url)
                    .timeout(UPLOAD_TIMEOUT)
                    .header(reqwest::header::CONTENT_TYPE, content_type);
                let req = match renderer_error {
                    Some(line) => req.header(idlefarm_protocol::RENDERER_ERROR_HEADER, line),
                    None => req,
                };
                req.body(image.clone())
            })
            .await;
        match result {
            Ok(_) => Ok(Upload::Stored),
            Err(err) if err.status() == Some(StatusCode::CONFLICT) => Ok(Upload::Conflict),
            Err(err) => Err(err),
        }
    }

    /// `POST` the end of a lease.
    pub async fn end_lease(&self, lease_id: i64, end: &LeaseEnd) -> Result<(), ClientError> {
        let url = self.url(&routes::agent_lease_end(lease_id));
        self.send(|http| http.post(&url).timeout(REQUEST_TIMEOUT).json(end))
            .await?;
        Ok(())
    }
}

fn bearer(credentials: &Credentials) -> String {
    format!("Bearer {}.{}", credentials.agent_id, credentials.secret)
}

/// Turns an error status into [`ClientError::Status`] with the coordinator's message.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ErrorBody>(&body) {
        Ok(error) => error.error,
        Err(_) if body.trim().is_empty() => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
        Err(_) => body.chars().take(500).collect(),
    };
    Err(ClientError::Status { status, message })
}

/// The saved credentials, if the file exists and parses.
pub fn load_credentials(path: &Path) -> Option<Credentials> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!("cannot read {}: {err}; enrolling again", path.display());
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(credentials) => Some(credentials),
        Err(err) => {
            tracing::warn!("{} is damaged ({err}); enrolling again", path.display());
            None
        }
    }
}

/// Writes the credentials file atomically, readable only by us.
pub fn save_credentials(path: &Path, credentials: &Credentials) -> std::io::Result<()> {
    write_private(path, &serde_json::to_vec_pretty(credentials)?)
}

/// Writes a file that holds a secret atomically (a 0600 temp file beside it, fsync, rename,
/// fsync of the folder), so it is never readable by others nor seen half-written.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        assert_eq!(load_credentials(&path), None);
        let credentials = Credentials {
            coordinator: "http://127.0.0.1:7870".into(),
            agent_id: 4,
            secret: "s3cret".into(),
            fingerprint: Some(Fingerprint::of(b"cert").to_string()),
        };
        save_credentials(&path, &credentials).unwrap();
        assert_eq!(load_credentials(&path), Some(credentials));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load_credentials(&path), None);
    }

    #[test]
    fn base_urls_compare_without_trailing_slash() {
        assert_eq!(normalize_base("http://h:1/ "), "http://h:1");
        assert_eq!(normalize_base("http://h:1"), "http://h:1");
    }
}
