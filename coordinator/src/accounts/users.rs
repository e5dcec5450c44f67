//! Users and their logins: adding, removing and re-passwording users and changing their roles;
//! logging in (a browser session or a CLI API token), checking those credentials on each
//! request, and ending them. Every change is written to the audit log.

use idlefarm_protocol::accounts::{NewUser, NewUserResponse, Role, SESSION_MAX_AGE_SECS, UserInfo};

use super::secret::{FreshSecret, parse_credential, secret_matches};
use super::{AccountError, action, audit, check_user_name, now_secs, password};
use crate::store::{ApiTokenRow, RoleUpdate, SessionRow, Store, UserRemoval, UserRow};

/// What 401 answers say, so a person knows the way back in.
const LOG_IN_AGAIN: &str = "log in with `idlefarm login` (or on the web page)";

/// A started browser session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The user.
    pub user: UserRow,
    /// Session id.
    pub id: i64,
    /// The cookie's value, `<id>.<secret>`.
    pub cookie: String,
    /// The token state-changing requests must carry.
    pub csrf_token: String,
}

/// The credential a password change was made with, which stays valid; every other login of
/// that user ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepLogin {
    /// A session id.
    pub session: Option<i64>,
    /// An API token id.
    pub token: Option<i64>,
}

/// The password given, or a generated one (then also returned to show once).
fn password_or_generated(given: Option<String>) -> Result<(String, Option<String>), AccountError> {
    match given {
        Some(p) => {
            password::check(&p)?;
            Ok((p, None))
        }
        None => {
            let p = password::generate()?;
            Ok((p.clone(), Some(p)))
        }
    }
}

/// Adds a user; generates a password when none is given.
pub async fn add_user(
    store: &Store,
    actor: &str,
    req: NewUser,
) -> Result<NewUserResponse, AccountError> {
    check_user_name(&req.name)?;
    let (password, generated) = password_or_generated(req.password)?;
    let hash = password::hash(password).await?;
    let user = store
        .insert_user(&req.name, req.role, &hash, now_secs(), false)
        .await?
        .ok_or_else(|| {
            AccountError::Conflict(format!("a user called `{}` already exists", req.name))
        })?;
    let detail = format!("role {}", req.role.as_str());
    audit(store, actor, action::USER_ADD, &user.name, &detail).await?;
    Ok(NewUserResponse {
        user: user.info(),
        password: generated,
    })
}

/// Removes a user with their sessions and API tokens (their jobs stay), never the last admin.
pub async fn remove_user(store: &Store, actor: &str, name: &str) -> Result<(), AccountError> {
    match store.remove_user(name).await? {
        UserRemoval::Removed => audit(store, actor, action::USER_REMOVE, name, "").await,
        UserRemoval::NotFound => Err(no_such_user(name)),
        UserRemoval::LastAdmin => Err(AccountError::Conflict(format!(
            "`{name}` is the last admin; add another admin before removing them"
        ))),
    }
}

/// Makes `name` an admin or a submitter, never leaving the farm without an admin. Takes effect
/// on their next request: logins look the role up each time.
pub async fn set_role(
    store: &Store,
    actor: &str,
    name: &str,
    role: Role,
) -> Result<UserInfo, AccountError> {
    match store.set_role(name, role).await? {
        RoleUpdate::Changed { user, was } => {
            let detail = format!("role {} (was {})", role.as_str(), was.as_str());
            audit(store, actor, action::USER_ROLE, name, &detail).await?;
            Ok(user.info())
        }
        RoleUpdate::NotFound => Err(no_such_user(name)),
        RoleUpdate::LastAdmin => Err(AccountError::Conflict(format!(
            "`{name}` is the last admin; make another user an admin first"
        ))),
    }
}

fn no_such_user(name: &str) -> AccountError {
    AccountError::NotFound(format!(
        "no user called `{name}` (`idlefarm user list` shows them)"
    ))
}

