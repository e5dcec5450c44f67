//! Enrolment tokens in the database. Kept as they are (not hashed) so `idlefarm token` can print
//! the standing one again; each has an id, an optional expiry and a revocation time.

use idlefarm_protocol::accounts::EnrolmentTokenInfo;
use sqlx::Row;

use crate::store::Store;

/// What revoking an enrolment token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRevocation {
    /// Revoked now.
    Revoked,
    /// No token with that id.
    NotFound,
    /// It was revoked before.
    AlreadyRevoked,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// The standing enrolment token (live, no expiry), creating one with `fresh()` if none
    /// exists. The flag says whether it was just created.
    pub async fn enrolment_token(
        &self,
        fresh: impl FnOnce() -> String,
        now: i64,
    ) -> Result<(String, bool), sqlx::Error> {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT token FROM enrolment_tokens WHERE revoked_at IS NULL AND expires_at IS NULL
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(token) = existing {
            return Ok((token, false));
        }
        let token = fresh();
        self.create_enrolment_token(&token, now, None).await?;
        Ok((token, true))
    }

    /// Adds an enrolment token; returns its id.
    pub async fn create_enrolment_token(
        &self,
        token: &str,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO enrolment_tokens (token, created_at, expires_at) VALUES (?, ?, ?)
             RETURNING id",
        )
        .bind(token)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
    }

    /// Every enrolment token, newest first.
    pub async fn enrolment_tokens(&self) -> Result<Vec<EnrolmentTokenInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, token, created_at, expires_at, revoked_at FROM enrolment_tokens
             ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(EnrolmentTokenInfo {
                    id: r.try_get(0)?,
                    token: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                    revoked_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Revokes an enrolment token: it enrols nothing more; agents it enrolled keep working.
    pub async fn revoke_enrolment_token(
        &self,
        id: i64,
        now: i64,
    ) -> Result<TokenRevocation, sqlx::Error> {
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM enrolment_tokens WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match revoked {
            None => Ok(TokenRevocation::NotFound),
            Some(Some(_)) => Ok(TokenRevocation::AlreadyRevoked),
            Some(None) => {
                sqlx::query("UPDATE enrolment_tokens SET revoked_at = ? WHERE id = ?")
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(TokenRevocation::Revoked)
            }
        }
    }

    /// Whether `token` enrols agents now: known, not revoked, not expired.
    pub async fn token_is_valid(&self, token: &str) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM enrolment_tokens WHERE token = ? AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(token)
        .bind(now_secs())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}
