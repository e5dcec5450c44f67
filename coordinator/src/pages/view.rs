//! Small pieces several pages show: a job as a row (state, progress bar, ETA), times as
//! `<time>` values the page's clock keeps current, and URL query strings.

use idlefarm_protocol::{FrameCounts, JobInfo};

use super::job::job_page_url;

/// Width of a progress bar's SVG coordinate space; parts are drawn as `<rect width=…>` in it
/// because the Content-Security-Policy forbids inline styles.
pub const BAR_WIDTH: u64 = 1000;

/// A job's frames as the parts of one progress bar: x and width of done, rendering and failed.
pub struct Bar {
    pub done: u64,
    pub rendering_x: u64,
    pub rendering: u64,
    pub failed_x: u64,
    pub failed: u64,
    /// "12 / 48 frames"
    pub label: String,
}

impl Bar {
    pub fn of(c: &FrameCounts) -> Bar {
        let total = c.total().max(1);
        let w = |n: u64| n * BAR_WIDTH / total;
        let done = w(c.done);
        let rendering = w(c.rendering);
        Bar {
            done,
            rendering_x: done,
            rendering,
            failed_x: done + rendering,
            failed: w(c.failed),
            label: format!("{} / {} frames", c.done, c.total()),
        }
    }
}

/// A job as the jobs table and the overview show it.
pub struct JobRow {
    pub id: i64,
    pub url: String,
    pub name: String,
    pub state: &'static str,
    pub bar: Bar,
    pub percent: u64,
    pub owner: String,
    pub priority: i64,
    pub submitted: String,
    /// When the frames are expected to be done (ISO 8601), while it renders.
    pub eta: Option<String>,
    pub failed: u64,
}

impl JobRow {
    pub fn of(job: &JobInfo) -> JobRow {
        let total = job.frames.total().max(1);
        JobRow {
            id: job.id,
            url: job_page_url(job.id),
            name: job.name.clone(),
            state: job.state.as_str(),
            bar: Bar::of(&job.frames),
            percent: job.frames.done * 100 / total,
            owner: job.owner.clone().unwrap_or_else(|| "—".into()),
            priority: job.priority,
            submitted: iso_time(job.created_at),
            eta: job
                .eta_secs
                .map(|s| iso_time(crate::server::now_secs() + s as i64)),
            failed: job.frames.failed,
        }
    }
}

/// Unix seconds as `2026-11-22T03:51:58Z` (UTC), for `<time datetime>`.
pub fn iso_time(secs: i64) -> String {
    super::stamp::Stamp::at(secs).iso
}

/// `a=1&b=x%20y` from pairs, leaving out empty values.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Milliseconds as "850 ms", "12.4 s" or "3 min 5 s".
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(1_795_319_518), "2026-11-22T03:51:58Z");
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(iso_time(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn bars_add_up_to_at_most_the_width() {
        let c = FrameCounts {
            queued: 1,
            rendering: 1,
            done: 1,
            failed: 0,
        };
        let b = Bar::of(&c);
        assert_eq!((b.done, b.rendering, b.failed), (333, 333, 0));
        assert_eq!(b.failed_x, 666);
        let empty = Bar::of(&FrameCounts::default());
        assert_eq!(empty.done + empty.rendering + empty.failed, 0);
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            query_string(&[("state", ""), ("owner", "a b&c")]),
            "owner=a%20b%26c"
        );
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_400), "12.4 s");
        assert_eq!(duration_ms(185_000), "3 min 5 s");
    }
}
