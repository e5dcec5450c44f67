//! What the campus load bench measures on the generator's side: latency samples per route and
//! errors by kind, recorded only while the measured window is open, and the table printed
//! from them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Latency samples (microseconds) by route, and errors by route and kind.
#[derive(Default)]
pub struct Stats {
    /// Whether samples are kept (the measured window is open).
    recording: AtomicBool,
    samples: Mutex<BTreeMap<&'static str, Vec<u32>>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Opens or closes the measured window.
    pub fn record(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Whether the measured window is open.
    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// One answered request of `route` that took `took`; `always` keeps it outside the window
    /// too (the ramp-up's enrolments).
    pub fn sample(&self, route: &'static str, took: Duration, always: bool) {
        if !always && !self.recording() {
            return;
        }
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        let mut samples = self.samples.lock().expect("not poisoned");
        samples.entry(route).or_default().push(micros);
    }

    /// A failed request of `route`: `kind` is the status or what went wrong on the network.
    /// Errors count in every phase, the phase is part of the kind.
    pub fn error(&self, route: &'static str, kind: &str) {
        let phase = match self.recording() {
            true => "",
            false => " (outside the window)",
        };
        let mut errors = self.errors.lock().expect("not poisoned");
        *errors.entry(format!("{route}: {kind}{phase}")).or_default() += 1;
    }

    /// Prints requests/s, p50/p90/p99/max per route over `window`, then the errors.
    pub fn print(&self, window: Duration) {
        let samples = self.samples.lock().expect("not poisoned");
        println!(
            "  {:<28} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "route", "count", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let mut total = 0usize;
        for (route, values) in samples.iter() {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let at = |q: f64| {
                let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
                f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
            };
            let rate = match route.contains("ramp-up") {
                true => String::from("-"),
                false => format!("{:.1}", sorted.len() as f64 / window.as_secs_f64()),
            };
            if !route.contains("ramp-up") {
                total += sorted.len();
            }
            println!(
                "  {:<28} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                route,
                sorted.len(),
                rate,
                at(0.5),
                at(0.9),
                at(0.99),
                at(1.0)
            );
        }
        println!(
            "  all requests in the window: {total} ({:.0}/s)",
            total as f64 / window.as_secs_f64()
        );
        let errors = self.errors.lock().expect("not poisoned");
        match errors.is_empty() {
            true => println!("  errors: none"),
            false => {
                println!("  errors:");
                for (kind, n) in errors.iter() {
                    println!("    {n:>7}  {kind}");
                }
            }
        }
    }
}

/// What went wrong with a request, in a few words (the table's error kind).
pub fn error_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timeout".into();
    }
    if err.is_connect() {
        return "connect failed".into();
    }
    if let Some(status) = err.status() {
        return format!("HTTP {}", status.as_u16());
    }
    let mut cause: &dyn std::error::Error = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    text.chars().take(60).collect()
}
