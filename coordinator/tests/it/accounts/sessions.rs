//! Browser logins: the session cookie's attributes, logout, wrong passwords, expired and forged
//! cookies, and CSRF protection of cookie-authenticated requests that change state.

use idlefarm_protocol::accounts::{Role, SESSION_COOKIE, SessionInfo, UserInfo};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{api_token, audit, browser_login, send, user_names};
use crate::common::Farm;

#[tokio::test]
async fn a_login_cookie_works_until_logout() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("ada", Role::Admin).await;

    let res = reqwest::Client::new()
        .post(farm.client.url("/session"))
        .json(&json!({ "name": "ada", "password": password }))
        .send()
        .await
        .unwrap();
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let behind_tls = reqwest::Client::new()
        .post(farm.client.url("/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "name": "ada", "password": password }))
        .send()
        .await
        .unwrap();
    let set_cookie = behind_tls.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");

    let b = browser_login(&farm, "ada", &password).await;
    let (status, who) = send(
        &farm,
        Method::GET,
        "/session",
        Some(&b.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let who: SessionInfo = serde_json::from_value(who).unwrap();
    assert_eq!(
        (who.user.name.as_str(), who.user.role),
        ("ada", Role::Admin)
    );
    assert_eq!(who.csrf_token.as_deref(), Some(b.csrf.as_str()));
    let (status, users) = send(
        &farm,
        Method::GET,
        "/users",
        Some(&b.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a GET needs no CSRF token");
    let users: Vec<UserInfo> = serde_json::from_value(users).unwrap();
    assert_eq!(users.len(), 1);

    let (status, _) = send(
        &farm,
        Method::DELETE,
        "/session",
        Some(&b.cookie),
        Some(&b.csrf),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &farm,
        Method::GET,
        "/session",
        Some(&b.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("idlefarm login"),
        "{body}"
    );

    let actions: Vec<String> = audit(&farm).await.into_iter().map(|e| e.action).collect();
    assert!(actions.contains(&"session.login".to_owned()), "{actions:?}");
    assert!(
        actions.contains(&"session.logout".to_owned()),
        "{actions:?}"
    );
    farm.stop().await;
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_get_the_same_401() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("ada", Role::Submitter).await;
    let before = audit(&farm).await.len();
    let mut messages = Vec::new();
    for (name, pw) in [("ada", "wrong-password"), ("nobody", password.as_str())] {
        let body = json!({ "name": name, "password": pw });
        let (status, res) = send(
            &farm,
            Method::POST,
            "/session",
            None,
            None,
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        messages.push(res["error"].clone());
        let body = json!({ "name": name, "password": pw, "label": "cli" });
        let (status, res) =
            send(&farm, Method::POST, "/tokens", None, None, None, Some(body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        messages.push(res["error"].clone());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
    let after = audit(&farm).await;
    assert_eq!(after.len(), before + 4, "each refusal is audited");
    assert!(
        after[..4]
            .iter()
            .all(|e| e.action == "session.login-failed")
    );
    farm.stop().await;
}

#[tokio::test]
async fn expired_and_forged_cookies_are_refused() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("ada", Role::Admin).await;
    let expired = browser_login(&farm, "ada", &password).await;
    let store = farm.store().await;
    store
        .set_session_expiry(expired.session_id, 1_000)
        .await
        .unwrap();
    let (status, _) = send(
        &farm,
        Method::GET,
        "/session",
        Some(&expired.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");

    let good = browser_login(&farm, "ada", &password).await;
    let id = good.session_id;
    let forged = [
        format!("{SESSION_COOKIE}={id}.{}", "0".repeat(64)),
        format!("{SESSION_COOKIE}={}.{}", id + 1, "0".repeat(64)),
        format!("{SESSION_COOKIE}=garbage"),
        format!("{SESSION_COOKIE}="),
    ];
    for cookie in &forged {
        let (status, _) = send(&farm, Method::GET, "/users", Some(cookie), None, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{cookie}");
    }
    let (status, _) = send(
        &farm,
        Method::GET,
        "/users",
        Some(&good.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the real cookie still works");
    let (status, _) = send(&farm, Method::GET, "/users", None, None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no credentials");
    farm.stop().await;
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_token() {
    let farm = Farm::start_bare(|_| {}).await;
    let password = farm.add_user("ada", Role::Admin).await;
    let b = browser_login(&farm, "ada", &password).await;
    let eve = || Some(json!({ "name": "eve", "role": "submitter" }));

    let audit_before = audit(&farm).await.len();
    for csrf in [None, Some("wrong"), Some("")] {
        let (status, body) = send(
            &farm,
            Method::POST,
            "/users",
            Some(&b.cookie),
            csrf,
            None,
            eve(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{csrf:?}");
        assert!(body["error"].as_str().unwrap().contains("CSRF"), "{body}");
    }
    let (status, _) = send(
        &farm,
        Method::DELETE,
        "/session",
        Some(&b.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "logout needs it too");
    assert_eq!(user_names(&farm).await, ["ada"], "nothing changed");
    assert_eq!(audit(&farm).await.len(), audit_before, "nothing audited");
    let (status, _) = send(
        &farm,
        Method::GET,
        "/session",
        Some(&b.cookie),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "still logged in");

    let (status, _) = send(
        &farm,
        Method::POST,
        "/users",
        Some(&b.cookie),
        Some(&b.csrf),
        None,
        eve(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = api_token(&farm, "ada", &password).await;
    let bob = Some(json!({ "name": "bob", "role": "submitter" }));
    let (status, _) = send(&farm, Method::POST, "/users", None, None, Some(&token), bob).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a bearer request needs no CSRF token"
    );
    assert_eq!(user_names(&farm).await, ["ada", "bob", "eve"]);
    farm.stop().await;
}
