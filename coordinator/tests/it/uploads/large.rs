//! Large staged uploads: a 300 MB zip streams to disk and is inspected without the
//! coordinator's memory growing with it, and an upload past the limit is a 413.

use std::io::Write;
use std::path::Path;

use idlefarm_protocol::routes;
use reqwest::multipart::{Form, Part};

use super::{file, post, refusal, stage, staged_folders};
use crate::common::{Farm, shared_tempdir};
use crate::scenes::{pov_ini, pov_scene};

/// This process's peak resident memory in KiB (the coordinator under test runs in it).
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A zip of a POV-Ray scene and `size` bytes of stored (uncompressed) texture.
fn write_big_zip(path: &Path, size: usize) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("scene.pov", stored).unwrap();
    zip.write_all(pov_scene(None).as_bytes()).unwrap();
    zip.start_file("scene.ini", stored).unwrap();
    zip.write_all(pov_ini(1, 2, 32, 24).as_bytes()).unwrap();
    let big = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("textures/big.bin", big).unwrap();
    let block = vec![7u8; 1 << 20];
    for _ in 0..size >> 20 {
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_mb_upload_streams_to_disk_and_is_inspected() {
    let farm = Farm::start(|_| {}).await;
    let dir = shared_tempdir();
    let zip = dir.path().join("big.zip");
    write_big_zip(&zip, 300 << 20);
    let len = std::fs::metadata(&zip).unwrap().len();
    // Resets the peak so only this upload counts.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss_kib();
    let body = tokio_util::io::ReaderStream::new(tokio::fs::File::open(&zip).await.unwrap());
    let part = Part::stream_with_length(reqwest::Body::wrap_stream(body), len).file_name("big.zip");
    let found = stage(&farm.client, Form::new().part("file", part)).await;
    let grown = peak_rss_kib() - before;
    // The peak is the whole test process's, other tests included (a render's frames, a
    // browser's answers); holding the upload in memory would add all 300 MB of it.
    let half = (len / 1024 / 2) as i64;
    assert!(grown < half, "peak memory grew by {grown} KiB");
    assert_eq!(found.size, len);
    assert_eq!(found.settings.main_file, "scene.pov");
    assert_eq!(
        (found.settings.frame_start, found.settings.frame_end),
        (1, 2)
    );
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_past_the_limit_is_refused_with_the_limit() {
    let farm = Farm::start(|c| c.max_upload_bytes = 1 << 20).await;
    let big = format!("{}\n// {}", pov_scene(None), "x".repeat(2 << 20));
    let (s, b) = post(
        &farm.client,
        routes::UPLOADS,
        Form::new().part("file", file("big.pov", big)),
    )
    .await;
    let (status, message, _) = refusal(s, &b);
    assert_eq!(status, 413, "{message}");
    assert!(message.contains("1 MiB"), "{message}");
    assert_eq!(staged_folders(&farm), 0);
    farm.stop().await;
}
