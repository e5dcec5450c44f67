//! The admin page (`/admin`, admins only): the users with their logins and the actions on them
//! (add, remove, reset password, change role), and the audit log, newest first, filtered by actor
//! or action and paged with `before`, all kept in the URL. Every action is a form that
//! `forms.js` sends to the account API the CLI uses; the page itself only reads.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::Uri;
use idlefarm_protocol::accounts::{
    AuditEntry, AuditFilter, USERS_PATH, user_password_path, user_path,
};
use idlefarm_protocol::routes::API_PREFIX;
use serde::Deserialize;

use super::chrome::{Chrome, Nav, PageCaller, PageResult, render};
use super::stamp::Stamp;
use crate::accounts;
use crate::error::ApiError;
use crate::server::Coordinator;

/// Route of the admin page.
pub const ADMIN_PAGE: &str = "/admin";

/// Audit entries per page.
const AUDIT_PAGE_SIZE: u32 = 50;

/// The page's query: a live region (`part`) and the audit filter.
#[derive(Debug, Default, Deserialize)]
pub struct AdminQuery {
    part: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

/// A user as the table shows them, with the API paths of the actions on them.
struct UserView {
    name: String,
    role: &'static str,
    created: Stamp,
    sessions: i64,
    api_tokens: i64,
    /// Whether this is the person looking (marked "you", so nobody demotes themselves unaware).
    is_you: bool,
    /// `DELETE` removes, `PATCH` changes the role.
    user_url: String,
    /// `PUT` sets the password.
    password_url: String,
}

/// An audit entry as the log shows it.
struct AuditView {
    at: Stamp,
    entry: AuditEntry,
}

/// The users region (`?part=users`).
#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPart {
    users: Vec<UserView>,
}

/// The audit region (`?part=audit`).
#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPart {
    audit: AuditLog,
}

/// The audit log as filtered, with the filter's choices and paging.
struct AuditLog {
    entries: Vec<AuditView>,
    actor: String,
    action: String,
    actors: Vec<String>,
    actions: Vec<String>,
    /// The region's own URL (this filter and page, `part=audit`).
    src: String,
    /// The next (older) page, when there may be one.
    more: Option<String>,
    /// Whether this is a later page (so "newest" links back).
    paged: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    users_url: String,
    users: Vec<UserView>,
    audit: AuditLog,
}

/// `GET /admin`, or one of its regions with `?part=users|audit`.
pub async fn page(
    State(coord): State<Arc<Coordinator>>,
    PageCaller(caller): PageCaller,
    uri: Uri,
    query: Result<Query<AdminQuery>, QueryRejection>,
) -> PageResult {
    caller.require_admin_to("see the admin page")?;
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "malformed address: {}; the admin page takes actor=NAME, action=NAME and before=ID",
            e.body_text()
        ))
    })?;
    let part = query.part.clone();
    match part.as_deref() {
        None => {}
        Some("users") => {
            return render(&UsersPart {
                users: users(&coord, &caller.name).await?,
            });
        }
        Some("audit") => {
            return render(&AuditPart {
                audit: audit(&coord, query, uri.query().unwrap_or("")).await?,
            });
        }
        Some(other) => {
            return Err(ApiError::not_found(format!(
                "the admin page has no part `{other}`; use users or audit"
            ))
            .into());
        }
    }
    render(&AdminPage {
        chrome: Chrome::new(&caller, Nav::Admin),
        users_url: format!("{API_PREFIX}{USERS_PATH}"),
        users: users(&coord, &caller.name).await?,
        audit: audit(&coord, query, uri.query().unwrap_or("")).await?,
    })
}

async fn users(coord: &Coordinator, you: &str) -> Result<Vec<UserView>, ApiError> {
    let rows = coord.store.users_with_logins(accounts::now_secs()).await?;
    Ok(rows
        .into_iter()
        .map(|u| UserView {
            role: u.user.role.as_str(),
            created: Stamp::at(u.user.created_at),
            sessions: u.sessions,
            api_tokens: u.api_tokens,
            is_you: u.user.name == you,
            user_url: format!("{API_PREFIX}{}", user_path(&u.user.name)),
            password_url: format!("{API_PREFIX}{}", user_password_path(&u.user.name)),
            name: u.user.name,
        })
        .collect())
}

async fn audit(coord: &Coordinator, q: AdminQuery, raw_query: &str) -> Result<AuditLog, ApiError> {
    let filter = accounts::check_audit_filter(AuditFilter {
        // One more than shown tells whether there is an older page.
        limit: Some(AUDIT_PAGE_SIZE + 1),
        before: q.before,
        actor: q.actor,
        action: q.action,
    })?;
    let mut entries = coord.store.audit_entries(&filter).await?;
    let has_more = entries.len() > AUDIT_PAGE_SIZE as usize;
    entries.truncate(AUDIT_PAGE_SIZE as usize);
    let (actors, actions) = coord.store.audit_names().await?;
    // The browser encoded the filter already: the links keep its pairs as they came.
    let kept = without(raw_query, &["part", "before"]);
    let more = match entries.last() {
        Some(last) if has_more => Some(page_url(&kept, &format!("before={}", last.id))),
        _ => None,
    };
    let src = page_url(&without(raw_query, &["part"]), "part=audit");
    Ok(AuditLog {
        entries: entries
            .into_iter()
            .map(|entry| AuditView {
                at: Stamp::at(entry.at),
                entry,
            })
            .collect(),
        actor: filter.actor.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        actors,
        actions,
        src,
        more,
        paged: filter.before.is_some(),
    })
}

/// The pairs of a raw query string except those named in `drop`.
fn without(raw_query: &str, drop: &[&str]) -> Vec<String> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !drop.contains(&pair.split('=').next().unwrap_or("")))
        .map(str::to_owned)
        .collect()
}

/// The admin page's URL with the `kept` pairs and `extra`.
fn page_url(kept: &[String], extra: &str) -> String {
    let mut pairs = kept.to_vec();
    pairs.push(extra.to_owned());
    format!("{ADMIN_PAGE}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_links_keep_the_filter_and_replace_the_page() {
        let raw = "actor=local%3Aroot&before=90&part=audit&action=user";
        let kept = without(raw, &["part", "before"]);
        assert_eq!(
            page_url(&kept, "before=40"),
            "/admin?actor=local%3Aroot&action=user&before=40"
        );
        assert_eq!(
            page_url(&without("", &["part"]), "part=audit"),
            "/admin?part=audit"
        );
    }
}
