//! The farm page in Chromium, continued: a silent PC turning offline and back, enrolment
//! tokens, and what a submitter does not see.

use std::time::Duration;

use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::events::{PresenceChange, agent_history_path};
use idlefarm_protocol::{
    HeartbeatRequest, PresenceState, RegisterRequest, RegisterResponse, routes,
};

use super::browser::Browser;
use super::farm::badge;
use crate::common::Farm;

/// An agent driven by hand over HTTP, so the test decides when it falls silent.
struct HandAgent {
    http: reqwest::Client,
    base: String,
    auth: String,
    id: i64,
}

impl HandAgent {
    async fn enrol(farm: &Farm, name: &str) -> HandAgent {
        let http = reqwest::Client::new();
        let creds: RegisterResponse = http
            .post(farm.client.url(routes::AGENT_REGISTER))
            .json(&RegisterRequest {
                token: farm.token.clone(),
                name: name.into(),
                renderers: Vec::new(),
            })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        HandAgent {
            http,
            base: farm.url.clone(),
            auth: format!("Bearer {}.{}", creds.agent_id, creds.secret),
            id: creds.agent_id,
        }
    }

    async fn heartbeat(&self, presence: PresenceState) -> reqwest::Response {
        self.http
            .post(format!("{}{}", self.base, routes::AGENT_HEARTBEAT))
            .header("authorization", &self.auth)
            .json(&HeartbeatRequest {
                presence,
                leases: Vec::new(),
            })
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_pc_turns_offline_and_back_and_admins_manage_enrolment_tokens() {
    let farm = Farm::start(|c| c.lease_ttl = Duration::from_secs(2)).await;
    let pc = HandAgent::enrol(&farm, "lab-2").await;
    assert_eq!(
        pc.heartbeat(PresenceState::Idle).await.status(),
        reqwest::StatusCode::OK
    );
    // Only the coordinator says a PC is offline; an agent that talks is not.
    let refused = pc.heartbeat(PresenceState::Offline).await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("coordinator's word"));

    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto("/farm").await;
    b.wait_text("#live-status", "live").await;
    b.mark_window().await;
    // No more heartbeats: after a lease's lifetime the PC shows as offline, live.
    b.wait_for(&badge(pc.id, "offline")).await;
    b.wait_for(&format!(
        "#pc-{}-status [data-period='day'] rect[data-state='offline']",
        pc.id
    ))
    .await;
    // It comes back with its next heartbeat.
    pc.heartbeat(PresenceState::UserPresent).await;
    b.wait_for(&badge(pc.id, "user-present")).await;
    b.assert_not_reloaded().await;
    let history: Vec<PresenceChange> = pc
        .http
        .get(farm.client.url(&agent_history_path(pc.id)))
        .bearer_auth(farm.client.token().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<PresenceState> = history.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            PresenceState::Idle,
            PresenceState::Offline,
            PresenceState::UserPresent
        ]
    );

    // A new enrolment token: shown once with the agent's command line, then listed.
    b.click("#token-create button.primary").await;
    b.wait_until("the new token's command line", || async {
        !b.text("#agent-command output").await.is_empty()
    })
    .await;
    let command = b.text("#agent-command").await;
    let tokens = farm.client.enrolment_tokens().await.unwrap();
    let newest = tokens.iter().max_by_key(|t| t.id).unwrap();
    assert_eq!(
        command,
        format!(
            "idlefarm-agent --coordinator {} --token {}",
            farm.url, newest.token
        )
    );
    assert!(newest.expires_at.is_some(), "a day by default: {newest:?}");
    let row = format!("#token-list [data-token='{}']", newest.id);
    b.wait_for(&format!("{row} .badge[data-state='live']"))
        .await;
    assert!(!b.text(&row).await.contains(&newest.token));
    // Revoked after confirming.
    b.click(&format!("{row} button")).await;
    b.client.accept_alert().await.unwrap();
    b.wait_for(&format!("{row} .badge[data-state='revoked']"))
        .await;
    let revoked = farm.client.enrolment_tokens().await.unwrap();
    assert!(
        revoked
            .iter()
            .any(|t| t.id == newest.id && t.revoked_at.is_some())
    );
    b.close().await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pc_asking_to_join_shows_up_live_and_an_admin_approves_it() {
    let farm = Farm::start(|_| {}).await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto("/farm").await;
    b.wait_text("#live-status", "live").await;
    b.wait_text("#request-list", "No PC is waiting to join")
        .await;
    b.mark_window().await;
    // A PC without a token asks, as an agent with none does.
    let asked: idlefarm_protocol::EnrolmentRequested = reqwest::Client::new()
        .post(farm.client.url(routes::ENROLMENT_REQUESTS))
        .json(&serde_json::json!({ "name": "lab-9", "renderers": [], "key": "k".repeat(32) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = format!("#request-list [data-request='{}']", asked.id);
    b.wait_text(&row, "waiting for approval").await;
    b.click(&format!("{row} button.primary")).await;
    b.wait_text(&row, "approved, joining").await;
    b.assert_not_reloaded().await;
    let requests = farm.client.enrolment_requests().await.unwrap();
    assert_eq!(requests[0].state, "approved", "{requests:?}");
    b.close().await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitter_sees_the_pcs_but_no_admin_action_and_no_token() {
    let farm = Farm::start(|_| {}).await;
    let pc = HandAgent::enrol(&farm, "lab-3").await;
    pc.heartbeat(PresenceState::OutsideSchedule).await;
    let password = farm.add_user("sam", Role::Submitter).await;
    // A phone-width window: the page fits without sideways scrolling.
    let b = Browser::start_sized(&farm.url, 390, 844).await;
    b.login("sam", &password).await;
    b.goto("/farm").await;
    b.wait_for(&badge(pc.id, "outside-schedule")).await;
    let overflow = b
        .client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(overflow.as_f64().unwrap() <= 0.0, "{overflow}");
    b.screenshot("farm-phone").await;
    assert_eq!(b.count("details.manage").await, 0);
    assert_eq!(b.count("[data-action]").await, 0);
    assert_eq!(b.count("form[data-api]").await, 1, "only the log-out form");
    assert!(!b.exists("#token-create").await);
    assert!(!b.exists("#token-list").await);
    b.goto("/farm?part=tokens").await;
    b.wait_text("main", "only an admin may see enrolment tokens")
        .await;
    b.goto("/").await;
    b.wait_text("[data-count='held'] b", "1").await;

    // Malformed queries are answered with a page that says what would do.
    b.goto("/farm?part=nope").await;
    b.wait_text("main", "unknown part").await;
    b.goto("/farm?part=pc&agent=seven").await;
    b.wait_text("main", "malformed query").await;
    b.goto("/farm?part=pc&agent=999").await;
    b.wait_text(".pc-gone", "no PC 999").await;
    b.goto("/?part=everything").await;
    b.wait_text("main", "unknown part `everything`").await;
    b.close().await;
    farm.stop().await;
}
