//! One-time setup links: the first start creates the admin and prints a link (`/setup?key=KEY`,
//! valid for [`SETUP_KEY_LIFETIME_SECS`]) with which they choose their own password in the
//! browser and are logged in; `idlefarm user setup-link` makes a new one when it was lost. A key
//! is `<id>.<secret>` like an API token, stored as a hash, and works once.

use super::secret::{FreshSecret, parse_credential, secret_matches};
use super::users::start_session;
use super::{
    AccountError, FIRST_ADMIN, NewSession, SYSTEM_ACTOR, action, audit, first_run_admin, now_secs,
    password,
};
use crate::store::{Store, UserRow};

/// How long a setup link works: 24 hours.
pub const SETUP_KEY_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// A new setup key, to print once as a link.
#[derive(Debug, Clone)]
pub struct SetupKey {
    /// The key (`<id>.<secret>`), the link's `key`.
    pub key: String,
    /// Whose password it sets.
    pub user: String,
    /// Unix seconds when it stops working.
    pub expires_at: i64,
}

/// What the first start of a farm made: the admin, their generated password and a setup link.
#[derive(Debug, Clone)]
pub struct FirstRun {
    /// The admin's name.
    pub name: String,
    /// Their generated password (shown once; `idlefarm up` and scripts use it).
    pub password: String,
    /// The link with which they choose their own password instead.
    pub setup: SetupKey,
}

/// On a farm without users, creates the admin (see [`first_run_admin`]) and a setup link for
/// them; `None` when there are users already.
pub async fn first_run(store: &Store) -> Result<Option<FirstRun>, AccountError> {
    let Some((name, password)) = first_run_admin(store).await? else {
        return Ok(None);
    };
    let setup = create_setup_key(store, SYSTEM_ACTOR, Some(&name)).await?;
    Ok(Some(FirstRun {
        name,
        password,
        setup,
    }))
}

/// Makes a setup link for the user `name` (the first admin when `None`); their earlier unused
/// links stop working.
pub async fn create_setup_key(
    store: &Store,
    actor: &str,
    name: Option<&str>,
) -> Result<SetupKey, AccountError> {
    let user = match name {
        Some(name) => store.user_by_name(name).await?.ok_or_else(|| {
            AccountError::NotFound(format!(
                "no user called `{name}` (`idlefarm user list` shows them)"
            ))
        })?,
        None => store.first_admin().await?.ok_or_else(|| {
            AccountError::NotFound(format!(
                "there is no admin; start the coordinator once to create `{FIRST_ADMIN}`"
            ))
        })?,
    };
    let fresh = FreshSecret::generate();
    let now = now_secs();
    let expires_at = now + SETUP_KEY_LIFETIME_SECS;
    let id = store
        .insert_setup_key(user.id, &fresh.hash, now, expires_at)
        .await?;
    let detail = format!("setup key {id}, valid 24 h");
    audit(store, actor, action::SETUP_KEY_CREATE, &user.name, &detail).await?;
    Ok(SetupKey {
        key: fresh.credential(id),
        user: user.name,
        expires_at,
    })
}

/// What a person who follows a link that does not work is told, and how to get a new one.
const NEW_LINK: &str = "on the coordinator, `idlefarm user setup-link --data DIR` makes a new link";

/// The user a live setup key is for (the key id and user), or why it does not work.
async fn live_key(store: &Store, key: &str) -> Result<(i64, UserRow), AccountError> {
    let wrong = || {
        AccountError::NotFound(format!(
            "this setup link is not valid (mistyped, or replaced by a newer link); {NEW_LINK}"
        ))
    };
    let (id, secret) = parse_credential(key).ok_or_else(wrong)?;
    let row = store.setup_key(id).await?.ok_or_else(wrong)?;
    if !secret_matches(secret, &row.secret_hash) {
        return Err(wrong());
    }
    if row.used_at.is_some() {
        return Err(AccountError::Gone(format!(
            "this setup link was already used; log in with the password chosen then, or {NEW_LINK}"
        )));
    }
    if row.expires_at <= now_secs() {
        return Err(AccountError::Gone(format!(
            "this setup link has expired (links work for 24 hours); {NEW_LINK}"
        )));
    }
    Ok((row.id, row.user))
}

/// The user a setup key would set the password of, or why it does not work (the setup page
/// checks before showing its form; nothing is used up).
pub async fn check_setup_key(store: &Store, key: &str) -> Result<UserRow, AccountError> {
    Ok(live_key(store, key).await?.1)
}

/// Sets the password of a setup key's user, uses the key up and logs the browser in. Their other
/// logins stay: `idlefarm up` has already logged the local CLI in as this admin.
pub async fn complete_setup(
    store: &Store,
    key: &str,
    new_password: &str,
) -> Result<NewSession, AccountError> {
    let (id, user) = match live_key(store, key).await {
        Ok(found) => found,
        Err(e) => {
            // Bounded, so a flood of guesses cannot grow the log by more than it sends.
            let target: String = key
                .split('.')
                .next()
                .unwrap_or("")
                .chars()
                .take(20)
                .collect();
            let detail: String = e.to_string().chars().take(60).collect();
            audit(
                store,
                "anonymous",
                action::SETUP_KEY_REFUSED,
                &target,
                &detail,
            )
            .await?;
            return Err(e);
        }
    };
    password::check(new_password)?;
    let hash = password::hash(new_password.to_owned()).await?;
    if store.use_setup_key(id, &hash, now_secs()).await?.is_none() {
        return Err(AccountError::Gone(format!(
            "this setup link was used or expired a moment ago; {NEW_LINK}"
        )));
    }
    let detail = format!("setup key {id}: password chosen");
    audit(
        store,
        &user.name,
        action::SETUP_KEY_USE,
        &user.name,
        &detail,
    )
    .await?;
    start_session(store, user).await
}
