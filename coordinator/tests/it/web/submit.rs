//! The Submit pages in the browser: a generated .blend goes through the file input, the
//! inspection shows its frames and resolution, a changed frame range becomes the job's, and
//! bad files and bad fields get the coordinator's message next to the field they concern.

use super::browser::Browser;
use crate::common::{Farm, shared_tempdir};
use crate::scenes::make_blend;

#[tokio::test(flavor = "multi_thread")]
async fn a_blend_is_uploaded_inspected_adjusted_submitted_and_watched_until_its_video_plays() {
    let mut farm = Farm::start(|_| {}).await;
    let dir = shared_tempdir();
    let blend = make_blend(dir.path(), "cube.blend", 6, 64, 48);
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;

    b.goto("/submit").await;
    let input = b.wait_for("input[data-upload-file]").await;
    input.send_keys(blend.to_str().unwrap()).await.unwrap();
    b.click("button[data-send]").await;
    b.wait_for("form[data-api] input[name=frames]").await;
    assert!(b.path().await.starts_with("/submit/"), "{}", b.path().await);
    assert_eq!(
        b.attr("input[name=frames]", "value").await.as_deref(),
        Some("1-6")
    );
    b.wait_text("[data-scene-fact=size]", "64 × 48 at 100 %")
        .await;
    b.wait_text("[data-scene-fact=engine]", "CYCLES").await;
    b.wait_text(".facts", "cube.blend").await;
    b.screenshot("submit-inspection").await;

    // A frame range outside the scene is refused next to the frames field, and nothing is lost.
    b.fill("input[name=frames]", "1-400").await;
    b.click("form[data-api] button.primary").await;
    b.wait_text("[data-error-for=frames]", "outside the scene's 1-6")
        .await;
    assert!(b.path().await.starts_with("/submit/"));
    assert!(farm.client.jobs().await.unwrap().is_empty());

    b.fill("input[name=frames]", "2-4").await;
    b.click("form[data-api] button.primary").await;
    b.wait_until("the job's page", || async {
        b.path().await.starts_with("/jobs/")
    })
    .await;
    let id: i64 = b.path().await["/jobs/".len()..].parse().unwrap();
    let job = farm.client.job(id).await.unwrap();
    assert_eq!((job.settings.frame_start, job.settings.frame_end), (2, 4));
    assert_eq!(job.name, "cube.blend");

    // The job page fills in live, without a reload, until the video player appears.
    b.wait_for("#frame-grid").await;
    assert_eq!(b.count("#frame-grid .cell[data-frame]").await, 3);
    b.mark_window().await;
    farm.add_agent("pc-1");
    b.wait_until("every frame done", || async {
        b.count("#frame-grid .cell[data-frame][data-state=done]")
            .await
            == 3
    })
    .await;
    b.wait_for("#job-output video").await;
    b.assert_not_reloaded().await;
    b.close().await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_shows_the_coordinators_message_next_to_the_file_field() {
    let farm = Farm::start(|_| {}).await;
    let dir = shared_tempdir();
    let fake = dir.path().join("fake.blend");
    std::fs::write(&fake, "this is not a Blender file").unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;

    b.goto("/submit").await;
    let input = b.wait_for("input[data-upload-file]").await;
    input.send_keys(fake.to_str().unwrap()).await.unwrap();
    b.click("button[data-send]").await;
    b.wait_text("[data-error-for=file]", "fake.blend is not a Blender file")
        .await;
    assert_eq!(b.path().await, "/submit");
    b.screenshot("submit-bad-file").await;

    // The .ini field appears only for POV-Ray scenes and zips.
    assert!(!b.wait_for("[data-ini]").await.is_displayed().await.unwrap());
    let input = b.wait_for("input[data-upload-file]").await;
    input.clear().await.unwrap();
    input.send_keys(notes.to_str().unwrap()).await.unwrap();
    b.click("button[data-send]").await;
    b.wait_text(
        "[data-error-for=file]",
        "notes.txt is not a .blend, .pov or .zip file",
    )
    .await;

    // An upload id that is unknown (or expired, or someone else's) gets a clear page.
    b.goto(&format!("/submit/{}", "0".repeat(64))).await;
    b.wait_text("h1", "not available").await;
    b.wait_text(".error-text", "upload the file again").await;
    b.goto("/submit/..%2F..%2Fetc").await;
    b.wait_text("h1", "not available").await;
    b.close().await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pov_ray_ini_section_is_chosen_on_the_form() {
    let farm = Farm::start(|_| {}).await;
    let dir = shared_tempdir();
    let pov = dir.path().join("ball.pov");
    let ini = dir.path().join("ball.ini");
    std::fs::write(&pov, crate::scenes::pov_scene(None)).unwrap();
    std::fs::write(
        &ini,
        "Initial_Frame=1\nFinal_Frame=10\nWidth=32\nHeight=24\n[Small]\nFinal_Frame=4\nWidth=16\nHeight=12\n",
    )
    .unwrap();
    let b = Browser::start(&farm.url).await;
    b.login("admin", farm.admin_password.as_deref().unwrap())
        .await;
    b.goto("/submit").await;
    let file = b.wait_for("input[data-upload-file]").await;
    file.send_keys(pov.to_str().unwrap()).await.unwrap();
    let ini_input = b.wait_for("input[data-upload-ini]").await;
    ini_input.send_keys(ini.to_str().unwrap()).await.unwrap();
    b.click("button[data-send]").await;
    b.wait_for("form[data-api] input[name=ini_section]").await;

    // A malformed section name is refused next to its field.
    b.fill("input[name=ini_section]", "Sm]all").await;
    b.click("form[data-api] button.primary").await;
    b.wait_until("an error next to the section field", || async {
        !b.text("[data-error-for=ini_section]").await.is_empty()
    })
    .await;
    assert!(farm.client.jobs().await.unwrap().is_empty());

    b.fill("input[name=ini_section]", "Small").await;
    b.click("form[data-api] button.primary").await;
    b.wait_until("the job's page", || async {
        b.path().await.starts_with("/jobs/")
    })
    .await;
    let id: i64 = b.path().await["/jobs/".len()..].parse().unwrap();
    let job = farm.client.job(id).await.unwrap();
    assert_eq!((job.settings.frame_start, job.settings.frame_end), (1, 4));
    assert_eq!(job.settings.frame_size(), (16, 12));
    b.close().await;
}
