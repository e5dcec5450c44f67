//! Bad submissions each get a 4xx with a message a person can act on, and leave nothing stored.

use std::path::Path;

use idlefarm_protocol::ErrorBody;
use reqwest::multipart::{Form, Part};

use crate::common::{Farm, shared_tempdir};
use crate::scenes::{make_blend, make_zip, pov_scene};

/// Posts a raw multipart form; returns the status and the error message.
async fn post(farm: &Farm, form: Form) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(farm.client.url("/jobs"))
        .bearer_auth(farm.client.token().expect("logged in"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let message = serde_json::from_str::<ErrorBody>(&body)
        .unwrap_or_else(|_| panic!("error answer is JSON {{error}}: {body}"))
        .error;
    (status, message)
}

fn file(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_owned())
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

async fn assert_rejected(farm: &Farm, form: Form, status: u16, needle: &str) {
    let (got, message) = post(farm, form).await;
    assert_eq!(got, status, "status for {needle:?}: {message}");
    assert!(
        message.contains(needle),
        "message {message:?} should mention {needle:?}"
    );
    assert!(
        farm.client.jobs().await.unwrap().is_empty(),
        "no job was created"
    );
    let data = farm.data();
    let stored: Vec<String> = ["blobs", "tmp", "jobs"]
        .iter()
        .flat_map(|d| files_under(&data.join(d)))
        .collect();
    assert!(stored.is_empty(), "nothing was stored: {stored:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_blender_submissions_are_refused_and_nothing_is_kept() {
    let scenes = shared_tempdir();
    let blend = std::fs::read(make_blend(scenes.path(), "s.blend", 24, 32, 18)).unwrap();
    let farm = Farm::start(|_| {}).await;
    let form = |name: &str, bytes: Vec<u8>| Form::new().part("file", file(name, bytes));

    assert_rejected(
        &farm,
        form("notes.blend", b"hello, not a scene".to_vec()),
        400,
        "not a Blender file",
    )
    .await;
    assert_rejected(
        &farm,
        form("cut.blend", blend[..1000].to_vec()),
        400,
        "could not be opened by Blender",
    )
    .await;
    assert_rejected(&farm, form("empty.blend", Vec::new()), 400, "empty").await;
    assert_rejected(
        &farm,
        form("notes.txt", b"hi".to_vec()),
        400,
        ".blend, .pov or .zip",
    )
    .await;
    assert_rejected(
        &farm,
        form("s.blend", blend.clone()).text("frames", "1-400"),
        422,
        "1-400",
    )
    .await;
    assert_rejected(
        &farm,
        form("s.blend", blend.clone()).text("frames", "ten"),
        400,
        "ten",
    )
    .await;
    assert_rejected(
        &farm,
        form("s.blend", blend.clone()).text("scene", "Nope"),
        422,
        "Nope",
    )
    .await;
    assert_rejected(
        &farm,
        form("s.blend", blend.clone()).text("chunk", "-3"),
        400,
        "chunk",
    )
    .await;
    assert_rejected(
        &farm,
        form("s.blend", blend.clone()).text("colour", "red"),
        400,
        "colour",
    )
    .await;
    assert_rejected(
        &farm,
        Form::new().text("frames", "1-3"),
        400,
        "no scene uploaded",
    )
    .await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_povray_and_zip_submissions_are_refused_and_nothing_is_kept() {
    let scenes = shared_tempdir();
    let farm = Farm::start(|_| {}).await;
    let pov = pov_scene(None).into_bytes();

    let bad_ini = Form::new().part("file", file("a.pov", pov.clone())).part(
        "ini",
        file(
            "a.ini",
            b"Initial_Frame=1\nFinal_Frame=10\nWidth=wide\n".to_vec(),
        ),
    );
    assert_rejected(&farm, bad_ini, 400, "Width").await;

    let shell = Form::new().part("file", file("a.pov", pov.clone())).part(
        "ini",
        file("a.ini", b"Pre_Frame_Command=rm -rf /\n".to_vec()),
    );
    assert_rejected(&farm, shell, 400, "shell").await;

    let outside = Form::new()
        .part("file", file("a.pov", pov.clone()))
        .part(
            "ini",
            file("a.ini", b"Initial_Frame=1\nFinal_Frame=10\n".to_vec()),
        )
        .text("frames", "5-20");
    assert_rejected(&farm, outside, 422, "5-20").await;

    let evil = scenes.path().join("evil.zip");
    make_zip(
        &evil,
        &[("scene.pov", &pov), ("../escape.inc", b"// gotcha")],
    );
    let form = Form::new().part("file", file("evil.zip", std::fs::read(&evil).unwrap()));
    assert_rejected(&farm, form, 400, "..").await;

    let notzip = Form::new().part("file", file("p.zip", b"PK but not really".to_vec()));
    assert_rejected(&farm, notzip, 400, "zip").await;
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_upload_is_refused_with_the_limit() {
    let farm = Farm::start(|c| c.max_upload_bytes = 64 << 10).await;
    let mut big = pov_scene(None).into_bytes();
    big.resize(256 << 10, b' ');
    let form = Form::new().part("file", file("big.pov", big));
    assert_rejected(&farm, form, 413, "larger than").await;
    farm.stop().await;
}

#[tokio::test]
async fn a_request_head_too_large_for_a_connections_buffer_is_refused_and_the_server_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let farm = Farm::start(|_| {}).await;
    let addr = farm.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A header of 256 KiB: more than a connection's read buffer may hold (hyper's own default
    // would have taken it).
    let head = format!(
        "GET /api/v1/jobs HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    // The server may answer and close before it has read everything we send.
    let _ = tcp.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Other requests are served as before.
    let jobs = farm.client.jobs().await.unwrap();
    assert!(jobs.is_empty());
}
