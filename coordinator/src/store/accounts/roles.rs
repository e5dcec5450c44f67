//! Roles and logins in the database: changing a user's role (never leaving the farm without an
//! admin), and the users with how many logins each holds, as the admin page lists them.

use idlefarm_protocol::accounts::Role;
use sqlx::Row;

use super::{USER_COLUMNS, UserRow, user_at};
use crate::store::{Store, decode_err};

/// What changing a user's role did.
#[derive(Debug, Clone)]
pub enum RoleUpdate {
    /// Changed (or it already was that role); the role they had before.
    Changed {
        /// The user as they are now.
        user: UserRow,
        /// Their role before.
        was: Role,
    },
    /// No user of that name.
    NotFound,
    /// Refused: they are the last admin and would no longer be one.
    LastAdmin,
}

/// A user with their live logins.
#[derive(Debug, Clone)]
pub struct UserLogins {
    /// The user.
    pub user: UserRow,
    /// Browser sessions that have not expired.
    pub sessions: i64,
    /// API tokens (CLI logins).
    pub api_tokens: i64,
}

impl Store {
    /// Sets a user's role, unless that would leave no admin.
    pub async fn set_role(&self, name: &str, role: Role) -> Result<RoleUpdate, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let before: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before else {
            return Ok(RoleUpdate::NotFound);
        };
        // One statement decides, so two admins demoting each other cannot leave no admin.
        let updated: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET role = ?1 WHERE name = ?2
             AND (?1 = 'admin' OR role != 'admin'
                  OR (SELECT COUNT(*) FROM users WHERE role = 'admin') > 1)
             RETURNING id",
        )
        .bind(role.as_str())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match updated {
            None => RoleUpdate::LastAdmin,
            Some(id) => {
                let row = sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?"
                ))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let was = Role::parse(&before).ok_or_else(|| decode_err("role", &before))?;
                RoleUpdate::Changed {
                    user: user_at(&row, 0)?,
                    was,
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Every user, by name, with their sessions live at `now` and their API tokens.
    pub async fn users_with_logins(&self, now: i64) -> Result<Vec<UserLogins>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS},
               (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at > ?),
               (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id)
             FROM users u ORDER BY u.name"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserLogins {
                    user: user_at(r, 0)?,
                    sessions: r.try_get(5)?,
                    api_tokens: r.try_get(6)?,
                })
            })
            .collect()
    }
}
