//! Accounts over real HTTP on 127.0.0.1 with a real SQLite database, one submodule per concern:
//! logins and CSRF (`sessions`), roles and users (`users`, `roles`), setup links (`setup`),
//! enrolment tokens, malformed input and the CLI. Here: the helpers they share.

mod audit_log;
mod cli;
mod enrolment;
mod malformed;
mod roles;
mod sessions;
mod setup;
mod users;

use idlefarm_protocol::accounts::{AuditEntry, CSRF_HEADER, SESSION_COOKIE, SessionInfo};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Farm;

/// A browser's login: the cookie header value and the CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    session_id: i64,
}

/// Logs in like the web page does; panics unless it works.
async fn browser_login(farm: &Farm, name: &str, password: &str) -> Browser {
    let res = reqwest::Client::new()
        .post(farm.client.url("/session"))
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap();
    let value = pair
        .strip_prefix(&format!("{SESSION_COOKIE}="))
        .expect("the session cookie");
    let info: SessionInfo = res.json().await.unwrap();
    assert_eq!(info.user.name, name);
    Browser {
        cookie: pair.to_owned(),
        csrf: info.csrf_token.expect("a cookie session has a CSRF token"),
        session_id: value.split('.').next().unwrap().parse().unwrap(),
    }
}

/// Sends a request with optional cookie, CSRF header and bearer token; returns status and body.
async fn send(
    farm: &Farm,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, farm.client.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(t) = csrf {
        req = req.header(CSRF_HEADER, t);
    }
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An API token for a user, made through the API.
async fn api_token(farm: &Farm, name: &str, password: &str) -> String {
    farm.client
        .create_api_token(name, password, "tests")
        .await
        .unwrap()
        .token
}

async fn audit(farm: &Farm) -> Vec<AuditEntry> {
    farm.store().await.audit_log(1000).await.unwrap()
}

async fn user_names(farm: &Farm) -> Vec<String> {
    let users = farm.store().await.users().await.unwrap();
    users.into_iter().map(|u| u.name).collect()
}
