//! The farm page and the overview in Chromium: a PC's state changing live with its presence,
//! its timeline and thumbnail during and after a render, the overview's counts and chart, and
//! the admin's actions on a PC (`farm_admin.rs` has offline PCs, tokens and submitters).

use std::sync::Arc;
use std::time::Duration;

use idlefarm_agent::{Availability, ManualPresence};
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{AgentInfo, PresenceState};

use super::browser::Browser;
use crate::common::{Farm, shared_tempdir, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

/// Longest wait for a whole (tiny) job.
const JOB_LIMIT: Duration = Duration::from_secs(240);

/// Frames of the test job: enough that a person can come back in the middle of it.
const FRAMES: i64 = 40;

/// The agent called `name`, once it has enrolled.
async fn agent_named(farm: &Farm, name: &str) -> AgentInfo {
    for _ in 0..300 {
        let agents = farm.client.agents().await.unwrap();
        if let Some(a) = agents.into_iter().find(|a| a.name == name) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("agent {name} did not enrol");
}

/// The badge of PC `id` on the farm page.
pub(super) fn badge(id: i64, state: &str) -> String {
    format!("#pc-{id}-status .badge[data-state='{state}']")
}

/// Writes a plausible week into PC `id`'s history, ending 10 minutes ago: nights off, people
/// at the PC in the mornings, renders at lunch and in the evenings.
async fn seed_a_week(farm: &Farm, id: i64) {
    const HOUR: i64 = 3_600_000;
    let store = farm.store().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = [
        (0.0, PresenceState::Offline),
        (7.5, PresenceState::Idle),
        (8.0, PresenceState::UserPresent),
        (12.0, PresenceState::Rendering),
        (13.0, PresenceState::Suspended),
        (13.2, PresenceState::UserPresent),
        (17.0, PresenceState::Idle),
        (17.3, PresenceState::Rendering),
        (21.5, PresenceState::OutsideSchedule),
    ];
    let start = now - 7 * 24 * HOUR;
    for d in 0..7 {
        for (hour, state) in day {
            let at = start + d * 24 * HOUR + (hour * HOUR as f64) as i64;
            if at < now - HOUR / 6 {
                store.record_presence(id, state, at).await.unwrap();
            }
        }
    }
}

/// Opens PC `id`'s admin controls (they stay open across live refreshes).
async fn open_manage(b: &Browser, id: i64) {
    b.wait_for(&format!("#manage-{id}")).await;
    b.client
        .execute(
            "document.getElementById(arguments[0]).open = true;",
            vec![serde_json::json!(format!("manage-{id}"))],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_farm_page_follows_a_pc_live_and_draws_its_render() {
    let mut farm = Farm::start(|_| {}).await;
    let person = Arc::new(ManualPresence::new(Availability::Unavailable(
        PresenceState::UserPresent,
    )));
    // Quick heartbeats: the coordinator hears of the render even if it lasts a second.
    farm.add_agent_with("lab-1", person.clone(), |c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.max_suspend = Duration::from_secs(600);
    });
    let id = agent_named(&farm, "lab-1").await.id;
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto("/farm").await;
    b.wait_for(&badge(id, "user-present")).await;
    b.wait_text("#live-status", "live").await;
    b.mark_window().await;

    // The person leaves: the badge follows without a reload.
    person.set(Availability::Available);
    b.wait_for(&badge(id, "idle")).await;

    // A POV-Ray job renders: the day's timeline gains a rendering span, drawn by the stylesheet
    // (the CSP allows no inline style) with a real width.
    let scenes = shared_tempdir();
    let pov = scenes.path().join("farm.pov");
    let ini = scenes.path().join("farm.ini");
    std::fs::write(&pov, format!("// farm page\n{}", pov_scene(None))).unwrap();
    std::fs::write(&ini, pov_ini(1, FRAMES, 640, 360)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: Some(FRAMES.to_string()),
        name: Some("farm <b>page</b>".into()),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap().id;
    let span = format!("#pc-{id}-status [data-period='day'] rect[data-state='rendering']");
    b.wait_for(&span).await;
    let drawn = b
        .client
        .execute(
            "const r = document.querySelector(arguments[0]);
             return [r.getBoundingClientRect().width, getComputedStyle(r).fill];",
            vec![serde_json::json!(span)],
        )
        .await
        .unwrap();
    assert!(drawn[0].as_f64().unwrap() > 0.0, "{drawn}");
    assert_eq!(
        drawn[1], "rgb(47, 127, 216)",
        "the rendering colour applies"
    );

    // A person comes back once a frame is stored: the render is suspended, and the PC shows
    // the frame it rendered last (the job's name as text, never as markup).
    b.wait_for(&format!("#pc-{id}-status .pc-thumb img")).await;
    person.set(Availability::Unavailable(PresenceState::UserPresent));
    b.wait_for(&badge(id, "suspended")).await;
    b.wait_text(&format!("#pc-{id}-status .pc-thumb"), "farm <b>page</b>")
        .await;
    b.assert_not_reloaded().await;
    let running = farm.client.job(job).await.unwrap();
    assert!(running.frames.done < FRAMES as u64, "{running:?}");

    // A week of history written straight into the store, so the screenshots show what a lab
    // PC's timelines look like; everything asserted above came from the coordinator alone.
    seed_a_week(&farm, id).await;
    b.goto("/farm").await;
    b.wait_for(&badge(id, "suspended")).await;
    b.screenshot("farm").await;
    b.goto("/").await;
    b.wait_for("#overview-now img.thumb").await;
    assert_eq!(b.text("[data-count='in-use'] b").await, "1");
    assert_eq!(b.text("[data-count='jobs-running'] b").await, "1");
    b.screenshot("overview").await;

    // The person leaves: the render goes on and the job completes; the overview counts it.
    person.set(Availability::Available);
    let done = wait_for_job(&farm.client, job, JOB_LIMIT).await;
    assert_eq!(done.frames.done, FRAMES as u64, "{done:?}");
    b.wait_text(
        "#overview-chart h2",
        &format!("{FRAMES} in the last 24 hours"),
    )
    .await;
    b.wait_text("#overview-now", "No PC is rendering").await;
    assert_eq!(b.text("[data-count='idle'] b").await, "1");
    assert_eq!(b.text("[data-count='offline'] b").await, "0");
    assert_eq!(b.count("#overview-chart svg rect").await, 24);
    b.goto("/farm").await;
    let frames = b
        .text(&format!("#pc-{id}-status [data-fact='frames']"))
        .await;
    assert_eq!(frames, FRAMES.to_string());

    // The admin drains the PC from the page after confirming; the badge changes.
    b.goto("/farm").await;
    b.click(&format!("#pc-{id}-status button[data-action='drain']"))
        .await;
    b.client.accept_alert().await.unwrap();
    b.wait_for(&badge(id, "draining")).await;
    b.wait_for(&format!("#pc-{id}-status button[data-action='enable']"))
        .await;
    let agent = agent_named(&farm, "lab-1").await;
    assert_eq!(agent.mode.as_str(), "draining");

    // A name the API refuses: its message is shown in the form, nothing changes.
    open_manage(&b, id).await;
    b.fill(&format!("#rename-{id}"), &"x".repeat(201)).await;
    b.click(&format!("#manage-{id} [data-form='rename'] button"))
        .await;
    b.wait_text(
        &format!("#manage-{id} [data-form='rename'] [data-error-for='']"),
        "1-200 characters",
    )
    .await;
    assert_eq!(agent_named(&farm, "lab-1").await.name, "lab-1");

    // A good name and tags are taken, and shown live.
    b.fill(&format!("#rename-{id}"), "lab-1-window").await;
    b.click(&format!("#manage-{id} [data-form='rename'] button"))
        .await;
    b.wait_text(&format!("#pc-{id}-name"), "lab-1-window").await;
    open_manage(&b, id).await;
    b.fill(&format!("#tags-{id}"), "room-2 gpu").await;
    b.click(&format!("#manage-{id} [data-form='tags'] button"))
        .await;
    b.wait_text(&format!("#pc-{id}-status"), "room-2").await;
    open_manage(&b, id).await;
    b.fill(&format!("#tags-{id}"), "Not A Tag!").await;
    b.click(&format!("#manage-{id} [data-form='tags'] button"))
        .await;
    b.wait_until("the tags form shows the API's message", || async {
        !b.text(&format!(
            "#manage-{id} [data-form='tags'] [data-error-for='']"
        ))
        .await
        .is_empty()
    })
    .await;
    assert_eq!(
        agent_named(&farm, "lab-1-window").await.tags,
        ["room-2", "gpu"]
    );
    // An emptied field takes every tag away.
    b.goto("/farm").await;
    open_manage(&b, id).await;
    b.fill(&format!("#tags-{id}"), "").await;
    b.click(&format!("#manage-{id} [data-form='tags'] button"))
        .await;
    b.wait_until("the tags to be gone", || async {
        agent_named(&farm, "lab-1-window").await.tags.is_empty()
    })
    .await;
    b.close().await;
    farm.stop().await;
}
