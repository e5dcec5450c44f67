//! Setup keys in the database: the one-time links that let a user (the first admin) choose their
//! password. Only the secret's blake3 hash is stored; a used key is kept, marked used.

use sqlx::Row;

use super::{USER_COLUMNS, UserRow, user_at};
use crate::store::Store;

/// A setup key as stored, with the user it is for.
#[derive(Debug, Clone)]
pub struct SetupKeyRow {
    /// Id (the first half of the key).
    pub id: i64,
    /// Whose password it sets.
    pub user: UserRow,
    /// blake3 of the key's secret, hex.
    pub secret_hash: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds when it was used.
    pub used_at: Option<i64>,
}

impl Store {
    /// Adds a setup key for a user; their earlier unused keys stop working, so only the newest
    /// printed link is live.
    pub async fn insert_setup_key(
        &self,
        user_id: i64,
        secret_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM setup_keys WHERE user_id = ? AND used_at IS NULL")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let id = sqlx::query_scalar(
            "INSERT INTO setup_keys (user_id, secret_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(secret_hash)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A setup key and its user.
    pub async fn setup_key(&self, id: i64) -> Result<Option<SetupKeyRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT k.id, k.secret_hash, k.expires_at, k.used_at, {USER_COLUMNS}
             FROM setup_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SetupKeyRow {
                id: r.try_get(0)?,
                secret_hash: r.try_get(1)?,
                expires_at: r.try_get(2)?,
                used_at: r.try_get(3)?,
                user: user_at(&r, 4)?,
            })
        })
        .transpose()
    }

    /// Uses a setup key: marks it used and sets its user's password, in one transaction. `None`
    /// when it was used or expired meanwhile (two tabs submitting at once set one password).
    pub async fn use_setup_key(
        &self,
        id: i64,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let user_id: Option<i64> = sqlx::query_scalar(
            "UPDATE setup_keys SET used_at = ?
             WHERE id = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id",
        )
        .bind(now)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(user_id) = user_id {
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }

    /// Moves a setup key's expiry (tests use it to expire one; unix seconds).
    pub async fn set_setup_key_expiry(&self, id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE setup_keys SET expires_at = ? WHERE id = ?")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
