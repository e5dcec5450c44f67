//! Enrolment without a token: the agent asks the coordinator to let this PC join, with a key it
//! makes up, and waits until an admin approves the request on the dashboard (or with
//! `idlefarm agent approve`); then it collects its credentials with the key. The request and
//! its key are kept in the work dir (mode 0600), so an agent restarted meanwhile goes on
//! waiting for the same request rather than asking again.

use std::path::Path;
use std::time::Duration;

use idlefarm_protocol::{
    EnrolmentClaim, EnrolmentRequest, EnrolmentRequested, RegisterResponse, routes,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientError, check};

/// File in the work dir that holds a request waiting for approval.
pub const REQUEST_FILE: &str = "enrolment-request.json";

/// How often the agent asks whether it was approved.
const POLL: Duration = Duration::from_secs(3);

/// A request this PC made and is waiting on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    coordinator: String,
    id: i64,
    key: String,
}

impl Client {
    /// Asks to join and waits for an admin's decision; the credentials once approved.
    pub(crate) async fn enrol_by_approval(&self) -> Result<RegisterResponse, ClientError> {
        let path = self.credentials_path.with_file_name(REQUEST_FILE);
        let mut pending = load(&path).filter(|p| p.coordinator == self.base);
        loop {
            let request = match pending.take() {
                Some(request) => request,
                None => self.ask(&path).await?,
            };
            let claim = EnrolmentClaim {
                key: request.key.clone(),
            };
            let url =
                self.url(&routes::ENROLMENT_REQUEST_CLAIM.replace("{id}", &request.id.to_string()));
            let response =
                (self.http.post(url).json(&claim).send().await).map_err(|e| self.network(e))?;
            match response.status() {
                StatusCode::OK => {
                    let _ = std::fs::remove_file(&path);
                    self.status.set_coordinator_problem(None);
                    return Ok(response.json().await?);
                }
                StatusCode::ACCEPTED => {
                    self.status.set_coordinator_problem(Some(format!(
                        "waiting for an admin to let this PC join (enrolment request #{} on \
                         the dashboard's Farm page, or `idlefarm agent approve {}`)",
                        request.id, request.id
                    )));
                    tokio::time::sleep(POLL).await;
                    pending = Some(request);
                }
                StatusCode::FORBIDDEN => {
                    let _ = std::fs::remove_file(&path);
                    return Err(ClientError::Rejected);
                }
                StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => {
                    tracing::info!(
                        request = request.id,
                        "the enrolment request is gone (expired?): asking again"
                    );
                    let _ = std::fs::remove_file(&path);
                }
                _ => {
                    check(response).await?;
                }
            }
        }
    }

    /// Sends a new request and keeps it in `path`.
    async fn ask(&self, path: &Path) -> Result<Pending, ClientError> {
        let key = new_key().map_err(|source| ClientError::Io {
            context: "cannot make a key for the enrolment request".into(),
            source,
        })?;
        let request = EnrolmentRequest {
            name: self.name.clone(),
            renderers: self.renderers.clone(),
            key: key.clone(),
        };
        let response = (self.http.post(self.url(routes::ENROLMENT_REQUESTS)))
            .json(&request)
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let made: EnrolmentRequested = check(response).await?.json().await?;
        let pending = Pending {
            coordinator: self.base.clone(),
            id: made.id,
            key,
        };
        save(path, &pending).map_err(|source| ClientError::Io {
            context: format!("cannot save {}", path.display()),
            source,
        })?;
        tracing::info!(
            request = made.id,
            "no enrolment token: asked the coordinator to let this PC join; an admin approves \
             request #{} on the dashboard's Farm page (or `idlefarm agent approve {}`)",
            made.id,
            made.id
        );
        Ok(pending)
    }
}

/// 32 random bytes from the kernel, as hex.
fn new_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    // SAFETY: the buffer is valid for its length; getrandom writes at most that many bytes.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn load(path: &Path) -> Option<Pending> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn save(path: &Path, pending: &Pending) -> std::io::Result<()> {
    crate::client::write_private(path, &serde_json::to_vec(pending)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_hex_and_requests_round_trip() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REQUEST_FILE);
        let p = Pending {
            coordinator: "http://c:1".into(),
            id: 7,
            key: a,
        };
        save(&path, &p).unwrap();
        assert_eq!(load(&path), Some(p));
        std::fs::write(&path, "{broken").unwrap();
        assert_eq!(load(&path), None);
    }
}
