//! Benchmark: the coordinator's peak memory (VmHWM) during issue 11's hostile uploads (items
//! 2-4), against a normal frame upload. Runs the `idlefarm` binary as its own process on
//! 127.0.0.1, resets its peak before each case (`/proc/PID/clear_refs`) and prints how far each
//! raised it. Prints a report; asserts nothing.
//!
//! `cargo bench -p idlefarm-coordinator --bench hostile_upload [-- MB]` (hostile bodies of MB
//! megabytes, default 300); `cargo test --bench hostile_upload` runs it without optimisation.

#[path = "../tests/it/hostile_agent/bomb.rs"]
mod bomb;
#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;
#[path = "support/served_farm.rs"]
mod served_farm;

use std::time::Duration;

use futures::StreamExt;

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{
    ImageFormat, LeaseRequest, LeaseResponse, PresenceState, RegisterRequest, RegisterResponse,
    Renderer, RendererInfo, routes,
};

/// The job's frame size: a full-HD frame.
const W: u32 = 1920;
const H: u32 = 1080;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mb: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);
    let farm = served_farm::start(
        "idlefarm-bench-",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_idlefarm")),
    )
    .await?;
    let served_farm::ServedFarm {
        dir,
        url,
        token,
        client,
        mut server,
        pid,
    } = farm;
    let http = reqwest::Client::new();

    let pov = dir.path().join("s.pov");
    std::fs::write(&pov, scenes::pov_scene(None))?;
    let ini = dir.path().join("s.ini");
    std::fs::write(&ini, scenes::pov_ini(1, 8, W, H))?;
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: Some("8".into()),
        ..SubmitOptions::default()
    };
    client.submit(&pov, &opts).await?;
    let register = RegisterRequest {
        token,
        name: "bench".into(),
        renderers: vec![RendererInfo {
            renderer: Renderer::Povray,
            version: "1".into(),
        }],
    };
    let creds: RegisterResponse = http
        .post(format!("{url}{}", routes::AGENT_REGISTER))
        .json(&register)
        .send()
        .await?
        .json()
        .await?;
    let auth = format!("Bearer {}.{}", creds.agent_id, creds.secret);
    let lease: LeaseResponse = http
        .post(format!("{url}{}", routes::AGENT_LEASE))
        .header("authorization", &auth)
        .json(&LeaseRequest {
            presence: PresenceState::Idle,
            slots: 1,
        })
        .send()
        .await?
        .json()
        .await?;
    let lease = lease.lease.ok_or_else(|| anyhow::anyhow!("no lease"))?.id;
    let frame_url = |lease: i64, frame: i64| {
        format!(
            "{url}{}",
            routes::agent_frame(lease, frame, ImageFormat::Png)
        )
    };
    let put = |target: String, body: reqwest::Body| {
        http.put(target)
            .header("authorization", &auth)
            .body(body)
            .send()
    };
    let bytes = mb << 20;

    println!("coordinator peak RSS (VmHWM) per upload; frames are {W}x{H} PNG");
    println!(
        "{:<58} {:>9} {:>9} {:>9}  answer",
        "case", "before", "peak", "rise"
    );
    let normal = noisy_png(W, H);
    let label = format!("normal frame ({:.1} MB)", megabytes(normal.len() as u64));
    measure(pid, &label, answer(put(frame_url(lease, 1), normal.into()))).await;
    let bomb = bomb::png_bomb(13000, 13000, true);
    let label = format!(
        "item 2: PNG declaring 13000x13000 ({:.1} MB)",
        megabytes(bomb.len() as u64)
    );
    measure(pid, &label, answer(put(frame_url(lease, 2), bomb.into()))).await;
    let label = format!("item 3: {mb} MB to a lease that does not exist");
    let to_nowhere = put(frame_url(999_999, 3), endless(bytes));
    measure(pid, &label, answer(to_nowhere)).await;
    let label = format!("item 3: {mb} MB frame to a held lease");
    measure(
        pid,
        &label,
        answer(put(frame_url(lease, 3), endless(bytes))),
    )
    .await;
    let label = format!("item 3: four {mb} MB frames at once");
    let four = (0..4).map(|_| answer(put(frame_url(lease, 3), endless(bytes))));
    let four = async { futures::future::join_all(four).await.join(" / ") };
    measure(pid, &label, four).await;
    let submission = |bytes: u64| -> anyhow::Result<reqwest::multipart::Form> {
        let name = reqwest::multipart::Part::stream_with_length(endless(bytes), bytes);
        let file = reqwest::multipart::Part::bytes(std::fs::read(&pov)?).file_name("s.pov");
        Ok(reqwest::multipart::Form::new()
            .part("name", name)
            .part("file", file))
    };
    let jobs = format!("{url}{}", routes::JOBS);
    let anonymous = http.post(&jobs).multipart(submission(bytes)?).send();
    let label = format!("item 4: anonymous submission, {mb} MB name field");
    measure(pid, &label, answer(anonymous)).await;
    let token = client.token().unwrap_or_default().to_owned();
    let logged_in = http
        .post(&jobs)
        .bearer_auth(token)
        .multipart(submission(bytes)?)
        .send();
    let label = format!("item 4: logged-in submission, {mb} MB name field");
    measure(pid, &label, answer(logged_in)).await;
    server.kill().await?;
    Ok(())
}

/// Resets the server's peak RSS, runs `upload` and prints how far it raised the peak.
async fn measure(pid: u32, label: &str, upload: impl std::future::Future<Output = String>) {
    // "5" resets VmHWM to the current RSS (Linux 4.0+).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let before = status_kb(pid, "VmRSS:");
    let answer = upload.await;
    // Let the server finish with the connection before reading its peak.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = status_kb(pid, "VmHWM:");
    println!(
        "{label:<58} {:>6.1} MB {:>6.1} MB {:>6.1} MB  {answer}",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
}

/// The status and the start of the error of a request's answer.
async fn answer(
    request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> String {
    match request.await {
        Ok(res) => {
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            let error: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let error = error["error"].as_str().unwrap_or_default().to_owned();
            let short: String = error.chars().take(60).collect();
            format!("{} {short}", status.as_u16())
        }
        // Typically the server answered and closed before the body was sent.
        Err(e) if e.is_request() => "connection closed while sending (answered early)".into(),
        Err(e) => format!("no answer ({e})"),
    }
}

/// A `/proc/PID/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// A body of `bytes` zeros, made as it is sent (without a length).
fn endless(bytes: u64) -> reqwest::Body {
    const CHUNK: u64 = 1 << 16;
    let chunks = bytes.div_ceil(CHUNK);
    let stream = futures::stream::iter(0..chunks)
        .map(|_| Ok::<_, std::io::Error>(vec![0u8; CHUNK as usize]));
    reqwest::Body::wrap_stream(stream)
}

/// A PNG of `w`×`h` noise: about as large as a real render's (noise does not compress).
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut seed: u32 = 0x2545_F491;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [a, b, _, _] = seed.to_le_bytes();
        image::Rgb([a, b, (x ^ y) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    let _ = img.write_to(&mut out, image::ImageFormat::Png);
    out.into_inner()
}
