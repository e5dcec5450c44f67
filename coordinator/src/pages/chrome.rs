//! What every page shares: who is looking (a [`PageCaller`], or a redirect to the login page),
//! the layout's data ([`Chrome`]: navigation, the user, the CSRF token for the page's forms),
//! rendering a template, and error pages.

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::assets;
use super::login::LOGIN_PAGE;
use crate::error::ApiError;
use crate::server::{Caller, Coordinator, OptionalCaller};

/// A signed-in person looking at a page. Without a login the page answers with a redirect to
/// the login page, which comes back here afterwards.
pub struct PageCaller(pub Caller);

impl FromRequestParts<Arc<Coordinator>> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        coord: &Arc<Coordinator>,
    ) -> Result<Self, Response> {
        match OptionalCaller::from_request_parts(parts, coord).await {
            Ok(OptionalCaller(Some(caller))) => Ok(PageCaller(caller)),
            Ok(OptionalCaller(None)) => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                Err(Redirect::to(&login_url(&here)).into_response())
            }
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// The login page's URL that returns to `next` (a local path) afterwards.
pub fn login_url(next: &str) -> String {
    if next == "/" {
        return LOGIN_PAGE.to_owned();
    }
    let mut url = format!("{LOGIN_PAGE}?next=");
    url.extend(form_urlencoded_byte_serialize(next));
    url
}

/// Percent-encodes everything but unreserved characters and `/`.
fn form_urlencoded_byte_serialize(s: &str) -> impl Iterator<Item = String> + '_ {
    s.bytes().map(|b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        }
    })
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // until every page exists
pub enum Nav {
    Overview,
    Submit,
    Jobs,
    Farm,
    Admin,
    /// Pages outside the navigation (login, errors).
    None,
}

impl Nav {
    fn name(self) -> &'static str {
        match self {
            Nav::Overview => "overview",
            Nav::Submit => "submit",
            Nav::Jobs => "jobs",
            Nav::Farm => "farm",
            Nav::Admin => "admin",
            Nav::None => "",
        }
    }
}

/// The layout's data: every page template has a `chrome` field.
pub struct Chrome {
    /// Login name, empty when nobody is signed in.
    pub user: String,
    /// `admin` or `submitter`.
    pub role: &'static str,
    /// Whether admin entries are shown.
    pub is_admin: bool,
    /// The session's CSRF token, read by `forms.js` from a `<meta>` tag.
    pub csrf: String,
    /// The static files' version, for cache-busting links.
    pub version: &'static str,
    /// The current navigation entry.
    pub nav: Nav,
}

impl Chrome {
    /// The layout for `caller` on a page under `nav`.
    pub fn new(caller: &Caller, nav: Nav) -> Chrome {
        Chrome {
            user: caller.name.clone(),
            role: caller.role.as_str(),
            is_admin: caller.is_admin(),
            csrf: caller.csrf_token.clone().unwrap_or_default(),
            version: &assets::VERSION,
            nav,
        }
    }

    /// The layout for a page nobody is signed in to.
    pub fn anonymous() -> Chrome {
        Chrome {
            user: String::new(),
            role: "",
            is_admin: false,
            csrf: String::new(),
            version: &assets::VERSION,
            nav: Nav::None,
        }
    }

    /// `aria-current` for the navigation entry named `nav` (`overview`, `jobs`...): `page`
    /// when it is this page's.
    pub fn current(&self, nav: &str) -> &'static str {
        if nav == self.nav.name() {
            "page"
        } else {
            "false"
        }
    }
}

/// A page, or the error page.
pub type PageResult = Result<Response, PageError>;

/// Renders a page template.
pub fn render(template: &impl Template) -> PageResult {
    let html = template.render().map_err(ApiError::internal)?;
    Ok(Html(html).into_response())
}

/// Something a page could not show: rendered as a page with the status and the message.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        let page = ErrorPage {
            chrome: Chrome::anonymous(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: &self.0.message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, self.0.message).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_links_return_to_the_page() {
        assert_eq!(login_url("/"), "/login");
        assert_eq!(
            login_url("/jobs?state=running&owner=a b"),
            "/login?next=/jobs%3Fstate%3Drunning%26owner%3Da%20b"
        );
    }
}
