//! Users and roles: what submitters may not do, changing passwords, removed users, the last
//! admin, the audit log, and the first start's admin and local CLI login.

use idlefarm_protocol::accounts::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{api_token, audit, browser_login, send, user_names};
use crate::common::Farm;

#[tokio::test]
async fn logins_of_a_removed_user_stop_working() {
    let farm = Farm::start_bare(|_| {}).await;
    let admin = farm.client_as("root", Role::Admin).await;
    let password = farm.add_user("bob", Role::Submitter).await;
    let token = api_token(&farm, "bob", &password).await;
    let b = browser_login(&farm, "bob", &password).await;
    let (status, _) = send(
        &farm,
        Method::GET,
        "/session",
        None,
        None,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    admin.remove_user("bob").await.unwrap();
    let (status, body) = send(
        &farm,
        Method::GET,
        "/session",
        None,
        None,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
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
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let err = admin.remove_user("bob").await.unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("bob"), "{err}");
    farm.stop().await;
}

#[tokio::test]
async fn submitters_cannot_manage_accounts_but_can_change_their_password() {
    let farm = Farm::start_bare(|_| {}).await;
    let admin = farm.client_as("root", Role::Admin).await;
    let password = farm.add_user("sub", Role::Submitter).await;
    let token = api_token(&farm, "sub", &password).await;
    let other_token = api_token(&farm, "sub", &password).await;
    let t = Some(token.as_str());
    let refused = [
        (Method::GET, "/users", None),
        (
            Method::POST,
            "/users",
            Some(json!({ "name": "x", "role": "admin" })),
        ),
        (Method::DELETE, "/users/root", None),
        (Method::PUT, "/users/root/password", Some(json!({}))),
        (Method::GET, "/enrolment-tokens", None),
        (Method::POST, "/enrolment-tokens", Some(json!({}))),
        (Method::DELETE, "/enrolment-tokens/1", None),
        (Method::GET, "/audit", None),
    ];
    let audit_before = audit(&farm).await.len();
    for (method, path, body) in refused {
        let (status, res) = send(&farm, method.clone(), path, None, None, t, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(
            res["error"]
                .as_str()
                .unwrap()
                .starts_with("only an admin may"),
            "{res}"
        );
    }
    assert_eq!(audit(&farm).await.len(), audit_before, "nothing changed");
    assert_eq!(user_names(&farm).await, ["root", "sub"]);

    let new = json!({ "password": "a-new-password" });
    let (status, res) = send(
        &farm,
        Method::PUT,
        "/users/sub/password",
        None,
        None,
        t,
        Some(new),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["password"], Value::Null, "none generated");
    let (status, _) = send(&farm, Method::GET, "/session", None, None, t, None).await;
    assert_eq!(status, StatusCode::OK, "the token used stays valid");
    let (status, _) = send(
        &farm,
        Method::GET,
        "/session",
        None,
        None,
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "other logins end");
    api_token(&farm, "sub", "a-new-password").await;

    let generated = admin.set_password("sub", None).await.unwrap().unwrap();
    let (status, _) = send(&farm, Method::GET, "/session", None, None, t, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an admin's reset ends every login"
    );
    api_token(&farm, "sub", &generated).await;
    farm.stop().await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let farm = Farm::start_bare(|_| {}).await;
    let root = farm.client_as("root", Role::Admin).await;
    let err = root.remove_user("root").await.unwrap_err().to_string();
    assert!(err.contains("409") && err.contains("last admin"), "{err}");
    assert_eq!(user_names(&farm).await, ["root"]);

    let added = root
        .add_user(&idlefarm_protocol::accounts::NewUser {
            name: "second".into(),
            role: Role::Admin,
            password: Some("second-admin-pw".into()),
        })
        .await
        .unwrap();
    assert_eq!(added.password, None, "the given password is not echoed");
    root.remove_user("root").await.unwrap();
    let second = farm
        .client
        .clone()
        .with_token(Some(api_token(&farm, "second", "second-admin-pw").await));
    let err = second.remove_user("second").await.unwrap_err().to_string();
    assert!(err.contains("last admin"), "{err}");
    assert_eq!(user_names(&farm).await, ["second"]);
    farm.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_newest_first_and_says_who() {
    let farm = Farm::start_bare(|_| {}).await;
    let root = farm.client_as("root", Role::Admin).await;
    let sub = idlefarm_protocol::accounts::NewUser {
        name: "sub".into(),
        role: Role::Submitter,
        password: None,
    };
    root.add_user(&sub).await.unwrap();
    root.remove_user("sub").await.unwrap();
    let entries = root.audit(2).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        (
            entries[0].action.as_str(),
            entries[0].actor.as_str(),
            entries[0].target.as_str()
        ),
        ("user.remove", "root", "sub")
    );
    assert_eq!(entries[1].action, "user.add");
    assert!(entries[0].id > entries[1].id);
    let all = root.audit(100).await.unwrap();
    assert_eq!(
        all.last().unwrap().action,
        "user.add",
        "root was added first"
    );
    farm.stop().await;
}

#[tokio::test]
async fn first_start_makes_one_admin_and_logs_the_local_cli_in() {
    let farm = Farm::start_bare(|_| {}).await;
    let store = farm.store().await;
    let (name, password) = idlefarm_coordinator::accounts::first_run_admin(&store)
        .await
        .unwrap()
        .expect("an empty farm gets an admin");
    assert_eq!(name, "admin");
    assert!(password.len() >= 16, "{password}");
    assert!(
        idlefarm_coordinator::accounts::first_run_admin(&store)
            .await
            .unwrap()
            .is_none(),
        "only once"
    );
    api_token(&farm, "admin", &password).await;

    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("idlefarm/credentials.toml");
    let saved = |path: std::path::PathBuf| {
        let creds = idlefarm_coordinator::accounts::credentials::Credentials::load(&path).unwrap();
        creds.get(&farm.url).expect("saved for the URL").clone()
    };
    idlefarm_coordinator::accounts::save_local_login(&store, &farm.url, &path)
        .await
        .unwrap();
    let first = saved(path.clone());
    assert_eq!(first.user, "admin");
    let client = farm.client.clone().with_token(Some(first.token.clone()));
    assert_eq!(client.whoami().await.unwrap().user.name, "admin");

    // Every `up` logs in again, replacing its previous token rather than piling them up.
    idlefarm_coordinator::accounts::save_local_login(&store, &farm.url, &path)
        .await
        .unwrap();
    let second = saved(path);
    assert_ne!(first.token, second.token);
    assert!(client.whoami().await.is_err(), "the old token is replaced");
    let client = farm.client.clone().with_token(Some(second.token));
    assert_eq!(client.whoami().await.unwrap().user.role, Role::Admin);
    farm.stop().await;
}
