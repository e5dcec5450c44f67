//! Reading the audit log over the API (`GET /audit`): filtered by actor and action (an action
//! also finds the actions under it), paged with `before`, malformed queries refused.

use idlefarm_protocol::accounts::{AuditEntry, Role};
use reqwest::{Method, StatusCode};

use super::send;
use crate::common::Farm;

async fn entries(farm: &Farm, query: &str) -> (StatusCode, Vec<AuditEntry>, String) {
    let token = farm.client.token().unwrap().to_owned();
    let path = format!("/audit{query}");
    let (status, body) = send(farm, Method::GET, &path, None, None, Some(&token), None).await;
    let list = serde_json::from_value(body.clone()).unwrap_or_default();
    (status, list, body.to_string())
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_and_action_and_pages_back() {
    let farm = Farm::start(|_| {}).await;
    farm.add_user("bob", Role::Submitter).await;
    farm.client.set_role("bob", Role::Admin).await.unwrap();
    farm.client.remove_user("bob").await.unwrap();

    let (status, all, body) = entries(&farm, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");

    let (_, users, _) = entries(&farm, "?action=user").await;
    let actions: Vec<_> = users.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["user.remove", "user.role", "user.add", "user.add"]
    );
    let (_, roles, _) = entries(&farm, "?action=user.role&actor=admin").await;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].target, "bob");
    let (_, none, _) = entries(&farm, "?actor=bob").await;
    assert!(none.is_empty(), "{none:?}");
    let (_, under_score, _) = entries(&farm, "?action=user_").await;
    assert!(
        under_score.is_empty(),
        "`_` is no wildcard: {under_score:?}"
    );

    let (_, page, _) = entries(&farm, &format!("?limit=2&before={}", users[0].id)).await;
    assert_eq!(page.len(), 2);
    assert!(page.iter().all(|e| e.id < users[0].id));

    for bad in [
        "?before=soon",
        "?before=0",
        "?limit=0",
        "?limit=many",
        &format!("?actor={}", "a".repeat(201)),
    ] {
        let (status, _, body) = entries(&farm, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("error"), "{bad}: {body}");
    }
    farm.stop().await;
}
