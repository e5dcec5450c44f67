//! Changing roles (`PATCH /users/{name}`, `idlefarm user role`): admins only, audited, never
//! leaving the farm without an admin, malformed roles refused.

use idlefarm_protocol::accounts::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::cli::{idlefarm, stderr, stdout};
use super::{api_token, audit, send};
use crate::common::Farm;

#[tokio::test]
async fn an_admin_changes_roles_which_take_effect_at_once_and_are_audited() {
    let farm = Farm::start(|_| {}).await;
    let password = farm.add_user("bob", Role::Submitter).await;
    let bob = api_token(&farm, "bob", &password).await;
    let list_users = || send(&farm, Method::GET, "/users", None, None, Some(&bob), None);
    assert_eq!(list_users().await.0, StatusCode::FORBIDDEN);

    let made = farm.client.set_role("bob", Role::Admin).await.unwrap();
    assert_eq!((made.name.as_str(), made.role), ("bob", Role::Admin));
    let (status, body) = list_users().await;
    assert_eq!(
        status,
        StatusCode::OK,
        "bob's existing token is now an admin's: {body}"
    );

    // Two admins now: either may be made a submitter, even by themselves.
    let (status, body) = send(
        &farm,
        Method::PATCH,
        "/users/bob",
        None,
        None,
        Some(&bob),
        Some(json!({ "role": "submitter" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "submitter");
    assert_eq!(list_users().await.0, StatusCode::FORBIDDEN);

    let roles: Vec<_> = audit(&farm)
        .await
        .into_iter()
        .filter(|e| e.action == "user.role")
        .map(|e| (e.actor, e.target, e.detail))
        .collect();
    assert_eq!(
        roles,
        [
            (
                "bob".into(),
                "bob".into(),
                "role submitter (was admin)".into()
            ),
            (
                "admin".into(),
                "bob".into(),
                "role admin (was submitter)".into()
            ),
        ]
    );
    farm.stop().await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_and_submitters_cannot_promote_themselves() {
    let farm = Farm::start(|_| {}).await;
    let err = farm
        .client
        .set_role("admin", Role::Submitter)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("last admin") && err.contains("409"), "{err}");
    // Making the only admin an admin again changes nothing and is allowed.
    farm.client.set_role("admin", Role::Admin).await.unwrap();

    let password = farm.add_user("eve", Role::Submitter).await;
    let eve = api_token(&farm, "eve", &password).await;
    let (status, body) = send(
        &farm,
        Method::PATCH,
        "/users/eve",
        None,
        None,
        Some(&eve),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only an admin may change roles")
    );
    let users = farm.client.users().await.unwrap();
    let role_of = |n: &str| users.iter().find(|u| u.name == n).unwrap().role;
    assert_eq!(
        (role_of("admin"), role_of("eve")),
        (Role::Admin, Role::Submitter)
    );
    farm.stop().await;
}

#[tokio::test]
async fn malformed_role_changes_are_refused_and_change_nothing() {
    let farm = Farm::start(|_| {}).await;
    farm.add_user("bob", Role::Submitter).await;
    let token = farm.client.token().unwrap().to_owned();
    let before = audit(&farm).await.len();
    // Bodies that are not a role change: 422 (or 400 where serde stops early), with a message.
    for body in [
        json!({ "role": "root" }),
        json!({ "role": "Admin" }),
        json!({ "role": 1 }),
        json!({}),
        json!("admin"),
    ] {
        let (status, answer) = send(
            &farm,
            Method::PATCH,
            "/users/bob",
            None,
            None,
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY].contains(&status),
            "{body}: {status} {answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("malformed request body"),
            "{answer}"
        );
    }
    let (status, answer) = send(
        &farm,
        Method::PATCH,
        "/users/nobody",
        None,
        None,
        Some(&token),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nobody"),
        "{answer}"
    );
    let (status, answer) = send(
        &farm,
        Method::PATCH,
        "/users/bob",
        None,
        None,
        Some(&token),
        None,
    )
    .await;
    assert!(status.is_client_error(), "no body: {status} {answer}");
    let bob = farm
        .store()
        .await
        .user_by_name("bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.role, Role::Submitter);
    assert_eq!(audit(&farm).await.len(), before, "nothing audited");
    farm.stop().await;
}

#[tokio::test]
async fn the_cli_changes_roles_and_makes_setup_links_on_the_data_directory() {
    let farm = Farm::start(|_| {}).await;
    farm.add_user("bob", Role::Submitter).await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let data = farm.data();
    let dir = data.to_str().unwrap();

    let out = idlefarm(h, &["user", "role", "bob", "admin", "--data", dir], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("bob is now admin"),
        "{}",
        stdout(&out)
    );
    let out = idlefarm(h, &["user", "role", "bob", "root", "--data", dir], "").await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`root` is not a role"),
        "{}",
        stderr(&out)
    );
    let out = idlefarm(h, &["user", "role", "nobody", "admin", "--data", dir], "").await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no user called `nobody`"),
        "{}",
        stderr(&out)
    );
    let entry = audit(&farm)
        .await
        .into_iter()
        .find(|e| e.action == "user.role")
        .unwrap();
    assert!(entry.actor.starts_with("local:"), "{entry:?}");

    // A new link for a lost one: it works once, through the API.
    let out = idlefarm(
        h,
        &["user", "setup-link", "--data", dir, "--server", &farm.url],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("the password of admin"), "{printed}");
    let key = printed
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{}/setup?key=", farm.url)))
        .expect("a link to this coordinator's setup page")
        .to_owned();
    let setup = json!({ "key": key, "password": "a chosen password" });
    let (status, body) = send(&farm, Method::POST, "/setup", None, None, None, Some(setup)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    farm.client
        .create_api_token("admin", "a chosen password", "check")
        .await
        .expect("the chosen password works");

    // Over the API it is refused: whoever holds a link needs no password.
    let out = idlefarm(h, &["user", "setup-link", "--server", &farm.url], "").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--data DIR"), "{}", stderr(&out));
    let out = idlefarm(h, &["user", "setup-link", "carl", "--data", dir], "").await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no user called `carl`"),
        "{}",
        stderr(&out)
    );
    farm.stop().await;
}
