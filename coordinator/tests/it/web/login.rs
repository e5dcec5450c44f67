//! Logging in and out in the browser, and the headers every page carries.

use idlefarm_coordinator::pages::CONTENT_SECURITY_POLICY;

use super::browser::Browser;
use crate::common::Farm;

#[tokio::test]
async fn a_page_asks_for_a_login_and_returns_to_it_afterwards() {
    let farm = Farm::start(|_| {}).await;
    let password = farm.admin_password.clone().unwrap();
    let b = Browser::start(&farm.url).await;

    b.goto("/?view=all").await;
    b.wait_for("input[name=password]").await;
    assert_eq!(b.path().await, "/login?next=/%3Fview%3Dall");

    // A wrong password is answered in the form, and nothing else happens.
    b.fill("input[name=name]", "admin").await;
    b.fill("input[name=password]", "not-the-password").await;
    b.click("form button.primary").await;
    b.wait_text("[data-error-for='']", "wrong").await;
    assert!(b.path().await.starts_with("/login"));

    b.fill("input[name=password]", &password).await;
    b.click("form button.primary").await;
    b.wait_until("the page it came from", || async {
        b.path().await == "/?view=all"
    })
    .await;
    b.wait_text("#live-status", "live").await;

    // Logging out ends the session: the page asks for a login again.
    b.click(".who button").await;
    b.wait_for("input[name=password]").await;
    b.goto("/").await;
    b.wait_for("input[name=password]").await;
    b.close().await;
}

#[tokio::test]
async fn every_answer_carries_a_strict_content_security_policy() {
    let farm = Farm::start(|_| {}).await;
    let http = reqwest::Client::new();
    for path in ["/login", "/static/app.js", "/api/v1/jobs", "/no-such-page"] {
        let r = http
            .get(format!("{}{path}", farm.url))
            .send()
            .await
            .unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, CONTENT_SECURITY_POLICY, "{path}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn pages_and_scripts_are_gzipped_but_the_event_stream_is_not() {
    let farm = Farm::start(|_| {}).await;
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", farm.client.token().unwrap());
    let get = |path: &str| {
        http.get(format!("{}{path}", farm.url))
            .header("authorization", &bearer)
            .header("accept-encoding", "gzip")
            .send()
    };
    for path in ["/static/live.js", "/jobs", "/farm"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap()),
            Some("gzip"),
            "{path}"
        );
    }
    // The event stream must reach the page event by event: never buffered by a compressor.
    let r = get("/api/v1/events").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(r.headers().get("content-encoding").is_none());
}
