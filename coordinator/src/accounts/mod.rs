//! Accounts: users with roles, argon2 passwords, login sessions for browsers, API tokens for the
//! CLI, enrolment tokens for agents, one-time setup links, and the audit log that records every
//! change to them.
//!
//! The operations here take the [`Store`] and the name of whoever acts, so the HTTP handlers
//! (which first check the caller may act) and the CLI's `--data` mode (which acts directly on the
//! data directory, so an admin can never lock themselves out) share one implementation.

pub mod credentials;
mod enrolment;
pub mod password;
pub mod secret;
mod setup;
mod users;

use std::path::PathBuf;

use idlefarm_protocol::accounts::{AuditFilter, Role};

use crate::store::Store;

pub use enrolment::{create_enrolment_token, revoke_enrolment_token};
pub use setup::{
    FirstRun, SETUP_KEY_LIFETIME_SECS, SetupKey, check_setup_key, complete_setup, create_setup_key,
    first_run,
};
pub use users::{
    KeepLogin, NewSession, add_user, authenticate, change_password, check_api_token, check_session,
    create_api_token, end_session, login, remove_user, revoke_api_token, set_role,
};

/// Why an account operation was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Bad input (name, password, label, expiry).
    #[error("{0}")]
    Invalid(String),
    /// Missing, wrong, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// No such user or token.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what exists (name taken, last admin, already revoked).
    #[error("{0}")]
    Conflict(String),
    /// It existed but is used up or expired (a setup link).
    #[error("{0}")]
    Gone(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
    /// The CLI's credentials file could not be written.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    /// Anything else that is not the caller's fault.
    #[error("{0}")]
    Internal(String),
}

/// Names of the audit log's account actions.
pub mod action {
    /// A browser logged in.
    pub const LOGIN: &str = "session.login";
    /// A login (browser or CLI) was refused.
    pub const LOGIN_FAILED: &str = "session.login-failed";
    /// A browser logged out.
    pub const LOGOUT: &str = "session.logout";
    /// An API token was made (CLI login).
    pub const API_TOKEN_CREATE: &str = "api-token.create";
    /// An API token was revoked (CLI logout).
    pub const API_TOKEN_REVOKE: &str = "api-token.revoke";
    /// A user was added.
    pub const USER_ADD: &str = "user.add";
    /// A user was removed.
    pub const USER_REMOVE: &str = "user.remove";
    /// A password was changed.
    pub const USER_PASSWD: &str = "user.passwd";
    /// A user's role was changed.
    pub const USER_ROLE: &str = "user.role";
    /// A setup link was made.
    pub const SETUP_KEY_CREATE: &str = "setup-key.create";
    /// A password was chosen with a setup link.
    pub const SETUP_KEY_USE: &str = "setup-key.use";
    /// A setup link was refused (wrong, used or expired).
    pub const SETUP_KEY_REFUSED: &str = "setup-key.refused";
    /// An enrolment token was made.
    pub const ENROLMENT_TOKEN_CREATE: &str = "enrolment-token.create";
    /// An enrolment token was revoked.
    pub const ENROLMENT_TOKEN_REVOKE: &str = "enrolment-token.revoke";
}

/// The name of the admin the first start creates.
pub const FIRST_ADMIN: &str = "admin";

/// Label of the API token `idlefarm up` saves for the local CLI (replaced on every start).
pub const LOCAL_CLI_LABEL: &str = "local CLI (idlefarm up)";

/// Actor of the audit entries the coordinator makes on its own.
pub const SYSTEM_ACTOR: &str = "system";

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Appends to the audit log, stamped now.
pub async fn audit(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), AccountError> {
    Ok(store
        .insert_audit(now_secs(), actor, action, target, detail)
        .await?)
}

/// The audit actor of a command run directly on the data directory: `local:<unix user>`.
pub fn local_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").map_or("unknown".into(), |m| format!("uid {}", m.uid()))
        });
    format!("local:{user}")
}

/// Refuses user names that are empty, too long, or hold anything but `a-z A-Z 0-9 . _ -`
/// (so a name is safe in a URL path, a log line and a shell), or start with `-` or `.`.
pub fn check_user_name(name: &str) -> Result<(), AccountError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let ok = (1..=64).contains(&name.len()) && ok_chars && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!(
            "`{name}` is not a valid user name: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        )))
    }
}

