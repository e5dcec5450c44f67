//! Accounts in the database: users, login sessions, API tokens, the audit log and enrolment
//! tokens. Secrets are stored as hashes (passwords as argon2 PHC strings, session and token
//! secrets as blake3); enrolment tokens are kept as they are so `idlefarm token` can print them.

use idlefarm_protocol::accounts::{Role, UserInfo};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, decode_err};

mod audit;
pub(super) mod enrolment;
pub(super) mod roles;
pub(super) mod setup;

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl UserRow {
    /// The API view (no hash).
    pub fn info(&self) -> UserInfo {
        UserInfo {
            id: self.id,
            name: self.name.clone(),
            role: self.role,
            created_at: self.created_at,
        }
    }
}

/// A login session with its user.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Id (the first half of the cookie).
    pub id: i64,
    /// Whose it is.
    pub user: UserRow,
    /// blake3 of the cookie's secret, hex.
    pub secret_hash: String,
    /// The token state-changing requests must carry.
    pub csrf_token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An API token with its user.
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    /// Id (the first half of the token).
    pub id: i64,
    /// Whose it is.
    pub user: UserRow,
    /// blake3 of the token's secret, hex.
    pub secret_hash: String,
}

/// What removing a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRemoval {
    /// Removed, with their sessions and API tokens.
    Removed,
    /// No user of that name.
    NotFound,
    /// Refused: they are the last admin.
    LastAdmin,
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.password_hash, u.created_at";

/// Decodes the user columns ([`USER_COLUMNS`]) starting at column `at`.
fn user_at(r: &SqliteRow, at: usize) -> Result<UserRow, sqlx::Error> {
    let role: String = r.try_get(at + 2)?;
    Ok(UserRow {
        id: r.try_get(at)?,
        name: r.try_get(at + 1)?,
        role: Role::parse(&role).ok_or_else(|| decode_err("role", &role))?,
        password_hash: r.try_get(at + 3)?,
        created_at: r.try_get(at + 4)?,
    })
}

impl Store {
    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| user_at(r, 0)).collect()
    }

    /// The user called `name`.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_at(&r, 0)).transpose()
    }

    /// The first admin (lowest id), if any.
    pub async fn first_admin(&self) -> Result<Option<UserRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.role = 'admin' ORDER BY u.id LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_at(&r, 0)).transpose()
    }

    /// Adds a user; `None` when the name is taken. With `only_if_none`, adds them only when there
    /// are no users at all (one statement, so two first starts cannot both create one).
    pub async fn insert_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: i64,
        only_if_none: bool,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (name, role, password_hash, created_at)
             SELECT ?, ?, ?, ? WHERE NOT ? OR NOT EXISTS (SELECT 1 FROM users)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now)
        .bind(only_if_none)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(|id| UserRow {
            id,
            name: name.to_owned(),
            role,
            password_hash: password_hash.to_owned(),
            created_at: now,
        }))
    }

    /// Removes a user with their sessions and API tokens, unless they are the last admin.
    pub async fn remove_user(&self, name: &str) -> Result<UserRemoval, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // One statement decides, so two admins removing each other cannot leave no admin.
        let removed = sqlx::query(
            "DELETE FROM users WHERE name = ?
             AND (role != 'admin' OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)
             RETURNING id",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match removed {
            Some(r) => {
                let id: i64 = r.try_get(0)?;
                // Foreign keys cascade too; explicit, so it holds even with them off.
                for table in ["sessions", "api_tokens"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                UserRemoval::Removed
            }
            None => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                match exists {
                    Some(_) => UserRemoval::LastAdmin,
                    None => UserRemoval::NotFound,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Sets a user's password hash and ends their other logins: every session and API token
    /// except the ones given (the credential the change was made with).
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: Option<i64>,
        keep_token: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?")
            .bind(user_id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = ? AND id IS NOT ?")
            .bind(user_id)
            .bind(keep_token)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Starts a login session; also forgets sessions that have expired.
    pub async fn insert_session(
        &self,
        user_id: i64,
        secret_hash: &str,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query_scalar(
            "INSERT INTO sessions (user_id, secret_hash, csrf_token, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(secret_hash)
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
    }

    /// A session and its user.
    pub async fn session(&self, id: i64) -> Result<Option<SessionRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT s.id, s.secret_hash, s.csrf_token, s.expires_at, {USER_COLUMNS}
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                id: r.try_get(0)?,
                secret_hash: r.try_get(1)?,
                csrf_token: r.try_get(2)?,
                expires_at: r.try_get(3)?,
                user: user_at(&r, 4)?,
            })
        })
        .transpose()
    }

    /// Ends a session; whether it existed.
    pub async fn delete_session(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a session's expiry (tests use it to expire one; unix seconds).
    pub async fn set_session_expiry(&self, id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sessions SET expires_at = ? WHERE id = ?")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an API token; with `replace`, first removes the user's tokens with the same label
    /// (so `idlefarm up` does not pile up a token per start).
    pub async fn insert_api_token(
        &self,
        user_id: i64,
        label: &str,
        secret_hash: &str,
        now: i64,
        replace: bool,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if replace {
            sqlx::query("DELETE FROM api_tokens WHERE user_id = ? AND label = ?")
                .bind(user_id)
                .bind(label)
                .execute(&mut *tx)
                .await?;
        }
        let id = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, label, secret_hash, created_at)
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(label)
        .bind(secret_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// An API token and its user.
    pub async fn api_token(&self, id: i64) -> Result<Option<ApiTokenRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT t.id, t.secret_hash, {USER_COLUMNS}
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ApiTokenRow {
                id: r.try_get(0)?,
                secret_hash: r.try_get(1)?,
                user: user_at(&r, 2)?,
            })
        })
        .transpose()
    }

    /// Notes that a token was used; writes at most once a minute per token.
    pub async fn touch_api_token(&self, id: i64, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = ?
             WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ? - 60)",
        )
        .bind(now)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes an API token; whether it existed.
    pub async fn delete_api_token(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