/// Sets a user's password (a generated one when none is given, returned to show once) and ends
/// their other logins.
pub async fn change_password(
    store: &Store,
    actor: &str,
    name: &str,
    new: Option<String>,
    keep: KeepLogin,
) -> Result<Option<String>, AccountError> {
    let user = store
        .user_by_name(name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    let (password, generated) = password_or_generated(new)?;
    let hash = password::hash(password).await?;
    store
        .set_password(user.id, &hash, keep.session, keep.token)
        .await?;
    let detail = if generated.is_some() {
        "generated password; other logins ended"
    } else {
        "other logins ended"
    };
    audit(store, actor, action::USER_PASSWD, name, detail).await?;
    Ok(generated)
}

/// The user whose name and password these are. A wrong name and a wrong password get the same
/// answer (and take as long), so names cannot be probed; each refusal is audited.
pub async fn authenticate(
    store: &Store,
    name: &str,
    password: &str,
) -> Result<UserRow, AccountError> {
    let user = store.user_by_name(name).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = password::verify(password.to_owned(), stored).await?;
    match user {
        Some(user) if ok => Ok(user),
        _ => {
            // Bounded, so a flood of attempts cannot grow the log by more than it sends.
            let target: String = name.chars().take(64).collect();
            audit(store, "anonymous", action::LOGIN_FAILED, &target, "").await?;
            Err(AccountError::Unauthorized(
                "wrong user name or password".into(),
            ))
        }
    }
}

/// Logs a browser in: checks the password and starts a session of
/// [`SESSION_MAX_AGE_SECS`].
pub async fn login(store: &Store, name: &str, password: &str) -> Result<NewSession, AccountError> {
    let user = authenticate(store, name, password).await?;
    start_session(store, user).await
}

/// Starts a browser session of [`SESSION_MAX_AGE_SECS`] for a user who proved who they are.
pub(super) async fn start_session(
    store: &Store,
    user: UserRow,
) -> Result<NewSession, AccountError> {
    let fresh = FreshSecret::generate();
    let csrf_token = crate::auth::new_secret();
    let now = now_secs();
    let id = store
        .insert_session(
            user.id,
            &fresh.hash,
            &csrf_token,
            now,
            now + SESSION_MAX_AGE_SECS,
        )
        .await?;
    audit(
        store,
        &user.name,
        action::LOGIN,
        &user.name,
        &format!("session {id}"),
    )
    .await?;
    Ok(NewSession {
        cookie: fresh.credential(id),
        user,
        id,
        csrf_token,
    })
}

/// Ends a browser session (logout).
pub async fn end_session(store: &Store, actor: &str, session: i64) -> Result<(), AccountError> {
    store.delete_session(session).await?;
    audit(
        store,
        actor,
        action::LOGOUT,
        actor,
        &format!("session {session}"),
    )
    .await
}

/// Checks the password and makes an API token labelled `label`; returns the user and the token.
pub async fn create_api_token(
    store: &Store,
    name: &str,
    password: &str,
    label: &str,
) -> Result<(UserRow, String), AccountError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(AccountError::Invalid(
            "a token label is 1-100 printable characters, e.g. `idlefarm CLI on lab-pc-3`".into(),
        ));
    }
    let user = authenticate(store, name, password).await?;
    let fresh = FreshSecret::generate();
    let id = store
        .insert_api_token(user.id, label, &fresh.hash, now_secs(), false)
        .await?;
    let detail = format!("token {id}: {label}");
    audit(
        store,
        &user.name,
        action::API_TOKEN_CREATE,
        &user.name,
        &detail,
    )
    .await?;
    Ok((user, fresh.credential(id)))
}

/// Revokes an API token (CLI logout).
pub async fn revoke_api_token(store: &Store, actor: &str, token: i64) -> Result<(), AccountError> {
    store.delete_api_token(token).await?;
    audit(
        store,
        actor,
        action::API_TOKEN_REVOKE,
        actor,
        &format!("token {token}"),
    )
    .await
}

/// The live session a cookie value names, or why not.
pub async fn check_session(store: &Store, cookie: &str) -> Result<SessionRow, AccountError> {
    let refused = || {
        AccountError::Unauthorized(format!(
            "your login session is not valid (expired, ended or forged); {LOG_IN_AGAIN}"
        ))
    };
    let (id, secret) = parse_credential(cookie).ok_or_else(refused)?;
    let session = store.session(id).await?.ok_or_else(refused)?;
    if !secret_matches(secret, &session.secret_hash) || session.expires_at <= now_secs() {
        return Err(refused());
    }
    Ok(session)
}

/// The API token a bearer credential names, or why not.
pub async fn check_api_token(store: &Store, token: &str) -> Result<ApiTokenRow, AccountError> {
    let refused = || {
        AccountError::Unauthorized(format!(
            "the API token is not valid (revoked, its user removed, or mistyped); {LOG_IN_AGAIN}"
        ))
    };
    let (id, secret) = parse_credential(token).ok_or_else(refused)?;
    let row = store.api_token(id).await?.ok_or_else(refused)?;
    if !secret_matches(secret, &row.secret_hash) {
        return Err(refused());
    }
    store.touch_api_token(id, now_secs()).await?;
    Ok(row)
}
