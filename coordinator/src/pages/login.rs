//! The login page. Its form signs in through the API (`POST /api/v1/session`), which sets the
//! session cookie, then returns to the page the person came from.

use askama::Template;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect};
use idlefarm_protocol::accounts::SESSION_PATH;
use idlefarm_protocol::routes::API_PREFIX;
use serde::Deserialize;

use super::chrome::{Chrome, PageResult, render};
use crate::server::OptionalCaller;

/// Route of the login page.
pub const LOGIN_PAGE: &str = "/login";

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `next` when it is a path on this site, else the overview: a login link can never send a
/// person elsewhere.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    session_url: String,
}

/// `GET /login`: the form, or straight on when already signed in.
pub async fn page(
    OptionalCaller(caller): OptionalCaller,
    Query(q): Query<LoginQuery>,
) -> PageResult {
    let next = local_path(q.next.as_deref());
    if caller.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    render(&LoginPage {
        chrome: Chrome::anonymous(),
        next,
        session_url: format!("{API_PREFIX}{SESSION_PATH}"),
    })
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/jobs/4")), "/jobs/4");
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example"),
            Some("/\\evil"),
            Some("jobs"),
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }
}
