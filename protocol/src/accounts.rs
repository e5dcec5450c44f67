//! Accounts on the wire: roles, users, login sessions, API tokens for the CLI, enrolment tokens
//! for agents and the audit log, with the route paths of their endpoints (relative to
//! [`API_PREFIX`](crate::API_PREFIX)).
//!
//! A browser logs in with [`LoginRequest`] and gets a session cookie ([`SESSION_COOKIE`]) plus a
//! CSRF token it must send back in [`CSRF_HEADER`] on every state-changing request. The CLI trades
//! the same name and password for an API token ([`TokenRequest`]) and sends it as
//! `Authorization: Bearer <token>`; bearer requests need no CSRF token.

use serde::{Deserialize, Serialize};

/// Name of the cookie that carries a browser's login session.
pub const SESSION_COOKIE: &str = "idlefarm_session";

/// Header a cookie-authenticated, state-changing request carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a login session lives: 7 days.
pub const SESSION_MAX_AGE_SECS: i64 = 7 * 24 * 60 * 60;

/// Environment variable that gives the CLI an API token, overriding the saved one.
pub const API_TOKEN_ENV: &str = "IDLEFARM_API_TOKEN";

/// Log in (`POST`), show the session (`GET`), log out (`DELETE`).
pub const SESSION_PATH: &str = "/session";
/// Create an API token (`POST`).
pub const TOKENS_PATH: &str = "/tokens";
/// Revoke the API token the request is authenticated with (`DELETE`).
pub const CURRENT_TOKEN_PATH: &str = "/tokens/current";
/// List (`GET`) and add (`POST`) users.
pub const USERS_PATH: &str = "/users";
/// Route pattern of one user (`DELETE`).
pub const USER_ROUTE: &str = "/users/{name}";
/// Route pattern of a user's password (`PUT`).
pub const USER_PASSWORD_ROUTE: &str = "/users/{name}/password";
/// List (`GET`) and create (`POST`) enrolment tokens.
pub const ENROLMENT_TOKENS_PATH: &str = "/enrolment-tokens";
/// Route pattern of one enrolment token (`DELETE` revokes it).
pub const ENROLMENT_TOKEN_ROUTE: &str = "/enrolment-tokens/{id}";
/// Read the audit log (`GET`, `?limit=N`, optionally `&actor=NAME&action=PREFIX&before=ID`:
/// see [`AuditFilter`]).
pub const AUDIT_PATH: &str = "/audit";
/// Choose a password with a one-time setup link's key (`POST` a [`SetupRequest`]; answers a
/// [`SessionInfo`] and sets the session cookie, like logging in).
pub const SETUP_PATH: &str = "/setup";
/// The web page a setup link opens (not under the API prefix): `/setup?key=KEY`.
pub const SETUP_PAGE: &str = "/setup";

/// Path of one user. User names are restricted to characters that need no escaping.
pub fn user_path(name: &str) -> String {
    format!("{USERS_PATH}/{name}")
}

/// Path of a user's password.
pub fn user_password_path(name: &str) -> String {
    format!("{USERS_PATH}/{name}/password")
}

/// Path of one enrolment token.
pub fn enrolment_token_path(id: i64) -> String {
    format!("{ENROLMENT_TOKENS_PATH}/{id}")
}

/// Path and query of the setup page for `key` (keys are `<id>.<hex>`, safe in a URL).
pub fn setup_page_path(key: &str) -> String {
    format!("{SETUP_PAGE}?key={key}")
}

/// Path of the newest `limit` audit entries.
pub fn audit_path(limit: u32) -> String {
    format!("{AUDIT_PATH}?limit={limit}")
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: all jobs, all PCs, users, enrolment tokens, the audit log.
    Admin,
    /// Submits jobs; sees and controls only their own; sees the farm's PCs.
    Submitter,
}

impl Role {
    /// The name used in the API, the database and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submitter => "submitter",
        }
    }

    /// The role a name stands for, if any.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "submitter" => Some(Role::Submitter),
            _ => None,
        }
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /session`: log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Who is logged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// The user.
    pub user: UserInfo,
    /// The session's CSRF token, to send in [`CSRF_HEADER`]; `None` when the request was
    /// authenticated by an API token (which needs none).
    pub csrf_token: Option<String>,
}

/// `POST /tokens`: trade a name and password for an API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
    /// What the token is for, e.g. `idlefarm CLI on lab-pc-3` (1-100 characters).
    pub label: String,
}

/// A new API token; shown once, send it as `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The token.
    pub token: String,
    /// Whose it is.
    pub user: UserInfo,
}

