//! Enrolment tokens: made, listed, revoked and expired through the API; a revoked or expired
//! token enrols nothing while the agents it enrolled keep working.

use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::{HeartbeatRequest, PresenceState, RegisterRequest, RegisterResponse};
use reqwest::StatusCode;

use crate::common::Farm;

/// Tries to enrol an agent with `token`; its credentials when that works.
async fn enrol(farm: &Farm, token: &str) -> Result<RegisterResponse, StatusCode> {
    let req = RegisterRequest {
        token: token.to_owned(),
        name: "pc".into(),
        renderers: vec![],
    };
    let res = reqwest::Client::new()
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_REGISTER))
        .json(&req)
        .send()
        .await
        .unwrap();
    match res.status() {
        StatusCode::OK => Ok(res.json().await.unwrap()),
        status => Err(status),
    }
}

async fn heartbeat(farm: &Farm, agent: &RegisterResponse) -> StatusCode {
    let hb = HeartbeatRequest {
        presence: PresenceState::Idle,
        leases: vec![],
    };
    reqwest::Client::new()
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_HEARTBEAT))
        .bearer_auth(format!("{}.{}", agent.agent_id, agent.secret))
        .json(&hb)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn revoked_and_expired_enrolment_tokens_enrol_nothing() {
    let farm = Farm::start_bare(|_| {}).await;
    let admin = farm.client_as("root", Role::Admin).await;

    let made = admin.create_enrolment_token(None).await.unwrap();
    assert_eq!(made.expires_at, None);
    let agent = enrol(&farm, &made.token)
        .await
        .expect("a fresh token enrols");
    admin.revoke_enrolment_token(made.id).await.unwrap();
    assert_eq!(
        enrol(&farm, &made.token).await.unwrap_err(),
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
    assert_eq!(
        heartbeat(&farm, &agent).await,
        StatusCode::OK,
        "an enrolled agent keeps working"
    );

    let store = farm.store().await;
    let now = idlefarm_coordinator::accounts::now_secs();
    store
        .create_enrolment_token("an-expired-token", now - 100, Some(now - 1))
        .await
        .unwrap();
    assert_eq!(
        enrol(&farm, "an-expired-token").await.unwrap_err(),
        StatusCode::UNAUTHORIZED,
        "expired"
    );
    let week = admin
        .create_enrolment_token(Some(7 * 86_400))
        .await
        .unwrap();
    let expires = week.expires_at.unwrap();
    assert!((expires - now - 7 * 86_400).abs() <= 5, "{expires}");
    enrol(&farm, &week.token).await.expect("not expired yet");
    enrol(&farm, &farm.token)
        .await
        .expect("the standing token still enrols");

    let list = admin.enrolment_tokens().await.unwrap();
    let state = |id: i64| list.iter().find(|t| t.id == id).unwrap();
    assert!(state(made.id).revoked_at.is_some());
    assert!(state(week.id).is_live(now));
    assert!(
        list.iter()
            .any(|t| t.token == "an-expired-token" && !t.is_live(now))
    );
    assert!(list.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let err = admin.revoke_enrolment_token(made.id).await.unwrap_err();
    assert!(err.to_string().contains("already revoked"), "{err}");
    let err = admin.revoke_enrolment_token(9_999).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let actions: Vec<String> = admin
        .audit(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "enrolment-token.create")
            .count(),
        2
    );
    assert!(actions.contains(&"enrolment-token.revoke".to_owned()));
    farm.stop().await;
}

#[tokio::test]
async fn tokens_from_before_accounts_stay_valid_after_the_migration() {
    use sqlx::sqlite::SqliteConnectOptions;
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1-migrations");
    std::fs::create_dir(&v1).unwrap();
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_init.sql");
    std::fs::copy(init, v1.join("0001_init.sql")).unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("idlefarm.db"))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(v1.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for (token, revoked) in [("old-live", 0), ("old-revoked", 1)] {
        sqlx::query("INSERT INTO enrolment_tokens (token, created_at, revoked) VALUES (?, 5, ?)")
            .bind(token)
            .bind(revoked)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = idlefarm_coordinator::store::Store::open(dir.path())
        .await
        .expect("the accounts migration applies");
    assert!(store.token_is_valid("old-live").await.unwrap());
    assert!(!store.token_is_valid("old-revoked").await.unwrap());
    let (standing, created) = store.enrolment_token(|| "fresh".into(), 10).await.unwrap();
    assert_eq!((standing.as_str(), created), ("old-live", false));
    let list = store.enrolment_tokens().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t.id > 0 && t.expires_at.is_none()));
    assert_eq!(
        list.iter()
            .find(|t| t.token == "old-revoked")
            .unwrap()
            .revoked_at,
        Some(5)
    );
}
