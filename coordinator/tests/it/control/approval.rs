//! Enrolment by approval: an agent with no token asks to join and waits; an admin approves it
//! and it renders a job, or turns it down and the agent stops saying so. Only admins decide,
//! only the key's holder collects the credentials, and malformed requests are refused.

use std::sync::Arc;

use idlefarm_agent::AlwaysAvailable;
use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::routes;
use reqwest::Method;
use serde_json::json;

use super::agents::wait_agent;
use super::{JOB_LIMIT, SOON, Scene, call, eventually, submit};
use crate::common::{Farm, assert_complete, wait_for_job};

/// The waiting request of the PC called `name`; its id.
async fn request_of(farm: &Farm, name: &str) -> i64 {
    eventually("the PC's request waits for an admin", SOON, || async {
        let requests = farm.client.enrolment_requests().await.unwrap();
        match requests.iter().find(|r| r.name == name) {
            Some(r) if r.state == "waiting" => Ok(r.id),
            _ => Err(format!("{requests:?}")),
        }
    })
    .await
}

fn path(template: &str, id: i64) -> String {
    template.replace("{id}", &id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pc_without_a_token_joins_once_an_admin_approves_it_and_renders() {
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent_with("asker", Arc::new(AlwaysAvailable), |c| c.token.clear());
    let id = request_of(&farm, "asker").await;
    assert!(
        farm.client.agents().await.unwrap().is_empty(),
        "not an agent before approval"
    );

    // Only admins decide.
    let submitter = farm.client_as("sam", Role::Submitter).await;
    let approve = path(routes::ENROLMENT_REQUEST_APPROVE, id);
    call(&submitter, Method::POST, &approve, None)
        .await
        .assert_error(403, "admin", "a submitter approving");
    call(&submitter, Method::GET, routes::ENROLMENT_REQUESTS, None)
        .await
        .assert_error(403, "admin", "a submitter listing");
    // Nobody but the PC can collect the credentials.
    let claim = path(routes::ENROLMENT_REQUEST_CLAIM, id);
    call(
        &farm.client,
        Method::POST,
        &claim,
        Some(json!({ "key": "x".repeat(32) })),
    )
    .await
    .assert_error(401, "not the key", "a claim with another key");

    let answer = call(&farm.client, Method::POST, &approve, None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    call(&farm.client, Method::POST, &approve, None)
        .await
        .assert_error(409, "approved already", "approving twice");
    wait_agent(&farm, "asker", "the approved PC enrols", |_| true).await;
    let job = submit(&farm.client, "approved", &Scene::tiny(2)).await;
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert!(
        farm.client.enrolment_requests().await.unwrap().is_empty(),
        "a claimed request is no longer listed"
    );
    let audit = farm.client.audit(50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "agent.approve"),
        "{audit:?}"
    );
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pc_turned_down_stops_and_says_so() {
    let farm = Farm::start(|_| {}).await;
    let work_dir = farm.dir.path().join("agent-stranger");
    let mut config = idlefarm_agent::AgentConfig::new(farm.url.clone(), "", work_dir);
    config.name = "stranger".into();
    config.disk_budget.min_free = idlefarm_agent::budget::MinFree::Bytes(0);
    let agent = tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(AlwaysAvailable),
        std::future::pending(),
    ));
    let id = request_of(&farm, "stranger").await;
    let reject = path(routes::ENROLMENT_REQUEST, id);
    let answer = call(&farm.client, Method::DELETE, &reject, None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let ended = tokio::time::timeout(SOON, agent)
        .await
        .expect("the agent stops")
        .unwrap();
    let err = format!("{:#}", ended.unwrap_err());
    assert!(
        err.contains("turned this PC's enrolment request down"),
        "{err}"
    );
    assert!(farm.client.agents().await.unwrap().is_empty());
    farm.stop().await;
}

#[tokio::test]
async fn malformed_or_too_many_requests_are_refused() {
    let farm = Farm::start(|_| {}).await;
    let ask = |name: &str, key: &str| json!({ "name": name, "renderers": [], "key": key });
    let good_key = "k".repeat(20);
    for (body, status, says) in [
        (ask("", &good_key), 400, "name"),
        (ask("pc", "short"), 400, "key"),
        (ask("pc", &format!("{} x", good_key)), 400, "key"),
        (
            json!({ "name": "pc", "renderers": [] }),
            422,
            "missing field `key`",
        ),
    ] {
        call(
            &farm.client,
            Method::POST,
            routes::ENROLMENT_REQUESTS,
            Some(body),
        )
        .await
        .assert_error(status, says, "a malformed request");
    }
    call(
        &farm.client,
        Method::POST,
        &path(routes::ENROLMENT_REQUEST_APPROVE, 999),
        None,
    )
    .await
    .assert_error(404, "no enrolment request 999", "approving nothing");
    let claim = path(routes::ENROLMENT_REQUEST_CLAIM, 999);
    call(
        &farm.client,
        Method::POST,
        &claim,
        Some(json!({ "key": good_key })),
    )
    .await
    .assert_error(404, "ask again", "claiming nothing");
    // A stranger on the LAN cannot fill the page.
    for i in 0..idlefarm_coordinator::server::MAX_ENROLMENT_REQUESTS {
        let answer = call(
            &farm.client,
            Method::POST,
            routes::ENROLMENT_REQUESTS,
            Some(ask(&format!("pc-{i}"), &good_key)),
        )
        .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    call(
        &farm.client,
        Method::POST,
        routes::ENROLMENT_REQUESTS,
        Some(ask("one-too-many", &good_key)),
    )
    .await
    .assert_error(429, "already waiting", "request 51");
    farm.stop().await;
}
