//! Who is asking: the [`Caller`] extractor authenticates a person from an API token
//! (`Authorization: Bearer …`, the CLI) or a session cookie (the web page), and enforces CSRF
//! protection on cookie-authenticated requests that change state. Also the coordinator's
//! [`audit`](Coordinator::audit) entry point for every action worth recording.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use idlefarm_protocol::AUTHORIZATION;
use idlefarm_protocol::accounts::{CSRF_HEADER, Role, SESSION_COOKIE};

use super::Coordinator;
use crate::accounts::{self, AccountError, KeepLogin, secret};
use crate::error::ApiError;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// A browser session cookie (session id).
    Session(i64),
    /// A bearer API token (token id).
    Token(i64),
}

/// An authenticated person.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their user id (jobs record it as their owner).
    pub user_id: i64,
    /// Their login name (the audit log's actor).
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The credential this request came with.
    pub login: Login,
    /// The session's CSRF token for a browser session (pages hand it to their scripts);
    /// `None` for an API token, which needs none.
    pub csrf_token: Option<String>,
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::forbidden(message)
}

impl Caller {
    /// Whether they may do everything.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless they are an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_admin_to("do this")
    }

    /// 403 "only an admin may `what`" unless they are an admin.
    pub fn require_admin_to(&self, what: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(forbidden(format!(
            "only an admin may {what} (you are logged in as `{}`, a {})",
            self.name,
            self.role.as_str()
        )))
    }

    /// Whether they may see (and control) something owned by `owner`: an admin sees everything,
    /// a submitter only their own; things without an owner are for admins.
    pub fn may_see(&self, owner: Option<i64>) -> bool {
        self.is_admin() || owner == Some(self.user_id)
    }

    /// The credential to keep when they change their own password.
    pub(crate) fn keep_login(&self) -> KeepLogin {
        match self.login {
            Login::Session(id) => KeepLogin {
                session: Some(id),
                token: None,
            },
            Login::Token(id) => KeepLogin {
                session: None,
                token: Some(id),
            },
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(m) => ApiError::bad_request(m),
            AccountError::Unauthorized(m) => ApiError::unauthorized(m),
            AccountError::NotFound(m) => ApiError::not_found(m),
            AccountError::Conflict(m) => ApiError::conflict(m),
            AccountError::Gone(m) => ApiError::new(StatusCode::GONE, m),
            AccountError::Store(e) => e.into(),
            e @ (AccountError::Credentials(_) | AccountError::Internal(_)) => ApiError::internal(e),
        }
    }
}

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value.trim())
        })
}

/// Methods that must not change state, so need no CSRF token.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<Arc<Coordinator>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        coord: &Arc<Coordinator>,
    ) -> Result<Self, ApiError> {
        // A bearer token wins over a cookie: the CLI never has one, and a browser never sends
        // an Authorization header by itself, so a bearer request cannot be a forged one.
        if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "malformed Authorization header: expected `Bearer <token>`; log in with `idlefarm login`",
                    )
                })?;
            let row = accounts::check_api_token(&coord.store, token).await?;
            return Ok(Caller {
                user_id: row.user.id,
                name: row.user.name,
                role: row.user.role,
                login: Login::Token(row.id),
                csrf_token: None,
            });
        }
        let cookie = session_cookie(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "not logged in; log in with `idlefarm login` (or on the web page)",
            )
        })?;
        let session = accounts::check_session(&coord.store, cookie).await?;
        if !is_safe(&parts.method) {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !secret::csrf_matches(&session.csrf_token, given) {
                return Err(forbidden(
                    "missing or wrong CSRF token: send the session's csrf_token in the X-CSRF-Token header",
                ));
            }
        }
        Ok(Caller {
            user_id: session.user.id,
            name: session.user.name,
            role: session.user.role,
            login: Login::Session(session.id),
            csrf_token: Some(session.csrf_token),
        })
    }
}

/// A caller when the request is authenticated, `None` when it is not (no or stale credentials),
/// for routes that answer both. A missing CSRF token is still refused.
pub struct OptionalCaller(pub Option<Caller>);

impl FromRequestParts<Arc<Coordinator>> for OptionalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        coord: &Arc<Coordinator>,
    ) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, coord).await {
            Ok(c) => Ok(OptionalCaller(Some(c))),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Ok(OptionalCaller(None)),
            Err(e) => Err(e),
        }
    }
}

impl Coordinator {
    /// Records an action in the audit log: who (a user name), what (e.g. `job.cancel`), on
    /// what (e.g. `job 7`), and anything more worth knowing.
    // Account actions audit inside `crate::accounts` (shared with the CLI's `--data` mode); the
    // job and agent handlers call this.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), ApiError> {
        Ok(accounts::audit(&self.store, actor, action, target, detail).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(session_cookie(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; idlefarm_session=7.abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("7.abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("idlefarm_session_old=x; xidlefarm_session=y"),
        );
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn only_safe_methods_skip_csrf() {
        assert!(is_safe(&Method::GET));
        assert!(is_safe(&Method::HEAD));
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(!is_safe(&m), "{m}");
        }
    }

    #[test]
    fn submitters_see_only_their_own() {
        let caller = |role| Caller {
            user_id: 5,
            name: "ada".into(),
            role,
            login: Login::Token(1),
            csrf_token: None,
        };
        let sub = caller(Role::Submitter);
        assert!(sub.may_see(Some(5)));
        assert!(!sub.may_see(Some(6)));
        assert!(!sub.may_see(None));
        let err = sub.require_admin_to("list users").unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.starts_with("only an admin may list users"));
        let admin = caller(Role::Admin);
        assert!(admin.may_see(None) && admin.may_see(Some(6)));
        admin.require_admin().unwrap();
    }
}
