//! The jobs list and the job page in the browser: live progress, actions, permissions and
//! hostile names.

use std::time::Duration;

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::JobState;
use idlefarm_protocol::accounts::Role;

use super::browser::Browser;
use crate::common::{Farm, shared_tempdir};
use crate::scenes::{pov_ini, pov_scene};

/// Submits a POV-Ray animation of `frames` frames at 32×24 as `client`, named `name`.
async fn submit_pov(
    client: &idlefarm_coordinator::client::Client,
    frames: i64,
    name: &str,
) -> idlefarm_protocol::JobInfo {
    let dir = shared_tempdir();
    let pov = dir.path().join("ball.pov");
    let ini = dir.path().join("ball.ini");
    std::fs::write(&pov, pov_scene(None)).unwrap();
    std::fs::write(&ini, pov_ini(1, frames, 32, 24)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        name: Some(name.to_owned()),
        chunk: Some("2".into()),
        ..SubmitOptions::default()
    };
    client.submit(&pov, &opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_job_page_fills_in_live_until_the_video_plays() {
    let mut farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm.client, 8, "ball").await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto(&format!("/jobs/{}", job.id)).await;
    assert_eq!(b.count("#frame-grid .cell[data-frame]").await, 8);
    assert_eq!(
        b.count("#frame-grid .cell[data-frame][data-state=queued]")
            .await,
        8
    );
    // A mark that a reload would wipe out.
    b.mark_window().await;

    farm.add_agent("pc-1");
    b.wait_until("every cell done", || async {
        b.count("#frame-grid .cell[data-frame][data-state=done]")
            .await
            == 8
    })
    .await;
    b.wait_for("#job-output video").await;
    b.wait_text("#job-state", "done").await;
    b.assert_not_reloaded().await;
    assert_eq!(b.count("#filmstrip img").await, 8);

    // A thumbnail shown again costs a 304; frames are shown inline, the zip is a download.
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", farm.client.token().unwrap());
    let get = |path: String, etag: Option<String>| {
        let mut req = http
            .get(format!("{}{path}", farm.url))
            .header("authorization", &bearer);
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.send()
    };
    let thumb = idlefarm_protocol::routes::job_frame_thumbnail(job.id, 1);
    let first = get(thumb.clone(), None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = get(thumb, Some(etag)).await.unwrap();
    assert_eq!(again.status(), 304);
    let frame = get(
        idlefarm_protocol::routes::job_frame_file(job.id, "frame_00001.png"),
        None,
    )
    .await
    .unwrap();
    assert!(
        frame.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    let zip = get(idlefarm_protocol::routes::job_frames_zip(job.id), None)
        .await
        .unwrap();
    assert!(
        zip.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(b.exists("#latest-frame img").await);

    // A cell shows its frame: thumbnail, render time, PC and attempts.
    b.click("#f-3").await;
    // Pointing and clicking both fetch the detail, so it may be replaced while it is read:
    // wait for the whole of it rather than reading it once.
    b.wait_until("frame 3's detail: its PC and attempts", || async {
        b.try_text("#frame-detail").await.is_some_and(|d| {
            d.contains("Frame 3") && d.contains("rendered on pc-1") && d.contains("1 attempt")
        })
    })
    .await;
    b.wait_for("#frame-detail img").await;
    b.screenshot("job").await;

    // Selected frames are rendered again.
    b.click("#f-5").await;
    b.wait_text("#retry-selected", "2 selected frames").await;
    b.click("#retry-selected").await;
    b.client.accept_alert().await.unwrap();
    // Only frames 3 and 5 are rendered again, and the job is done again.
    b.wait_until("the job to render frames 3 and 5 again", || async {
        let j = farm.client.job(job.id).await.unwrap();
        let frames = farm.client.frames(job.id).await.unwrap();
        let attempts: Vec<u32> = frames.iter().map(|f| f.attempts).collect();
        j.state == JobState::Done && j.frames.done == 8 && attempts == [1, 1, 2, 1, 2, 1, 1, 1]
    })
    .await;
    b.close().await;
    farm.stop().await;
}

#[tokio::test]
async fn cancelling_from_the_job_page_asks_first_and_shows_the_new_state_live() {
    let farm = Farm::start(|_| {}).await;
    // No agent: the job stays rendering (queued) until it is cancelled.
    let job = submit_pov(&farm.client, 4, "to cancel").await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto(&format!("/jobs/{}", job.id)).await;
    b.wait_text("#job-state", "rendering").await;

    // Saying no to the confirmation changes nothing.
    b.click("#cancel-job").await;
    b.client.dismiss_alert().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        farm.client.job(job.id).await.unwrap().state,
        JobState::Rendering
    );

    b.click("#cancel-job").await;
    b.client.accept_alert().await.unwrap();
    b.wait_text("#job-state", "cancelled").await;
    assert_eq!(
        farm.client.job(job.id).await.unwrap().state,
        JobState::Cancelled
    );
    assert!(
        !b.exists("#cancel-job").await,
        "a cancelled job offers no cancel"
    );

    // The jobs page shows the new state too.
    b.goto("/jobs").await;
    b.wait_text(&format!("tr[data-job='{}']", job.id), "cancelled")
        .await;
    b.close().await;
}

#[tokio::test]
async fn a_bad_priority_is_refused_in_the_form() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm.client, 2, "prio").await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto(&format!("/jobs/{}", job.id)).await;
    // The browser's own range check is bypassed, as a hand-made request would.
    b.client
        .execute(
            "document.querySelector('form.priority input').removeAttribute('max'); return null;",
            vec![],
        )
        .await
        .unwrap();
    b.fill("form.priority input[name=priority]", "5000").await;
    b.click("form.priority button").await;
    b.wait_text("form.priority [data-error-for='']", "priority")
        .await;
    assert_eq!(farm.client.job(job.id).await.unwrap().priority, 0);
    b.fill("form.priority input[name=priority]", "7").await;
    b.click("form.priority button").await;
    b.wait_until("priority 7", || async {
        farm.client.job(job.id).await.unwrap().priority == 7
    })
    .await;
    b.wait_text("#job-summary", "priority 7").await;
    b.close().await;
}

#[tokio::test]
async fn a_submitter_sees_only_their_own_jobs_and_an_admin_sees_all() {
    let farm = Farm::start(|_| {}).await;
    let ada_password = farm.add_user("ada", Role::Submitter).await;
    let bob = farm.client_as("bob", Role::Submitter).await;
    let ada = idlefarm_coordinator::client::Client::new(&farm.url)
        .login("ada", &ada_password, "tests")
        .await
        .unwrap();
    let adas = submit_pov(&ada, 2, "ada's job").await;
    let bobs = submit_pov(&bob, 2, "bob's job").await;

    let b = Browser::start(&farm.url).await;
    b.login("ada", &ada_password).await;
    b.goto("/jobs").await;
    b.wait_text("#jobs-table", "ada's job").await;
    assert!(!b.text("#jobs-table").await.contains("bob's job"));
    assert!(
        !b.exists("select[name=owner]").await,
        "no owner filter for a submitter"
    );
    assert!(!b.exists("nav a[href='/admin']").await);
    b.goto(&format!("/jobs/{}", bobs.id)).await;
    b.wait_text("h1", "403").await;
    assert!(b.text("main").await.contains("belongs to another user"));
    b.goto(&format!("/jobs/{}", adas.id)).await;
    b.wait_for("#cancel-job").await;
    b.close().await;

    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto("/jobs").await;
    b.wait_text("#jobs-table", "bob's job").await;
    assert!(b.text("#jobs-table").await.contains("ada's job"));
    // The owner filter is kept in the URL.
    b.goto("/jobs?owner=bob").await;
    b.wait_text("#jobs-table", "bob's job").await;
    assert!(!b.text("#jobs-table").await.contains("ada's job"));
    assert_eq!(b.text("select[name=owner] option:checked").await, "bob");
    b.goto("/jobs?state=cancelled").await;
    b.wait_text("#jobs-table", "No job matches").await;
    b.close().await;
}

#[tokio::test]
async fn a_job_named_like_a_script_is_shown_as_text() {
    let farm = Farm::start(|_| {}).await;
    let name = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let job = submit_pov(&farm.client, 2, name).await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    for page in ["/jobs".to_owned(), format!("/jobs/{}", job.id)] {
        b.goto(&page).await;
        b.wait_text("main", "<script>alert(1)</script>").await;
        assert!(
            b.client.get_alert_text().await.is_err(),
            "{page}: a script from the job's name ran"
        );
        assert!(!b.exists("main script, main img[src=x]").await, "{page}");
    }
    assert_eq!(b.text(".job-name").await, name);
    b.close().await;
}

#[tokio::test]
async fn malformed_page_addresses_get_clear_errors() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm.client, 2, "x").await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    for (path, status, says) in [
        ("/jobs?state=bogus".to_owned(), "400", "not a job state"),
        ("/jobs/abc".to_owned(), "400", "malformed path"),
        ("/jobs/99999".to_owned(), "404", "no job 99999"),
        (
            format!("/jobs/{}?part=nonsense", job.id),
            "400",
            "not a part",
        ),
        (
            format!("/jobs/{}?part=frame&frame=77", job.id),
            "404",
            "no frame 77",
        ),
    ] {
        b.goto(&path).await;
        b.wait_text("h1", status).await;
        let text = b.text("main").await;
        assert!(text.to_lowercase().contains(says), "{path}: {text}");
    }
    b.close().await;
}

