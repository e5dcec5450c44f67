//! Benchmark: how long the job page of a 1,000-frame job takes to show, and what it weighs.
//! A coordinator runs in-process on 127.0.0.1 with one 1,000-frame POV-Ray job (no agent: the
//! frames stay queued, so every cell of the grid is drawn); then
//! - the server: `GET /jobs/ID` rendered N times (p50/p99/max), and its size plain and gzipped;
//! - a real headless Chromium: the page loaded N times, timed by the browser's own Navigation
//!   Timing (response end, DOMContentLoaded, load) and the bytes it transferred per load; and
//!   the static files' size on a first visit.
//!
//! Prints a report; asserts nothing. `cargo bench -p idlefarm-coordinator --bench job_page
//! [-- N]` (default 30 loads).

#[path = "support/bench_farm.rs"]
mod bench_farm;
#[path = "../tests/it/web/browser.rs"]
mod browser;
#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;

use std::time::{Duration, Instant};

use bench_farm::BenchFarm;

const FRAMES: i64 = 1000;

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn row(what: &str, v: Vec<f64>) {
    let (p50, p99, max) = percentiles(v);
    println!("{what:<44} {p50:>9.1} {p99:>9.1} {max:>9.1}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let farm = BenchFarm::start(FRAMES).await?;
    let (url, (admin, password)) = (&farm.url, &farm.admin);
    let job = farm.submit().await?;
    let page = format!("/jobs/{job}");

    // The server alone: the page as HTML, plain and as a browser asks for it (gzip).
    let bearer = format!("Bearer {}", farm.client.token().unwrap_or_default());
    let http = reqwest::Client::new();
    let get = |path: &str, gzip: bool| {
        let mut req = http
            .get(format!("{url}{path}"))
            .header("authorization", &bearer);
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        req.send()
    };
    let mut render_ms = Vec::new();
    let mut plain_bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let body = get(&page, false).await?.bytes().await?;
        render_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        plain_bytes = body.len();
    }
    let gzipped = get(&page, true).await?;
    let encoding = gzipped
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let wire_bytes = gzipped.bytes().await?.len();
    let mut static_bytes = 0;
    for file in [
        "app.css", "app.js", "live.js", "forms.js", "ago.js", "grid.js",
    ] {
        static_bytes += get(&format!("/static/{file}"), true)
            .await?
            .bytes()
            .await?
            .len();
    }

    // A real browser.
    let b = browser::Browser::start(url).await;
    b.login(admin, password).await;
    let timing = "const t = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        return [t.responseEnd - t.startTime, t.domContentLoadedEventEnd - t.startTime,
                t.loadEventEnd - t.startTime,
                t.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
                document.querySelectorAll('#frame-grid .cell[data-frame]').length];";
    let (mut response, mut dom, mut load) = (Vec::new(), Vec::new(), Vec::new());
    let mut transferred = Vec::new();
    for _ in 0..n {
        b.goto(&page).await;
        b.wait_for("#frame-grid").await;
        // loadEventEnd is only set once the load event has finished.
        let mut v = serde_json::Value::Null;
        for _ in 0..100 {
            v = b.client.execute(timing, vec![]).await?;
            if v[2].as_f64().unwrap_or(0.0) > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let num = |k: usize| v[k].as_f64().unwrap_or(f64::NAN);
        anyhow::ensure!(num(4) as i64 == FRAMES, "the grid has {} cells", num(4));
        response.push(num(0));
        dom.push(num(1));
        load.push(num(2));
        transferred.push(num(3));
    }
    b.close().await;

    println!("job page of a {FRAMES}-frame job, {n} loads (ms)      p50       p99       max");
    row("server: GET /jobs/ID (HTML rendered)", render_ms);
    row("browser: response end", response);
    row("browser: DOMContentLoaded (grid drawn)", dom);
    row("browser: load event", load);
    println!();
    println!(
        "page HTML: {plain_bytes} bytes plain, {wire_bytes} bytes on the wire ({})",
        encoding.as_deref().unwrap_or("not compressed")
    );
    println!(
        "static files (CSS and scripts), first visit: {static_bytes} bytes on the wire; later visits revalidate (304)"
    );
    row("browser: bytes transferred per page load", transferred);
    farm.stop().await?;
    Ok(())
}