/// `POST /users`: add a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    /// Login name: 1-64 of `a-z A-Z 0-9 . _ -`.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Their password (at least 8 characters); one is generated when omitted.
    #[serde(default)]
    pub password: Option<String>,
}

/// The user added, with the generated password if there is one (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUserResponse {
    /// The user.
    pub user: UserInfo,
    /// The generated password, when none was given.
    pub password: Option<String>,
}

/// `PATCH /users/{name}`: change a user's role (answers the [`UserInfo`]). The last admin
/// cannot be made a submitter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleChange {
    /// Their new role.
    pub role: Role,
}

/// `POST /setup`: choose a password with a setup link's key; the browser is then logged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupRequest {
    /// The key from the link (`/setup?key=KEY`).
    pub key: String,
    /// The new password (at least 8 characters).
    pub password: String,
}

/// `PUT /users/{name}/password`: set a password.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordChange {
    /// The new password (at least 8 characters); one is generated when omitted.
    #[serde(default)]
    pub password: Option<String>,
}

/// The generated password, if one was made (shown once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResponse {
    /// The generated password, when none was given.
    pub password: Option<String>,
}

/// `POST /enrolment-tokens`: make a token agents can enrol with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEnrolmentToken {
    /// Seconds until it stops enrolling agents; never when omitted.
    #[serde(default)]
    pub expires_secs: Option<u64>,
}

/// A new enrolment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEnrolmentToken {
    /// Id (for `token revoke`).
    pub id: i64,
    /// The token to give `idlefarm-agent --token`.
    pub token: String,
    /// Unix seconds when it stops enrolling agents.
    pub expires_at: Option<i64>,
}

/// An enrolment token as admins see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentTokenInfo {
    /// Id.
    pub id: i64,
    /// The token.
    pub token: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds when it stops (stopped) enrolling agents.
    pub expires_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
}

impl EnrolmentTokenInfo {
    /// Whether it still enrols agents at `now` (unix seconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// One entry of the audit log: who did what, on what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: a user name, `local:<unix user>` for `--data` commands, or `system`.
    pub actor: String,
    /// What, e.g. `user.add`, `session.login`.
    pub action: String,
    /// On what, e.g. a user name or a token id.
    pub target: String,
    /// More about it.
    pub detail: String,
}

/// Which audit entries to show (the query of `GET /audit` and of the admin page): the newest
/// `limit` entries with an id below `before`, by `actor`, whose action is `action` or starts with
/// `action.` (so `user` finds `user.add` and `user.remove`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditFilter {
    /// Most entries to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only entries with an id below this (the next page after an entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// Only this actor's entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Only this action, or the actions under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_lowercase_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&Role::Submitter).unwrap(),
            "\"submitter\""
        );
        for role in [Role::Admin, Role::Submitter] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json.trim_matches('"'), role.as_str());
        }
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
        assert_eq!(Role::parse("Admin"), None);
    }

    #[test]
    fn paths_are_built_from_the_route_patterns() {
        assert_eq!(user_path("ada"), USER_ROUTE.replace("{name}", "ada"));
        assert_eq!(
            user_password_path("ada"),
            USER_PASSWORD_ROUTE.replace("{name}", "ada")
        );
        assert_eq!(
            enrolment_token_path(7),
            ENROLMENT_TOKEN_ROUTE.replace("{id}", "7")
        );
        assert_eq!(audit_path(5), "/audit?limit=5");
        assert_eq!(setup_page_path("3.ab"), "/setup?key=3.ab");
    }

    #[test]
    fn enrolment_tokens_are_live_until_revoked_or_expired() {
        let t = EnrolmentTokenInfo {
            id: 1,
            token: "t".into(),
            created_at: 100,
            expires_at: Some(200),
            revoked_at: None,
        };
        assert!(t.is_live(199));
        assert!(!t.is_live(200));
        let revoked = EnrolmentTokenInfo {
            revoked_at: Some(150),
            expires_at: None,
            ..t
        };
        assert!(!revoked.is_live(120));
    }
}
