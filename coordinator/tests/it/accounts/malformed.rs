//! Malformed input to every account endpoint gets a 4xx with a message, and changes nothing.

use idlefarm_protocol::accounts::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{api_token, audit, send, user_names};
use crate::common::Farm;

/// A raw body: (content type, bytes).
async fn send_raw(
    farm: &Farm,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &'static str,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, farm.client.url(path))
        .bearer_auth(token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_account_requests_get_4xx_and_change_nothing() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("root", Role::Admin).await;
    let token = api_token(&farm, "root", &password).await;
    let tokens_before = farm.store().await.enrolment_tokens().await.unwrap().len();
    let audit_before = audit(&farm).await.len();

    let json_cases: Vec<(Method, &str, Value, u16)> = vec![
        (Method::POST, "/session", json!({}), 422),
        (
            Method::POST,
            "/session",
            json!({ "name": 1, "password": "x" }),
            422,
        ),
        (Method::POST, "/session", json!([]), 422),
        (
            Method::POST,
            "/tokens",
            json!({ "name": "root", "password": password }),
            422,
        ),
        (
            Method::POST,
            "/tokens",
            json!({ "name": "root", "password": password, "label": " " }),
            400,
        ),
        (
            Method::POST,
            "/tokens",
            json!({ "name": "root", "password": password, "label": "x".repeat(101) }),
            400,
        ),
        (
            Method::POST,
            "/tokens",
            json!({ "name": "root", "password": password, "label": "a\nb" }),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "", "role": "admin" }),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "a b", "role": "submitter" }),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "../x", "role": "submitter" }),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "x", "role": "root" }),
            422,
        ),
        (Method::POST, "/users", json!({ "name": "x" }), 422),
        (
            Method::POST,
            "/users",
            json!({ "name": "x", "role": "admin", "password": "short" }),
            400,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "x", "role": "admin", "password": 12345678 }),
            422,
        ),
        (
            Method::POST,
            "/users",
            json!({ "name": "root", "role": "admin" }),
            409,
        ),
        (Method::DELETE, "/users/nobody", Value::Null, 404),
        (Method::PUT, "/users/nobody/password", json!({}), 404),
        (
            Method::PUT,
            "/users/root/password",
            json!({ "password": "short" }),
            400,
        ),
        (
            Method::PUT,
            "/users/root/password",
            json!({ "password": ["x"] }),
            422,
        ),
        (
            Method::POST,
            "/enrolment-tokens",
            json!({ "expires_secs": 0 }),
            400,
        ),
        (
            Method::POST,
            "/enrolment-tokens",
            json!({ "expires_secs": -5 }),
            422,
        ),
        (
            Method::POST,
            "/enrolment-tokens",
            json!({ "expires_secs": "7d" }),
            422,
        ),
        (
            Method::POST,
            "/enrolment-tokens",
            json!({ "expires_secs": 1_000_000_000_000u64 }),
            400,
        ),
        (Method::DELETE, "/enrolment-tokens/abc", Value::Null, 400),
        (Method::DELETE, "/enrolment-tokens/999", Value::Null, 404),
        (Method::GET, "/audit?limit=abc", Value::Null, 400),
        (Method::GET, "/audit?limit=0", Value::Null, 400),
        (Method::GET, "/audit?limit=100001", Value::Null, 400),
        (Method::GET, "/audit?limit=-1", Value::Null, 400),
        (Method::DELETE, "/session", Value::Null, 400),
        (Method::PATCH, "/users", json!({}), 405),
    ];
    for (method, path, body, want) in json_cases {
        let body = (!body.is_null()).then_some(body);
        let (status, res) = send(
            &farm,
            method.clone(),
            path,
            None,
            None,
            Some(&token),
            body.clone(),
        )
        .await;
        assert_eq!(status.as_u16(), want, "{method} {path} {body:?}: {res}");
        if want != 405 {
            let message = res["error"].as_str().unwrap_or_default();
            assert!(
                message.len() > 10,
                "{method} {path}: a message a person can act on: {res}"
            );
        }
    }

    let raw_cases: Vec<(Method, &str, Option<&str>, &'static str, u16)> = vec![
        (
            Method::POST,
            "/session",
            Some("application/json"),
            "{not json",
            400,
        ),
        (
            Method::POST,
            "/session",
            None,
            r#"{"name":"root","password":"x"}"#,
            415,
        ),
        (Method::POST, "/tokens", Some("application/json"), "", 400),
        (
            Method::POST,
            "/users",
            Some("text/plain"),
            r#"{"name":"x","role":"admin"}"#,
            415,
        ),
        (
            Method::PUT,
            "/users/root/password",
            Some("application/json"),
            "null",
            422,
        ),
        (
            Method::POST,
            "/enrolment-tokens",
            Some("application/json"),
            "{\"expires_secs\":",
            400,
        ),
    ];
    for (method, path, ct, body, want) in raw_cases {
        let (status, res) = send_raw(&farm, method.clone(), path, &token, ct, body).await;
        assert_eq!(status.as_u16(), want, "{method} {path} {body:?}: {res}");
        assert!(
            res["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{res}"
        );
    }

    assert_eq!(
        user_names(&farm).await,
        ["root"],
        "no user added or removed"
    );
    assert_eq!(
        farm.store().await.enrolment_tokens().await.unwrap().len(),
        tokens_before,
        "no enrolment token made"
    );
    let after = audit(&farm).await;
    assert_eq!(
        after.len(),
        audit_before,
        "nothing audited: {:?}",
        after.first()
    );
    api_token(&farm, "root", &password).await;
    farm.stop().await;
}
