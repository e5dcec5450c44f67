//! First-run setup links (`POST /setup`): the key sets the admin's password once, within 24 h,
//! logs the browser in like `POST /session`, and is audited; wrong, used, expired and replaced
//! keys and bad passwords are refused without using the key up.

use idlefarm_coordinator::accounts;
use idlefarm_coordinator::cli::first_run_notice;
use idlefarm_protocol::accounts::{SESSION_COOKIE, SessionInfo};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{audit, send};
use crate::common::Farm;

/// The setup key in the link of the banner the first start prints.
async fn first_start_key(farm: &Farm) -> String {
    let lines = first_run_notice(&farm.store().await, &farm.url)
        .await
        .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("admin login:")),
        "{lines:?}"
    );
    let link = lines
        .iter()
        .find(|l| l.contains("works once, for 24 h"))
        .expect("a setup link line");
    link.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{}/setup?key=", farm.url)))
        .expect("a link to this coordinator")
        .to_owned()
}

async fn post_setup(farm: &Farm, body: Value) -> (StatusCode, Value) {
    send(farm, Method::POST, "/setup", None, None, None, Some(body)).await
}

#[tokio::test]
async fn the_first_start_link_sets_the_admin_password_once_and_logs_in() {
    let farm = Farm::start_bare(|_| {}).await;
    let key = first_start_key(&farm).await;
    assert!(
        first_run_notice(&farm.store().await, &farm.url)
            .await
            .unwrap()
            .is_empty(),
        "later starts print no link"
    );

    let res = reqwest::Client::new()
        .post(farm.client.url("/setup"))
        .json(&json!({ "key": key, "password": "my own password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("{SESSION_COOKIE}=")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let info: SessionInfo = res.json().await.unwrap();
    assert_eq!(info.user.name, "admin");
    assert!(info.csrf_token.is_some());
    let pair = cookie.split(';').next().unwrap();
    let (status, body) = send(&farm, Method::GET, "/session", Some(pair), None, None, None).await;
    assert_eq!(
        (status, body["user"]["name"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    farm.client
        .create_api_token("admin", "my own password", "check")
        .await
        .expect("the chosen password works");

    let (status, body) = post_setup(&farm, json!({ "key": key, "password": "another one!" })).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    farm.client
        .create_api_token("admin", "my own password", "check")
        .await
        .expect("a used link changes nothing");

    let actions: Vec<_> = audit(&farm).await.into_iter().map(|e| e.action).collect();
    for want in ["setup-key.create", "setup-key.use", "setup-key.refused"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    farm.stop().await;
}

#[tokio::test]
async fn bad_keys_and_passwords_are_refused_without_using_the_link() {
    let farm = Farm::start_bare(|_| {}).await;
    let key = first_start_key(&farm).await;
    let (id, secret) = key.split_once('.').unwrap();
    let other_secret = format!("{id}.{}", "0".repeat(64));
    let other_id = format!("99.{secret}");
    for (body, want, says) in [
        (
            json!({ "key": key, "password": "short" }),
            StatusCode::BAD_REQUEST,
            "too short",
        ),
        (
            json!({ "key": key, "password": "x".repeat(1025) }),
            StatusCode::BAD_REQUEST,
            "too long",
        ),
        (
            json!({ "key": other_secret, "password": "long enough" }),
            StatusCode::NOT_FOUND,
            "not valid",
        ),
        (
            json!({ "key": other_id, "password": "long enough" }),
            StatusCode::NOT_FOUND,
            "not valid",
        ),
        (
            json!({ "key": "", "password": "long enough" }),
            StatusCode::NOT_FOUND,
            "not valid",
        ),
        (
            json!({ "key": "1.zz", "password": "long enough" }),
            StatusCode::NOT_FOUND,
            "not valid",
        ),
        (
            json!({ "key": key }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password",
        ),
        (
            json!({ "password": "long enough" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key",
        ),
        (
            json!({ "key": 5, "password": "long enough" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key",
        ),
    ] {
        let (status, answer) = post_setup(&farm, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {answer}");
    }
    let (status, _) = send(&farm, Method::POST, "/setup", None, None, None, None).await;
    assert!(status.is_client_error());

    // None of that used the link up.
    let (status, body) =
        post_setup(&farm, json!({ "key": key, "password": "finally right" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    farm.stop().await;
}

#[tokio::test]
async fn expired_and_replaced_links_are_refused() {
    let farm = Farm::start_bare(|_| {}).await;
    let first = first_start_key(&farm).await;
    let store = farm.store().await;
    let second = accounts::create_setup_key(&store, "test", None)
        .await
        .unwrap();
    assert_eq!(second.user, "admin");
    let (status, body) =
        post_setup(&farm, json!({ "key": first, "password": "long enough" })).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a newer link replaces the first: {body}"
    );

    let id: i64 = second.key.split('.').next().unwrap().parse().unwrap();
    store
        .set_setup_key_expiry(id, accounts::now_secs() - 1)
        .await
        .unwrap();
    let (status, body) = post_setup(
        &farm,
        json!({ "key": second.key, "password": "long enough" }),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert!(second.expires_at - accounts::now_secs() <= accounts::SETUP_KEY_LIFETIME_SECS);
    farm.stop().await;
}
