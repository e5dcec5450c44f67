//! Enrolment tokens: the shared secrets new agents register with. Admins make them (optionally
//! expiring) and revoke them; a revoked or expired token enrols nothing, while agents it
//! enrolled keep their own per-agent secrets and keep working.

use idlefarm_protocol::accounts::CreatedEnrolmentToken;

use super::{AccountError, action, audit, now_secs};
use crate::store::{Store, TokenRevocation};

/// Longest expiry accepted: ten years.
pub const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Makes an enrolment token that expires after `expires_secs` (never when `None`).
pub async fn create_enrolment_token(
    store: &Store,
    actor: &str,
    expires_secs: Option<u64>,
) -> Result<CreatedEnrolmentToken, AccountError> {
    if let Some(secs) = expires_secs
        && !(1..=MAX_EXPIRY_SECS).contains(&secs)
    {
        return Err(AccountError::Invalid(format!(
            "an enrolment token expires after 1 second to 10 years, not {secs} seconds"
        )));
    }
    let now = now_secs();
    let expires_at = expires_secs.map(|s| now + s as i64);
    let token = crate::auth::new_secret();
    let id = store
        .create_enrolment_token(&token, now, expires_at)
        .await?;
    let detail = match expires_at {
        Some(t) => format!("expires at {t}"),
        None => "never expires".into(),
    };
    audit(
        store,
        actor,
        action::ENROLMENT_TOKEN_CREATE,
        &format!("enrolment token {id}"),
        &detail,
    )
    .await?;
    Ok(CreatedEnrolmentToken {
        id,
        token,
        expires_at,
    })
}

/// Revokes an enrolment token.
pub async fn revoke_enrolment_token(
    store: &Store,
    actor: &str,
    id: i64,
) -> Result<(), AccountError> {
    match store.revoke_enrolment_token(id, now_secs()).await? {
        TokenRevocation::Revoked => {
            let target = format!("enrolment token {id}");
            audit(store, actor, action::ENROLMENT_TOKEN_REVOKE, &target, "").await
        }
        TokenRevocation::NotFound => Err(AccountError::NotFound(format!(
            "no enrolment token {id} (`idlefarm token list` shows them)"
        ))),
        TokenRevocation::AlreadyRevoked => Err(AccountError::Conflict(format!(
            "enrolment token {id} is already revoked"
        ))),
    }
}
