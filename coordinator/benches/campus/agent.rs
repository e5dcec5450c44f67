//! One simulated lab PC of the campus load bench, speaking the agent's protocol over HTTP as
//! `idlefarm-agent` does: a heartbeat every 5 s (first one at a random moment), long-polled
//! lease requests while its PC is free (again 250 ms after "none", as the agent's loop does),
//! its job's input downloaded once per job, each frame "rendered" (a sleep) and uploaded (the
//! same real PNG for every frame, paced over the whole campus), the lease ended. Now and then
//! a person sits down at the PC: a lease in progress is yielded, as the agent does.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use idlefarm_protocol::{
    AUTHORIZATION, HeartbeatRequest, HeartbeatResponse, ImageFormat, Lease, LeaseEnd, LeaseOutcome,
    LeaseRequest, LeaseResponse, PresenceState, routes,
};
use tokio_util::sync::CancellationToken;

use crate::stats::{Stats, error_kind};

/// How often an agent heartbeats (the agent's default).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// The coordinator's long poll (`LEASE_LONG_POLL`): an empty answer after it is on time.
const LONG_POLL: Duration = Duration::from_secs(10);
/// The agent's shortest wait before asking again after "none".
const MIN_RETRY: Duration = Duration::from_millis(250);

/// What every simulated agent shares.
pub struct Campus {
    /// One HTTP client (keep-alive pool) for every agent.
    pub http: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where latencies and errors go.
    pub stats: Stats,
    /// The frame every agent uploads.
    pub png: Bytes,
    /// Spaces uploads evenly: one frame per tick over the whole campus.
    pub pacer: tokio::sync::Mutex<tokio::time::Interval>,
    /// How long "rendering" one frame takes, at least and at most (ms).
    pub render_ms: (u64, u64),
    /// Chance per heartbeat that a person sits down at a free PC, and that one leaves a used
    /// PC (about one PC in ten is in use at a time).
    pub people: (f64, f64),
    /// When the bench started; the clock of `work_at_ms`.
    pub t0: Instant,
    /// Milliseconds after `t0` at which work last became available (a job submitted, a lease
    /// yielded): a lease request woken by it is timed from then, not from when it started
    /// waiting.
    pub work_at_ms: AtomicU64,
    /// Ends every agent.
    pub stop: CancellationToken,
    /// Leases handed out, for the summary.
    pub leases: AtomicU64,
}

impl Campus {
    /// Notes that work became available now.
    pub fn work_appeared(&self) {
        let now = self.t0.elapsed().as_millis() as u64;
        self.work_at_ms.fetch_max(now, Ordering::Relaxed);
    }
}

/// An enrolled agent.
pub struct Agent {
    /// Its `Authorization` header value.
    pub auth: String,
    /// A small random generator of its own (xorshift), seeded by its id.
    rng: Mutex<u64>,
    /// Whether a person is using its PC.
    in_use: AtomicBool,
    /// The lease it works on (0: none).
    lease: AtomicU64,
    /// Whether the coordinator revoked its lease.
    revoked: AtomicBool,
}

impl Agent {
    /// An agent with credentials `id`/`secret`.
    pub fn new(id: i64, secret: &str) -> Agent {
        Agent {
            auth: format!("Bearer {id}.{secret}"),
            rng: Mutex::new(0x9E37_79B9_7F4A_7C15 ^ (id as u64).wrapping_mul(0x2545_F491)),
            in_use: AtomicBool::new(false),
            lease: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
        }
    }