#[tokio::test]
async fn the_job_page_fits_a_phone_and_works_with_the_keyboard() {
    let farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm.client, 40, "phone").await;
    let b = Browser::start_sized(&farm.url, 390, 800).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    for page in ["/jobs".to_owned(), format!("/jobs/{}", job.id)] {
        b.goto(&page).await;
        b.wait_for("main h1").await;
        let overflow = b
            .client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            overflow.as_i64(),
            Some(0),
            "{page} scrolls sideways on a phone"
        );
    }
    // A frame is selected with the keyboard: focus its cell, press Enter.
    let cell = b.wait_for("#f-7").await;
    cell.send_keys("\u{e007}").await.unwrap();
    b.wait_text("#retry-selected", "1 selected frame").await;
    b.wait_text("#frame-detail", "Frame 7").await;
    assert_eq!(
        b.attr("#f-7", "aria-pressed").await.as_deref(),
        Some("true")
    );
    b.screenshot("job-phone").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_reconnects_after_the_coordinator_restarts_and_catches_up() {
    let mut farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm.client, 4, "restart").await;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto(&format!("/jobs/{}", job.id)).await;
    b.wait_text("#live-status", "live").await;
    b.mark_window().await;

    farm.restart_server().await;
    // Paused at once, before the page's stream is back (its first retry waits a second): the
    // page learns it from the re-sync after reconnecting, not from the event.
    let pause = idlefarm_protocol::routes::with_id(idlefarm_protocol::routes::JOB_PAUSE, job.id);
    let resume = idlefarm_protocol::routes::with_id(idlefarm_protocol::routes::JOB_RESUME, job.id);
    farm.client
        .post_json(&pause, &serde_json::json!({}))
        .await
        .unwrap();
    b.wait_text("#job-state", "paused").await;
    b.wait_text("#live-status", "live").await;
    // And it follows events again.
    farm.client
        .post_json(&resume, &serde_json::json!({}))
        .await
        .unwrap();
    b.wait_text("#job-state", "rendering").await;
    b.assert_not_reloaded().await;
    b.close().await;
}
