//! Benchmark: what Prometheus and API clients cost the coordinator. A coordinator runs
//! in-process on 127.0.0.1 with `JOBS` queued POV-Ray jobs (no agent); then `GET /metrics`
//! (as an admin) and `GET /api/v1/openapi.json` are each fetched N times (p50/p90/p99/max in
//! milliseconds, and their size), and `GET /api/v1/jobs/{id}` N times for the cost of a plain
//! API answer through the metrics middleware.
//!
//! Prints a report; asserts nothing. `cargo bench -p idlefarm-coordinator --bench
//! observability [-- N]` (default 200).

#[path = "support/bench_farm.rs"]
mod bench_farm;
#[path = "../tests/it/scenes.rs"]
#[allow(dead_code)]
mod scenes;

use std::time::Instant;

use bench_farm::BenchFarm;
use idlefarm_protocol::routes;

const JOBS: usize = 20;

fn row(what: &str, mut v: Vec<f64>, bytes: usize) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {bytes:>9}",
        at(0.5),
        at(0.9),
        at(0.99),
        v[v.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let farm = BenchFarm::start(100).await?;
    let mut last = 0;
    for _ in 0..JOBS {
        last = farm.submit().await?;
    }
    let (url, client) = (&farm.url, &farm.client);
    let bearer = format!("Bearer {}", client.token().unwrap_or_default());
    let http = reqwest::Client::new();
    let job = routes::job(last);
    println!("{JOBS} queued jobs, {n} requests each, sequential, milliseconds");
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "request", "p50", "p90", "p99", "max", "bytes"
    );
    for (what, path) in [
        ("GET /metrics", routes::METRICS),
        ("GET /api/v1/openapi.json", routes::OPENAPI),
        ("GET /api/v1/jobs/{id}", job.as_str()),
    ] {
        let mut times = Vec::with_capacity(n);
        let mut bytes = 0;
        for _ in 0..n {
            let started = Instant::now();
            let body = http
                .get(format!("{url}{path}"))
                .header("authorization", &bearer)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            bytes = body.len();
        }
        row(what, times, bytes);
    }
    let doc = idlefarm_coordinator::server::openapi::document();
    let operations = idlefarm_coordinator::server::openapi::documented(&doc).len();
    let schemas = doc.components.map_or(0, |c| c.schemas.len());
    println!("OpenAPI: {operations} operations, {schemas} schemas");

    farm.stop().await
}