    /// A number in `[0, 1)`.
    fn random(&self) -> f64 {
        let mut s = self.rng.lock().expect("not poisoned");
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    fn presence(&self) -> PresenceState {
        match (
            self.in_use.load(Ordering::Relaxed),
            self.lease.load(Ordering::Relaxed),
        ) {
            (true, _) => PresenceState::UserPresent,
            (false, 0) => PresenceState::Idle,
            (false, _) => PresenceState::Rendering,
        }
    }
}

/// Runs one agent (heartbeats and work) until the campus stops.
pub async fn run(campus: Arc<Campus>, agent: Arc<Agent>) {
    let beat = tokio::spawn(heartbeats(campus.clone(), agent.clone()));
    work(&campus, &agent).await;
    let _ = beat.await;
}

async fn heartbeats(campus: Arc<Campus>, agent: Arc<Agent>) {
    let jitter = Duration::from_secs_f64(HEARTBEAT.as_secs_f64() * agent.random());
    if sleep_or_stop(&campus, jitter).await {
        return;
    }
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = campus.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (sits, leaves) = campus.people;
        let change = match agent.in_use.load(Ordering::Relaxed) {
            true => leaves,
            false => sits,
        };
        if agent.random() < change {
            agent.in_use.fetch_xor(true, Ordering::Relaxed);
        }
        let lease = agent.lease.load(Ordering::Relaxed);
        let request = HeartbeatRequest {
            presence: agent.presence(),
            leases: (lease != 0).then_some(lease as i64).into_iter().collect(),
        };
        let url = format!("{}{}", campus.url, routes::AGENT_HEARTBEAT);
        let started = Instant::now();
        let answer = campus
            .http
            .post(url)
            .header(AUTHORIZATION, &agent.auth)
            .json(&request)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match answer {
            Ok(response) => {
                campus.stats.sample("heartbeat", started.elapsed(), false);
                let body: Result<HeartbeatResponse, _> = response.json().await;
                if body.is_ok_and(|b| !b.revoked.is_empty()) {
                    agent.revoked.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => campus.stats.error("heartbeat", &error_kind(&e)),
        }
    }
}

/// Sleeps `wait`; says whether the campus stopped meanwhile.
async fn sleep_or_stop(campus: &Campus, wait: Duration) -> bool {
    tokio::select! {
        _ = campus.stop.cancelled() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}

async fn work(campus: &Campus, agent: &Agent) {
    let mut inputs: HashSet<String> = HashSet::new();
    let jitter = Duration::from_secs_f64(HEARTBEAT.as_secs_f64() * agent.random());
    if sleep_or_stop(campus, jitter).await {
        return;
    }
    while !campus.stop.is_cancelled() {
        if agent.in_use.load(Ordering::Relaxed) {
            if sleep_or_stop(campus, Duration::from_secs(1)).await {
                return;
            }
            continue;
        }
        let wait = match ask(campus, agent).await {
            Ok(Some(lease)) => {
                campus.leases.fetch_add(1, Ordering::Relaxed);
                render(campus, agent, lease, &mut inputs).await;
                Duration::ZERO
            }
            Ok(None) => MIN_RETRY,
            Err(()) => Duration::from_secs(1),
        };
        if sleep_or_stop(campus, wait).await {
            return;
        }
    }
}

/// One long-polled lease request. Its latency is counted from when it was sent or, if later,
/// from when work last appeared (it waited for that legitimately); an empty answer after the
/// whole long poll, from the end of the long poll.
async fn ask(campus: &Campus, agent: &Agent) -> Result<Option<Lease>, ()> {
    let url = format!("{}{}", campus.url, routes::AGENT_LEASE);
    let sent = Instant::now();
    let request = LeaseRequest {
        presence: PresenceState::Idle,
        slots: 1,
    };
    let answer = tokio::select! {
        _ = campus.stop.cancelled() => return Err(()),
        answer = async {
            let response = campus
                .http
                .post(url)
                .header(AUTHORIZATION, &agent.auth)
                .json(&request)
                .send()
                .await?
                .error_for_status()?;
            response.json::<LeaseResponse>().await
        } => answer,
    };
    let answered = Instant::now();
    let waited = answered - sent;
    let lease = match answer {
        Ok(response) => response.lease,
        Err(e) => {
            campus.stats.error("lease", &error_kind(&e));
            return Err(());
        }
    };
    let work_at = campus.t0 + Duration::from_millis(campus.work_at_ms.load(Ordering::Relaxed));
    let since = match lease.is_none() && waited >= LONG_POLL {
        // Kept waiting for the whole long poll (woken, perhaps, but nothing left for it).
        true => sent + LONG_POLL,
        false => sent.max(work_at.min(answered)),
    };
    let route = match lease.is_some() {
        true => "lease (with work)",
        false => "lease (none)",
    };
    campus.stats.sample(route, answered - since, false);
    Ok(lease)
}

/// Works on a lease: input, frames, end; yields it when a person sits down.
async fn render(campus: &Campus, agent: &Agent, lease: Lease, inputs: &mut HashSet<String>) {
    agent.lease.store(lease.id as u64, Ordering::Relaxed);
    agent.revoked.store(false, Ordering::Relaxed);
    let mut outcome = LeaseOutcome::Complete;
    if inputs.insert(lease.input_hash.clone()) {
        let url = format!("{}{}", campus.url, routes::agent_blob(&lease.input_hash));
        let result = timed(campus, "input download", |http| http.get(&url), agent).await;
        if result.is_err() {
            inputs.remove(&lease.input_hash);
        }
    }
    for &frame in &lease.frames {
        let (low, high) = campus.render_ms;
        let ms = low + ((high - low) as f64 * agent.random()) as u64;
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            if campus.stop.is_cancelled() || agent.revoked.load(Ordering::Relaxed) {
                agent.lease.store(0, Ordering::Relaxed);
                return;
            }
            if agent.in_use.load(Ordering::Relaxed) {
                outcome = LeaseOutcome::Yield;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500).min(deadline - Instant::now())).await;
        }
        if outcome == LeaseOutcome::Yield {
            break;
        }
        tokio::select! {
            _ = campus.stop.cancelled() => return,
            _ = async { campus.pacer.lock().await.tick().await } => {}
        }
        let url = format!(
            "{}{}",
            campus.url,
            routes::agent_frame(lease.id, frame, ImageFormat::Png)
        );
        let body = campus.png.clone();
        let put = |http: &reqwest::Client| {
            http.put(&url)
                .header(reqwest::header::CONTENT_TYPE, "image/png")
                .body(body.clone())
        };
        let _ = timed(campus, "frame upload", put, agent).await;
    }
    if outcome == LeaseOutcome::Yield {
        campus.work_appeared();
    }
    let end = LeaseEnd {
        outcome,
        message: None,
        log_tail: None,
    };
    let url = format!("{}{}", campus.url, routes::agent_lease_end(lease.id));
    let _ = timed(
        campus,
        "lease end",
        |http| http.post(&url).json(&end),
        agent,
    )
    .await;
    agent.lease.store(0, Ordering::Relaxed);
}

/// Sends a request built by `build` with the agent's credentials; records its latency or error.
async fn timed(
    campus: &Campus,
    route: &'static str,
    build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    agent: &Agent,
) -> Result<(), ()> {
    let started = Instant::now();
    let answer = build(&campus.http)
        .header(AUTHORIZATION, &agent.auth)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match answer {
        Ok(response) => match response.bytes().await {
            Ok(_) => {
                campus.stats.sample(route, started.elapsed(), false);
                Ok(())
            }
            Err(e) => {
                campus.stats.error(route, &error_kind(&e));
                Err(())
            }
        },
        Err(e) => {
            campus.stats.error(route, &error_kind(&e));
            Err(())
        }
    }
}