/// Most audit entries one request returns.
pub const MAX_AUDIT_LIMIT: u32 = 10_000;

/// Checks an audit query: a limit from 1 to [`MAX_AUDIT_LIMIT`] (100 when not given), a
/// positive `before`, and names of at most 200 characters. Empty names mean "any".
pub fn check_audit_filter(mut filter: AuditFilter) -> Result<AuditFilter, AccountError> {
    let limit = filter.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(AccountError::Invalid(format!(
            "limit must be from 1 to {MAX_AUDIT_LIMIT}, not {limit}"
        )));
    }
    filter.limit = Some(limit);
    if let Some(before) = filter.before.filter(|&b| b < 1) {
        return Err(AccountError::Invalid(format!(
            "before is an audit entry id (1 or more), not {before}"
        )));
    }
    for (what, value) in [("actor", &mut filter.actor), ("action", &mut filter.action)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        }
        if value.as_deref().is_some_and(|v| v.chars().count() > 200) {
            return Err(AccountError::Invalid(format!(
                "{what} is at most 200 characters"
            )));
        }
    }
    Ok(filter)
}

/// On a farm without users, creates the admin `admin` with a generated password and returns
/// (name, password) to show once; `None` when there are users already.
pub async fn first_run_admin(store: &Store) -> Result<Option<(String, String)>, AccountError> {
    if !store.users().await?.is_empty() {
        return Ok(None);
    }
    let password = password::generate()?;
    let hash = password::hash(password.clone()).await?;
    let created = store
        .insert_user(FIRST_ADMIN, Role::Admin, &hash, now_secs(), true)
        .await?;
    if created.is_none() {
        return Ok(None);
    }
    audit(
        store,
        SYSTEM_ACTOR,
        action::USER_ADD,
        FIRST_ADMIN,
        "first start: role admin, generated password",
    )
    .await?;
    Ok(Some((FIRST_ADMIN.to_owned(), password)))
}

/// Logs the CLI of this machine in as the first admin for the coordinator at `url`: makes an API
/// token directly in the store and saves it in the user's credentials file. Returns the file.
pub async fn login_local_cli(store: &Store, url: &str) -> Result<PathBuf, AccountError> {
    let path = credentials::default_path()?;
    save_local_login(store, url, &path).await?;
    Ok(path)
}

/// [`login_local_cli`] with the credentials file given.
pub async fn save_local_login(
    store: &Store,
    url: &str,
    path: &std::path::Path,
) -> Result<(), AccountError> {
    let admin = store.first_admin().await?.ok_or_else(|| {
        AccountError::NotFound("there is no admin; add one with `idlefarm user add`".into())
    })?;
    let fresh = secret::FreshSecret::generate();
    let id = store
        .insert_api_token(admin.id, LOCAL_CLI_LABEL, &fresh.hash, now_secs(), true)
        .await?;
    audit(
        store,
        SYSTEM_ACTOR,
        action::API_TOKEN_CREATE,
        &admin.name,
        &format!("token {id}: {LOCAL_CLI_LABEL}"),
    )
    .await?;
    let mut creds = credentials::Credentials::load(path)?;
    creds.set(
        url,
        credentials::SavedLogin {
            user: admin.name,
            token: fresh.credential(id),
            fingerprint: None,
        },
    );
    creds.save(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain() {
        for good in ["admin", "ada.lovelace", "b_2", "X-1"] {
            check_user_name(good).unwrap();
        }
        let long = "a".repeat(65);
        for bad in ["", "-rf", ".hidden", "a b", "a/b", "ädä", "a%2F", &long] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_filters_are_bounded() {
        let f = check_audit_filter(AuditFilter::default()).unwrap();
        assert_eq!(f.limit, Some(100));
        let blank = AuditFilter {
            actor: Some("  ".into()),
            action: Some(String::new()),
            ..AuditFilter::default()
        };
        let f = check_audit_filter(blank).unwrap();
        assert_eq!((f.actor, f.action), (None, None));
        for bad in [
            AuditFilter {
                limit: Some(0),
                ..AuditFilter::default()
            },
            AuditFilter {
                before: Some(0),
                ..AuditFilter::default()
            },
            AuditFilter {
                actor: Some("x".repeat(201)),
                ..AuditFilter::default()
            },
        ] {
            assert!(check_audit_filter(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_actors_are_marked_local() {
        assert!(local_actor().starts_with("local:"));
    }
}
