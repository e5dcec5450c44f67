//! `GET /metrics` on a real coordinator: only admins may read it, it parses strictly as the
//! Prometheus (OpenMetrics) text format, and its counters move when a real agent renders a
//! real POV-Ray job. Also the agent's own metrics, read over its status socket.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::{JobState, routes};
use reqwest::StatusCode;

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

/// One sample: its name and labels.
type Series = (String, BTreeMap<String, String>);

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// `{a="1",b="x\"y"}` → labels; errors on anything else.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or(format!("no =\" in {text}"))?;
        if !valid_name(name, false) || labels.contains_key(name) {
            return Err(format!("bad or repeated label name `{name}`"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?} in {text}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated value in {text}")),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return Err(format!("trailing comma in {text}")),
            None if rest.is_empty() => rest,
            None => return Err(format!("junk after a label in {text}")),
        };
    }
    Ok(labels)
}

/// Parses an OpenMetrics text exposition strictly: every sample belongs to a family declared
/// by a `# TYPE` line with the suffixes its type allows, ends with `# EOF`, and histograms
/// have non-decreasing buckets whose `+Inf` one equals `_count`.
pub(crate) fn parse(text: &str) -> Result<HashMap<Series, f64>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let mut eof = false;
    for line in text.lines() {
        if eof {
            return Err(format!("`{line}` after # EOF"));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, value) = (parts.next(), parts.next(), parts.next());
            let (Some(kind), Some(name), Some(value)) = (kind, name, value) else {
                return Err(format!("short metadata line `{line}`"));
            };
            if !valid_name(name, true) {
                return Err(format!("bad family name in `{line}`"));
            }
            match kind {
                "TYPE" => {
                    let allowed = ["counter", "gauge", "histogram", "unknown", "info"];
                    if !allowed.contains(&value)
                        || types.insert(name.into(), value.into()).is_some()
                    {
                        return Err(format!("bad or repeated TYPE `{line}`"));
                    }
                }
                "HELP" | "UNIT" => {}
                _ => return Err(format!("unknown metadata `{line}`")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: `{line}`"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value in `{line}`"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or(format!("unclosed labels: `{line}`"))?;
                (name, parse_labels(inner)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name, true) {
            return Err(format!("bad sample name in `{line}`"));
        }
        let declared = types.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            suffixes.iter().any(|s| name == format!("{family}{s}"))
        });
        if !declared {
            return Err(format!("sample `{name}` of no declared family"));
        }
        if samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(format!("repeated sample `{line}`"));
        }
    }
    if !eof {
        return Err("no # EOF".into());
    }
    check_histograms(&samples)?;
    Ok(samples)
}

fn check_histograms(samples: &HashMap<Series, f64>) -> Result<(), String> {
    let mut buckets: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
    for ((name, labels), value) in samples {
        if let Some(family) = name.strip_suffix("_bucket") {
            let mut rest = labels.clone();
            let le = rest
                .remove("le")
                .ok_or(format!("bucket of {family} without le"))?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().map_err(|_| format!("le {le}"))?
            };
            buckets
                .entry((family.to_owned(), rest))
                .or_default()
                .push((le, *value));
        }
    }
    for ((family, labels), mut list) in buckets {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
        if list.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{family} {labels:?}: buckets decrease"));
        }
        let count = samples.get(&(format!("{family}_count"), labels.clone()));
        if list.last().map(|l| (l.0, Some(&l.1))) != Some((f64::INFINITY, count)) {
            return Err(format!("{family} {labels:?}: +Inf bucket is not _count"));
        }
    }
    Ok(())
}

/// The value of `name` with exactly `labels`, 0 when absent.
pub(crate) fn value(samples: &HashMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

async fn scrape(farm: &Farm, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(format!("{}{}", farm.url, routes::METRICS));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

#[test]
fn the_strict_parser_refuses_what_prometheus_would() {
    let good = "# TYPE a counter\na_total{x=\"1\"} 2\n# EOF\n";
    assert_eq!(value(&parse(good).unwrap(), "a_total", &[("x", "1")]), 2.0);
    for bad in [
        "# TYPE a counter\na_total 2\n",
        "a_total 2\n# EOF\n",
        "# TYPE a counter\na 2\n# EOF\n",
        "# TYPE a counter\na_total{x=\"1} 2\n# EOF\n",
        "# TYPE a counter\na_total{x=\"1\",} 2\n# EOF\n",
        "# TYPE a counter\na_total{1x=\"1\"} 2\n# EOF\n",
        "# TYPE a counter\na_total two\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_need_an_admin_parse_strictly_and_move_when_a_job_renders() {
    let scenes = shared_tempdir();
    let pov = scenes.path().join("ball.pov");
    let ini = scenes.path().join("ball.ini");
    std::fs::write(&pov, pov_scene(None)).unwrap();
    std::fs::write(&ini, pov_ini(1, 4, 32, 24)).unwrap();
    let mut farm = Farm::start(|_| {}).await;
    let admin = farm.client.token().unwrap().to_owned();

    // Refused without credentials and to a submitter: nobody on the LAN reads the farm.
    assert_eq!(scrape(&farm, None).await.0, StatusCode::UNAUTHORIZED);
    let submitter = farm.client_as("sam", Role::Submitter).await;
    assert_eq!(
        scrape(&farm, submitter.token()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        scrape(&farm, Some("not-a-token")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, text) = scrape(&farm, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let before = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        value(&before, "idlefarm_frames_total", &[("outcome", "done")]),
        0.0
    );

    farm.add_agent("m1");
    let opts = SubmitOptions {
        ini: Some(ini),
        name: Some("secret-project-name".into()),
        ..SubmitOptions::default()
    };
    let job = farm.client.submit(&pov, &opts).await.unwrap();
    let job = wait_for_job(&farm.client, job.id, Duration::from_secs(240)).await;
    assert_eq!(job.state, JobState::Done);
    assert_complete(&farm, &job).await;

    let (_, text) = scrape(&farm, Some(&admin)).await;
    let after = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        !text.contains("secret-project-name"),
        "a job name leaked:\n{text}"
    );
    assert_eq!(
        value(&after, "idlefarm_frames_total", &[("outcome", "done")]),
        4.0
    );
    assert_eq!(value(&after, "idlefarm_jobs", &[("state", "done")]), 1.0);
    assert_eq!(value(&after, "idlefarm_leases_outstanding", &[]), 0.0);
    let agents: f64 = ["idle", "rendering", "offline"]
        .iter()
        .map(|s| value(&after, "idlefarm_agents", &[("state", s)]))
        .sum();
    assert_eq!(agents, 1.0, "the one agent is idle, rendering or offline");
    assert_eq!(
        value(
            &after,
            "idlefarm_assembly_duration_seconds_count",
            &[("outcome", "ok")]
        ),
        1.0
    );
    // Per route template, never per raw path: four frame uploads in one series.
    let frame_route = [("method", "PUT"), ("route", routes::AGENT_FRAME)];
    assert!(value(&after, "idlefarm_uploaded_bytes_total", &frame_route) > 4.0 * 100.0);
    assert!(
        value(
            &after,
            "idlefarm_http_request_duration_seconds_count",
            &frame_route
        ) >= 4.0
    );
    let submit = [("method", "POST"), ("route", routes::JOBS)];
    assert!(value(&after, "idlefarm_uploaded_bytes_total", &submit) > 0.0);
    assert!(
        after.keys().all(|(_, labels)| labels
            .get("route")
            .is_none_or(|r| !r.contains("/jobs/1") && !r.contains("/leases/1"))),
        "a raw path became a label:\n{text}"
    );
    farm.stop().await;
}
