//! Handlers for accounts: logging in and out (browser sessions and CLI API tokens), users,
//! enrolment tokens and the audit log. Thin: each checks who may act and hands over to
//! [`crate::accounts`], which validates, changes the store and writes the audit log.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{AppendHeaders, IntoResponse};
use idlefarm_protocol::accounts::{
    AuditEntry, AuditFilter, CreatedEnrolmentToken, EnrolmentTokenInfo, LoginRequest,
    NewEnrolmentToken, NewUser, NewUserResponse, PasswordChange, PasswordResponse, RoleChange,
    SESSION_COOKIE, SESSION_MAX_AGE_SECS, SessionInfo, SetupRequest, TokenRequest, TokenResponse,
    UserInfo,
};

use super::Coordinator;
use super::caller::{Caller, Login};
use crate::accounts;
use crate::accounts::MAX_AUDIT_LIMIT;
use crate::error::{ApiError, JsonBody, PathParams};

/// Whether the browser reached us over https (directly or through a proxy that says so), so
/// the cookie must be `Secure`.
fn over_https(uri: &Uri, headers: &HeaderMap) -> bool {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    forwarded || uri.scheme_str() == Some("https")
}

/// The `Set-Cookie` value for a session cookie (`max_age` 0 deletes it).
fn session_cookie_header(value: &str, max_age: i64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(ApiError::internal)
}

pub(super) async fn login(
    State(coord): State<Arc<Coordinator>>,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let session = accounts::login(&coord.store, &req.name, &req.password).await?;
    logged_in(session, &uri, &headers)
}

/// The answer that hands a browser its new session: the cookie and who it is.
fn logged_in(
    session: accounts::NewSession,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let cookie = session_cookie_header(
        &session.cookie,
        SESSION_MAX_AGE_SECS,
        over_https(uri, headers),
    )?;
    let info = SessionInfo {
        user: session.user.info(),
        csrf_token: Some(session.csrf_token),
    };
    Ok((AppendHeaders([(header::SET_COOKIE, cookie)]), Json(info)))
}

/// `POST /setup`: a setup link's key and the chosen password; logs the browser in.
pub(super) async fn setup(
    State(coord): State<Arc<Coordinator>>,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SetupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let session = accounts::complete_setup(&coord.store, &req.key, &req.password).await?;
    logged_in(session, &uri, &headers)
}

pub(super) async fn session(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<SessionInfo>, ApiError> {
    let user = coord
        .store
        .user_by_name(&caller.name)
        .await?
        .ok_or_else(|| ApiError::unauthorized("your user was removed"))?;
    let csrf_token = match caller.login {
        Login::Session(id) => coord.store.session(id).await?.map(|s| s.csrf_token),
        Login::Token(_) => None,
    };
    Ok(Json(SessionInfo {
        user: user.info(),
        csrf_token,
    }))
}

pub(super) async fn logout(
    State(coord): State<Arc<Coordinator>>,
    uri: Uri,
    headers: HeaderMap,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let Login::Session(id) = caller.login else {
        return Err(ApiError::bad_request(
            "this request carries an API token, not a session; `idlefarm logout` revokes it",
        ));
    };
    accounts::end_session(&coord.store, &caller.name, id).await?;
    let cookie = session_cookie_header("", 0, over_https(&uri, &headers))?;
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(serde_json::json!({})),
    ))
}

pub(super) async fn create_token(
    State(coord): State<Arc<Coordinator>>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let (user, token) =
        accounts::create_api_token(&coord.store, &req.name, &req.password, &req.label).await?;
    Ok(Json(TokenResponse {
        token,
        user: user.info(),
    }))
}

pub(super) async fn revoke_current_token(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Login::Token(id) = caller.login else {
        return Err(ApiError::bad_request(
            "this request carries a session cookie, not an API token; `DELETE /api/v1/session` logs it out",
        ));
    };
    accounts::revoke_api_token(&coord.store, &caller.name, id).await?;
    Ok(Json(serde_json::json!({})))
}

pub(super) async fn list_users(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    caller.require_admin_to("list users")?;
    let users = coord.store.users().await?;
    Ok(Json(users.iter().map(|u| u.info()).collect()))
}

pub(super) async fn add_user(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<Json<NewUserResponse>, ApiError> {
    caller.require_admin_to("add users")?;
    Ok(Json(
        accounts::add_user(&coord.store, &caller.name, req).await?,
    ))
}

pub(super) async fn remove_user(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(name): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin_to("remove users")?;
    accounts::remove_user(&coord.store, &caller.name, &name).await?;
    Ok(Json(serde_json::json!({})))
}

pub(super) async fn set_role(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<RoleChange>,
) -> Result<Json<UserInfo>, ApiError> {
    caller.require_admin_to("change roles")?;
    Ok(Json(
        accounts::set_role(&coord.store, &caller.name, &name, req.role).await?,
    ))
}

pub(super) async fn set_password(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(name): PathParams<String>,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<Json<PasswordResponse>, ApiError> {
    if caller.name != name {
        caller.require_admin_to("change another user's password")?;
    }
    // Whoever changes their own password stays logged in where they did it.
    let keep = if caller.name == name {
        caller.keep_login()
    } else {
        accounts::KeepLogin::default()
    };
    let password =
        accounts::change_password(&coord.store, &caller.name, &name, req.password, keep).await?;
    Ok(Json(PasswordResponse { password }))
}

pub(super) async fn list_enrolment_tokens(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
) -> Result<Json<Vec<EnrolmentTokenInfo>>, ApiError> {
    caller.require_admin_to("list enrolment tokens")?;
    Ok(Json(coord.store.enrolment_tokens().await?))
}

pub(super) async fn create_enrolment_token(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    JsonBody(req): JsonBody<NewEnrolmentToken>,
) -> Result<Json<CreatedEnrolmentToken>, ApiError> {
    caller.require_admin_to("create enrolment tokens")?;
    let created =
        accounts::create_enrolment_token(&coord.store, &caller.name, req.expires_secs).await?;
    Ok(Json(created))
}

pub(super) async fn revoke_enrolment_token(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin_to("revoke enrolment tokens")?;
    accounts::revoke_enrolment_token(&coord.store, &caller.name, id).await?;
    Ok(Json(serde_json::json!({})))
}

/// The message for a query that does not parse.
fn malformed_audit_query(e: &QueryRejection) -> ApiError {
    ApiError::bad_request(format!(
        "malformed query: {}; use ?limit=N (1 to {MAX_AUDIT_LIMIT}), before=ID, actor=NAME, action=NAME",
        e.body_text()
    ))
}

pub(super) async fn audit_log(
    State(coord): State<Arc<Coordinator>>,
    caller: Caller,
    query: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require_admin_to("read the audit log")?;
    let Query(filter) = query.map_err(|e| malformed_audit_query(&e))?;
    let filter = accounts::check_audit_filter(filter)?;
    Ok(Json(coord.store.audit_entries(&filter).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_locked_down_and_secure_over_https() {
        let plain = session_cookie_header("7.abc", 604800, false).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "idlefarm_session=7.abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800"
        );
        let secure = session_cookie_header("7.abc", 60, true).unwrap();
        assert!(secure.to_str().unwrap().ends_with("; Secure"));

        let uri: Uri = "/api/v1/session".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert!(!over_https(&uri, &headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(over_https(&uri, &headers));
        let full: Uri = "https://farm/api/v1/session".parse().unwrap();
        assert!(over_https(&full, &HeaderMap::new()));
    }
}
