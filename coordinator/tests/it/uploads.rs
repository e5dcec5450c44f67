//! Staged uploads (`POST /api/v1/uploads`): what the coordinator finds in a .blend, a .pov with
//! its .ini and a zip; submitting an upload by id with changed settings; malformed uploads,
//! ids that cannot be used, errors that name their form field, and a bounded number of staged
//! uploads per person. Large uploads are in `large`.

mod large;

use std::time::Duration;

use idlefarm_coordinator::client::Client;
use idlefarm_coordinator::server::MAX_STAGED_PER_USER;
use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::routes;
use idlefarm_protocol::{
    ErrorBody, ImageFormat, Renderer, SubmitResponse, UploadInspection, UploadKind,
};
use reqwest::multipart::{Form, Part};

use crate::common::{Farm, shared_tempdir};
use crate::scenes::{make_blend, make_zip, pov_ini, pov_scene};

fn file(name: &str, bytes: impl Into<Vec<u8>>) -> Part {
    Part::bytes(bytes.into()).file_name(name.to_owned())
}

fn url(client: &Client, route: &str) -> String {
    format!("{}{route}", client.base())
}

/// Posts `form` to `route` as `client`'s user; returns the status and the body.
async fn post(client: &Client, route: &str, form: Form) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(url(client, route))
        .bearer_auth(client.token().expect("logged in"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Stages `form` and returns the inspection, which must have been accepted.
async fn stage(client: &Client, form: Form) -> UploadInspection {
    let (status, body) = post(client, routes::UPLOADS, form).await;
    assert_eq!(status, 201, "{body:.500}");
    serde_json::from_str(&body).unwrap()
}

/// The error answer of a refused request: its status, message and field.
fn refusal(status: u16, body: &str) -> (u16, String, Option<String>) {
    let error: ErrorBody = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("error answer is JSON {{error}}: {body:.300}"));
    (status, error.error, error.field)
}

async fn get_upload(client: &Client, id: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(url(client, &routes::upload(id)))
        .bearer_auth(client.token().expect("logged in"))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

fn staged_folders(farm: &Farm) -> usize {
    std::fs::read_dir(farm.data().join("uploads"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blend_is_inspected_then_submitted_by_id_with_a_changed_frame_range() {
    let farm = Farm::start(|_| {}).await;
    let dir = shared_tempdir();
    let blend = make_blend(dir.path(), "cube.blend", 6, 64, 48);
    let form = Form::new().part("file", file("cube.blend", std::fs::read(&blend).unwrap()));
    let found = stage(&farm.client, form).await;
    assert_eq!(found.kind, UploadKind::Blend);
    assert_eq!(found.renderer, Renderer::Blender);
    assert_eq!(found.file_name, "cube.blend");
    assert_eq!(found.size, std::fs::metadata(&blend).unwrap().len());
    assert_eq!(found.scenes.len(), 1);
    let scene = &found.scenes[0];
    assert_eq!(
        (scene.frame_start, scene.frame_end, scene.frame_step),
        (1, 6, 1)
    );
    assert_eq!(
        (scene.resolution_x, scene.resolution_y, scene.percentage),
        (64, 48, 100)
    );
    assert_eq!(
        (scene.engine.as_str(), scene.file_format.as_str()),
        ("CYCLES", "PNG")
    );
    assert_eq!(scene.fps, 24.0);
    assert_eq!(found.active_scene.as_deref(), Some(scene.name.as_str()));
    assert_eq!(
        (found.settings.frame_start, found.settings.frame_end),
        (1, 6)
    );
    assert_eq!(found.settings.format, ImageFormat::Png);
    assert_eq!(found.name, "cube.blend");
    let (status, body) = get_upload(&farm.client, &found.id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<UploadInspection>(&body).unwrap(),
        found
    );

    // A refused submission names its field and leaves the upload staged for a corrected one.
    let wrong = Form::new()
        .text("upload", found.id.clone())
        .text("frames", "1-400");
    let (status, message, field) = {
        let (s, b) = post(&farm.client, routes::JOBS, wrong).await;
        refusal(s, &b)
    };
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("outside the scene's 1-6"), "{message}");
    assert_eq!(field.as_deref(), Some("frames"));
    let bad_priority = Form::new()
        .text("upload", found.id.clone())
        .text("priority", "urgent");
    let (s, b) = post(&farm.client, routes::JOBS, bad_priority).await;
    assert_eq!(refusal(s, &b).2.as_deref(), Some("priority"));

    let form = Form::new()
        .text("upload", found.id.clone())
        .text("frames", "2-4")
        .text("name", "cube shot");
    let (status, body) = post(&farm.client, routes::JOBS, form).await;
    assert_eq!(status, 201, "{body:.500}");
    let job = serde_json::from_str::<SubmitResponse>(&body).unwrap().job;
    assert_eq!((job.settings.frame_start, job.settings.frame_end), (2, 4));
    assert_eq!(job.name, "cube shot");
    assert_eq!(job.settings.resolution_x, 64);

    // Submitting consumed it.
    assert_eq!(get_upload(&farm.client, &found.id).await.0, 404);
    let again = Form::new().text("upload", found.id.clone());
    let (s, b) = post(&farm.client, routes::JOBS, again).await;
    let (status, _, field) = refusal(s, &b);
    assert_eq!((status, field.as_deref()), (404, Some("upload")));
    assert_eq!(staged_folders(&farm), 0);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pov_with_its_ini_and_a_zip_project_are_inspected() {
    let farm = Farm::start(|_| {}).await;
    let form = Form::new()
        .part("file", file("ball.pov", pov_scene(None)))
        .part("ini", file("ball.ini", pov_ini(3, 9, 80, 60)));
    let found = stage(&farm.client, form).await;
    assert_eq!(found.kind, UploadKind::Pov);
    assert_eq!(found.renderer, Renderer::Povray);
    assert_eq!(found.ini_name.as_deref(), Some("ball.ini"));
    assert!(found.scenes.is_empty());
    let s = &found.settings;
    assert_eq!((s.frame_start, s.frame_end), (3, 9));
    assert_eq!((s.resolution_x, s.resolution_y), (80, 60));

    let dir = shared_tempdir();
    let zip = dir.path().join("project.zip");
    let ini = pov_ini(1, 4, 32, 24);
    make_zip(
        &zip,
        &[
            ("scenes/shot.pov", pov_scene(None).as_bytes()),
            ("scenes/shot.ini", ini.as_bytes()),
        ],
    );
    let form = Form::new().part("file", file("project.zip", std::fs::read(&zip).unwrap()));
    let found = stage(&farm.client, form).await;
    assert_eq!(found.kind, UploadKind::Zip);
    assert_eq!(found.settings.main_file, "scenes/shot.pov");
    assert_eq!(
        (found.settings.frame_start, found.settings.frame_end),
        (1, 4)
    );

    // Submitted with the staged ini in it, the job keeps the ini's size.
    let (status, body) = post(
        &farm.client,
        routes::JOBS,
        Form::new().text("upload", found.id.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body:.500}");
    let job = serde_json::from_str::<SubmitResponse>(&body).unwrap().job;
    assert_eq!(job.settings.resolution_x, 32);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_uploads_are_refused_naming_the_field_and_leave_nothing() {
    let farm = Farm::start(|_| {}).await;
    let pov = || file("s.pov", pov_scene(None));
    let cases: Vec<(Form, u16, &str, Option<&str>)> = vec![
        (
            Form::new().part("ini", file("s.ini", pov_ini(1, 2, 8, 8))),
            400,
            "no scene uploaded",
            Some("file"),
        ),
        (
            Form::new().part("file", pov()).part("file", pov()),
            400,
            "only one `file`",
            Some("file"),
        ),
        (
            Form::new().part("file", pov()).text("frames", "1-2"),
            400,
            "unknown form field `frames`",
            None,
        ),
        (
            Form::new().part("file", file("notes.txt", "hello")),
            400,
            "not a .blend, .pov or .zip",
            Some("file"),
        ),
        (
            Form::new().part("file", file("fake.blend", "not blender")),
            400,
            "not a Blender file",
            Some("file"),
        ),
        (
            Form::new().part("file", file("empty.pov", "")),
            400,
            "is empty",
            Some("file"),
        ),
        (
            Form::new().text("file", "just text"),
            400,
            "must be file uploads",
            Some("file"),
        ),
        (
            Form::new()
                .part("file", pov())
                .part("ini", file("s.ini", "Initial_Frame=x\n")),
            400,
            "Initial_Frame",
            Some("ini"),
        ),
    ];
    for (form, status, needle, field) in cases {
        let (s, b) = post(&farm.client, routes::UPLOADS, form).await;
        let (got, message, got_field) = refusal(s, &b);
        assert_eq!(got, status, "{message}");
        assert!(
            message.contains(needle),
            "{message:.300} should mention {needle}"
        );
        assert_eq!(got_field.as_deref(), field, "{message}");
    }
    let res = reqwest::Client::new()
        .post(url(&farm.client, routes::UPLOADS))
        .bearer_auth(farm.client.token().unwrap())
        .body("not a form")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let unauthenticated = reqwest::Client::new()
        .post(url(&farm.client, routes::UPLOADS))
        .multipart(Form::new().part("file", pov()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(staged_folders(&farm), 0, "nothing staged");
    assert!(
        std::fs::read_dir(farm.data().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // Field errors of a plain submission name their field too.
    let form = Form::new().part("file", pov()).text("chunk", "lots");
    let (s, b) = post(&farm.client, routes::JOBS, form).await;
    assert_eq!(refusal(s, &b).2.as_deref(), Some("chunk"));
    let form = Form::new().part("file", pov()).text("tags", "Not A Tag!");
    let (s, b) = post(&farm.client, routes::JOBS, form).await;
    assert_eq!(refusal(s, &b).2.as_deref(), Some("tags"));
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_foreign_and_expired_upload_ids_are_not_found() {
    let farm = Farm::start(|_| {}).await;
    let form = || {
        Form::new()
            .part("file", file("s.pov", pov_scene(None)))
            .part("ini", file("s.ini", pov_ini(1, 2, 32, 24)))
    };
    let mine = stage(&farm.client, form()).await;
    let other = farm.client_as("bea", Role::Submitter).await;
    assert_eq!(get_upload(&other, &mine.id).await.0, 404);
    let theirs = Form::new().text("upload", mine.id.clone());
    let (s, b) = post(&other, routes::JOBS, theirs).await;
    assert_eq!(refusal(s, &b).0, 404);
    for unknown in ["0".repeat(64), "..".into(), "x".into()] {
        assert_eq!(get_upload(&farm.client, &unknown).await.0, 404, "{unknown}");
        let (s, b) = post(
            &farm.client,
            routes::JOBS,
            Form::new().text("upload", unknown),
        )
        .await;
        let (status, _, field) = refusal(s, &b);
        assert_eq!((status, field.as_deref()), (404, Some("upload")));
    }
    // Both a file and an upload is one too many.
    let both = form().text("upload", mine.id.clone());
    let (s, b) = post(&farm.client, routes::JOBS, both).await;
    assert_eq!(refusal(s, &b).0, 400);
    // The owner still has it.
    assert_eq!(get_upload(&farm.client, &mine.id).await.0, 200);
    assert!(farm.client.jobs().await.unwrap().is_empty());
    farm.stop().await;

    let farm = Farm::start(|c| c.upload_ttl = Duration::ZERO).await;
    let gone = stage(&farm.client, form()).await;
    let (s, b) = post(
        &farm.client,
        routes::JOBS,
        Form::new().text("upload", gone.id),
    )
    .await;
    let (status, message, _) = refusal(s, &b);
    assert_eq!(status, 404);
    assert!(message.contains("expired"), "{message}");
    // The next upload sweeps expired ones away.
    stage(&farm.client, form()).await;
    assert_eq!(staged_folders(&farm), 1);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_keeps_a_bounded_number_of_staged_uploads() {
    let farm = Farm::start(|_| {}).await;
    let form = || Form::new().part("file", file("s.pov", pov_scene(None)));
    let other = farm.client_as("bea", Role::Submitter).await;
    let theirs = stage(&other, form()).await;
    let mut mine = Vec::new();
    for _ in 0..=MAX_STAGED_PER_USER {
        mine.push(stage(&farm.client, form()).await.id);
    }
    // The oldest of mine made room; the others' and my newer ones stay.
    assert_eq!(get_upload(&farm.client, &mine[0]).await.0, 404);
    for id in &mine[1..] {
        assert_eq!(get_upload(&farm.client, id).await.0, 200);
    }
    assert_eq!(get_upload(&other, &theirs.id).await.0, 200);
    assert_eq!(staged_folders(&farm), MAX_STAGED_PER_USER + 1);
    farm.stop().await;
}
