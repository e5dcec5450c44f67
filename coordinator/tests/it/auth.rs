//! Agent requests without valid credentials are refused.

use idlefarm_protocol::{
    HeartbeatRequest, LeaseRequest, PresenceState, RegisterRequest, RegisterResponse,
};

use crate::common::Farm;

#[tokio::test]
async fn agent_requests_need_valid_credentials() {
    let farm = Farm::start(|_| {}).await;
    let http = reqwest::Client::new();
    let lease = farm.client.url(idlefarm_protocol::routes::AGENT_LEASE);
    let body = LeaseRequest {
        presence: PresenceState::Idle,
        slots: 1,
    };

    let res = http.post(&lease).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401, "no credentials");
    let res = http
        .post(&lease)
        .header("authorization", "Bearer 1.wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "unknown agent");
    let res = http
        .post(&lease)
        .header("authorization", "garbage")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "malformed header");

    let register = farm.client.url(idlefarm_protocol::routes::AGENT_REGISTER);
    let bad = RegisterRequest {
        token: "not-the-token".into(),
        name: "pc".into(),
        renderers: vec![],
    };
    let res = http.post(&register).json(&bad).send().await.unwrap();
    assert_eq!(res.status(), 401, "bad enrolment token");

    let good = RegisterRequest {
        token: farm.token.clone(),
        name: "pc".into(),
        renderers: vec![],
    };
    let creds: RegisterResponse = http
        .post(&register)
        .json(&good)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong = format!("Bearer {}.{}", creds.agent_id, "0".repeat(64));
    let res = http
        .post(&lease)
        .header("authorization", wrong)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "right agent, wrong secret");

    let right = format!("Bearer {}.{}", creds.agent_id, creds.secret);
    let hb = HeartbeatRequest {
        presence: PresenceState::Idle,
        leases: vec![],
    };
    let res = http
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_HEARTBEAT))
        .header("authorization", &right)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(&lease)
        .header("authorization", &right)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "malformed body");
    farm.stop().await;
}

#[tokio::test]
async fn an_agent_that_is_not_available_gets_no_lease() {
    let farm = Farm::start(|_| {}).await;
    let dir = crate::common::shared_tempdir();
    let pov = dir.path().join("s.pov");
    std::fs::write(&pov, crate::scenes::pov_scene(None)).unwrap();
    let job = farm.client.submit(&pov, &Default::default()).await.unwrap();

    let http = reqwest::Client::new();
    let renderers = vec![idlefarm_protocol::RendererInfo {
        renderer: idlefarm_protocol::Renderer::Povray,
        version: "3.7".into(),
    }];
    let register = RegisterRequest {
        token: farm.token.clone(),
        name: "pc".into(),
        renderers,
    };
    let creds: RegisterResponse = http
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_REGISTER))
        .json(&register)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = format!("Bearer {}.{}", creds.agent_id, creds.secret);
    for presence in [
        PresenceState::UserPresent,
        PresenceState::Suspended,
        PresenceState::OutsideSchedule,
        PresenceState::Draining,
    ] {
        let res: idlefarm_protocol::LeaseResponse = http
            .post(farm.client.url(idlefarm_protocol::routes::AGENT_LEASE))
            .header("authorization", &auth)
            .json(&LeaseRequest { presence, slots: 1 })
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(res.lease.is_none(), "{presence:?} got a lease");
    }
    // Chunks at once: a whole number from 1 to MAX_SLOTS; anything else is refused, not
    // leased.
    for slots in [
        serde_json::json!(0),
        serde_json::json!(idlefarm_protocol::MAX_SLOTS + 1),
        serde_json::json!(-1),
        serde_json::json!("two"),
    ] {
        let res = http
            .post(farm.client.url(idlefarm_protocol::routes::AGENT_LEASE))
            .header("authorization", &auth)
            .json(&serde_json::json!({ "presence": "idle", "slots": slots }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(
            status == 400 || status == 422,
            "slots {slots}: {status} {text}"
        );
        assert!(text.contains("slots"), "slots {slots}: {text}");
    }
    let res: idlefarm_protocol::LeaseResponse = http
        .post(farm.client.url(idlefarm_protocol::routes::AGENT_LEASE))
        .header("authorization", &auth)
        .json(&LeaseRequest {
            presence: PresenceState::Idle,
            slots: 1,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res.lease.expect("an idle agent gets work").job_id, job.id);
    farm.stop().await;
}
