//! The presence monitor: watches every source (logind sessions — or, while logind cannot be
//! reached, utmp logins and X sockets ([`utmp`](super::utmp)) — X11 / Mutter / terminal input
//! idle time, other CPU use, the schedule), asks the [`policy`](super::policy) for a verdict and
//! publishes [`Availability`] on a watch channel the agent reads.
//!
//! Event-driven where the source allows: logind's `SessionNew`/`SessionRemoved` and property
//! signals wake the monitor at once. Input idle time has to be polled: slowly while nothing
//! renders, fast (every [`PresenceConfig::fast_poll`]) from the moment a renderer is spawned
//! (the render module wakes the monitor then) until shortly after the last one ended, so a
//! person who touches the mouse stops it within a fraction of a second ([`cadence`]). The lease
//! loop asks for a fresh reading before it takes work ([`Presence::confirm`]). Becoming
//! unavailable is published at once; becoming available only after the verdict held for the
//! settle time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use idlefarm_protocol::PresenceState;
use tokio::sync::{Notify, watch};

use super::cadence::{self, Rendering};

use super::cpu::{Hysteresis, OtherCpu};
use super::logind::{Logind, Session};
use super::policy::{self, Observation, Policy, SessionObservation, Verdict};
use super::schedule::{Schedule, WeekTime};
use super::x11::{X11Idle, find_xauthority};
use super::{Availability, Presence, mutter, tty, utmp};
use crate::render::process::{renderer_starts, running_groups};
use crate::status::{SourceStatus, StatusEvent, StatusHub};

/// How presence is decided.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// When the agent may take work.
    pub policy: Policy,
    /// Under `idle`: how long input must have been idle.
    pub idle_after: Duration,
    /// How long the conditions must hold before work starts.
    pub settle: Duration,
    /// Weekly schedule; `None` = any time.
    pub schedule: Option<Schedule>,
    /// D-Bus address of the system bus (logind); `None` = the standard system bus.
    pub system_bus: Option<String>,
    /// The utmp file read for logins while logind cannot be reached.
    pub utmp: PathBuf,
    /// Where X servers' sockets are looked for while logind cannot be reached.
    pub x11_sockets: PathBuf,
    /// Under `idle`: other programs' CPU share (percent of the whole machine) that counts as busy.
    pub cpu_threshold: f32,
    /// How long other CPU use must stay above (or below) the threshold to flip.
    pub cpu_hold: Duration,
    /// Poll interval while nothing renders.
    pub slow_poll: Duration,
    /// Poll interval for input idle time while a renderer runs.
    pub fast_poll: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            policy: Policy::NoUser,
            idle_after: Duration::from_secs(300),
            settle: Duration::from_secs(30),
            schedule: None,
            system_bus: None,
            utmp: PathBuf::from(utmp::DEFAULT_UTMP),
            x11_sockets: PathBuf::from(utmp::DEFAULT_X11_SOCKETS),
            cpu_threshold: 30.0,
            cpu_hold: Duration::from_secs(10),
            slow_poll: Duration::from_secs(2),
            fast_poll: Duration::from_millis(40),
        }
    }
}

/// Presence from real detection, published by a background task.
pub struct DetectedPresence {
    tx: watch::Sender<Availability>,
    reason: Arc<Mutex<String>>,
    /// When the last reading (a monitor tick) began.
    read_at: watch::Sender<Option<Instant>>,
    /// Asks the monitor for a reading now.
    wake: Arc<Notify>,
    fast_poll: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl DetectedPresence {
    /// Starts watching. Until the first verdict the PC counts as unavailable.
    pub fn start(config: PresenceConfig, hub: StatusHub) -> Arc<DetectedPresence> {
        let tx = watch::Sender::new(Availability::Unavailable(PresenceState::UserPresent));
        let reason = Arc::new(Mutex::new("starting".to_owned()));
        let read_at = watch::Sender::new(None);
        let wake = Arc::new(Notify::new());
        let fast_poll = config.fast_poll;
        let monitor = Monitor::new(config, hub, tx.clone(), reason.clone());
        let task = tokio::spawn(monitor.run(read_at.clone(), wake.clone()));
        Arc::new(DetectedPresence {
            tx,
            reason,
            read_at,
            wake,
            fast_poll,
            task,
        })
    }

    /// Why the PC is (un)available, in words.
    pub fn reason(&self) -> String {
        self.reason.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for DetectedPresence {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Presence for DetectedPresence {
    fn watch(&self) -> watch::Receiver<Availability> {
        self.tx.subscribe()
    }

    fn confirm(&self) -> BoxFuture<'_, Availability> {
        Box::pin(async move {
            let asked = Instant::now();
            let mut read_at = self.read_at.subscribe();
            let fresh = read_at
                .borrow()
                .is_some_and(|t| cadence::is_fresh(asked.duration_since(t), self.fast_poll));
            if !fresh {
                self.wake.notify_one();
                let newer = read_at.wait_for(|t| t.is_some_and(|t| t >= asked)).await;
                if newer.is_err() {
                    // The monitor is gone: nothing vouches for the PC being free.
                    return Availability::Unavailable(PresenceState::UserPresent);
                }
            }
            *self.tx.borrow()
        })
    }
}

const LOGIND_RETRY: Duration = Duration::from_secs(10);
const SESSION_REFRESH: Duration = Duration::from_secs(10);
/// utmp has no change signal: reading it (a few records) often is how a login is noticed.
const UTMP_REFRESH: Duration = Duration::from_secs(1);
/// Reading every process's CPU time costs a few milliseconds on a busy desktop: often enough
/// for the hysteresis, rare enough for the idle footprint target.
const CPU_SAMPLE: Duration = Duration::from_secs(2);
/// How long a failed X connection is not retried (finding the Xauthority scans /proc).
const X11_RETRY: Duration = Duration::from_secs(10);

struct Monitor {
    config: PresenceConfig,
    hub: StatusHub,
    tx: watch::Sender<Availability>,
    reason: Arc<Mutex<String>>,
    logind: Option<Logind>,
    logind_error: String,
    logind_tried: Option<Instant>,
    changes: Option<BoxStream<'static, ()>>,
    sessions: Result<Vec<Session>, String>,
    sessions_read: Option<Instant>,
    /// Whether `sessions` came from utmp because logind could not be reached.
    from_utmp: bool,
    x11: HashMap<String, X11Idle>,
    x11_failed: HashMap<String, (Instant, String)>,
    cpu: OtherCpu,
    cpu_busy: Hysteresis,
    cpu_last: Option<(Instant, f32)>,
    ok_since: Option<Instant>,
    persons_before: usize,
}

impl Monitor {
    fn new(
        config: PresenceConfig,
        hub: StatusHub,
        tx: watch::Sender<Availability>,
        reason: Arc<Mutex<String>>,
    ) -> Monitor {
        let cpu_busy = Hysteresis::new(config.cpu_threshold, config.cpu_hold, config.cpu_hold * 2);
        Monitor {
            config,
            hub,
            tx,
            reason,
            logind: None,
            logind_error: "not connected yet".into(),
            logind_tried: None,
            changes: None,
            sessions: Err("not read yet".into()),
            sessions_read: None,
            from_utmp: false,
            x11: HashMap::new(),
            x11_failed: HashMap::new(),
            cpu: OtherCpu::new(),
            cpu_busy,
            cpu_last: None,
            ok_since: None,
            persons_before: 0,
        }
    }

    /// Reads and publishes until aborted; `read_at` gets the start of every reading, `wake`
    /// asks for one at once.
    async fn run(mut self, read_at: watch::Sender<Option<Instant>>, wake: Arc<Notify>) {
        let mut starts = renderer_starts();
        let mut last_render: Option<Instant> = None;
        loop {
            let began = Instant::now();
            self.tick().await;
            read_at.send_replace(Some(began));
            let now = Instant::now();
            let rendering = !running_groups().is_empty();
            if rendering {
                last_render = Some(now);
            }
            let wait = cadence::next_wait(
                self.config.policy,
                Rendering {
                    now: rendering,
                    since_last: last_render.map(|t| now.duration_since(t)),
                },
                self.config.fast_poll,
                self.config.slow_poll,
            );
            let changes = async {
                match self.changes.as_mut() {
                    Some(changes) => Some(changes.next().await.is_some()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = changes => match change {
                    Some(false) => self.drop_logind("the system bus connection was lost".into()),
                    _ => self.sessions_read = None,
                },
                // A renderer was just spawned: read input now, then fast while it runs.
                _ = starts.changed() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn drop_logind(&mut self, why: String) {
        self.logind = None;
        self.changes = None;
        self.logind_error = why.clone();
        self.sessions = Err(why);
    }

    async fn refresh_sessions(&mut self) {
        if self.logind.is_none()
            && self
                .logind_tried
                .is_none_or(|t| t.elapsed() >= LOGIND_RETRY)
        {
            self.logind_tried = Some(Instant::now());
            match Logind::connect(self.config.system_bus.as_deref()).await {
                Ok(l) => {
                    self.changes = l.changes().await.ok();
                    self.logind = Some(l);
                    self.sessions_read = None;
                }
                Err(e) => self.drop_logind(e.to_string()),
            }
        }
        let Some(logind) = &self.logind else {
            self.read_utmp();
            return;
        };
        if self.from_utmp {
            self.from_utmp = false;
            self.sessions_read = None;
        }
        if self
            .sessions_read
            .is_some_and(|t| t.elapsed() < SESSION_REFRESH)
        {
            return;
        }
        match logind.sessions().await {
            Ok(s) => {
                self.sessions = Ok(s);
                self.sessions_read = Some(Instant::now());
            }
            Err(e) => self.drop_logind(e.to_string()),
        }
    }

    /// The fallback while logind cannot be reached: logins from utmp and the X sockets.
    fn read_utmp(&mut self) {
        let fresh = self.from_utmp
            && self
                .sessions_read
                .is_some_and(|t| t.elapsed() < UTMP_REFRESH);
        if fresh {
            return;
        }
        self.from_utmp = true;
        self.sessions_read = Some(Instant::now());
        self.sessions = utmp::sessions(&self.config.utmp, &self.config.x11_sockets)
            .map_err(|e| format!("{}; and without logind: {e}", self.logind_error));
    }

    async fn input_idle(&mut self, s: &Session) -> Result<Duration, String> {
        match s.kind.as_str() {
            "x11" => {
                let display = s.display.clone().ok_or("X11 session without a display")?;
                if !self.x11.contains_key(&display) {
                    if let Some((at, why)) = self.x11_failed.get(&display)
                        && at.elapsed() < X11_RETRY
                    {
                        return Err(why.clone());
                    }
                    let auth = find_xauthority(&display, s.uid);
                    match X11Idle::connect(&display, auth.as_deref()) {
                        Ok(conn) => {
                            self.x11_failed.remove(&display);
                            self.x11.insert(display.clone(), conn);
                        }
                        Err(why) => {
                            self.x11_failed
                                .insert(display, (Instant::now(), why.clone()));
                            return Err(why);
                        }
                    }
                }
                let result = self.x11[&display].idle();
                if result.is_err() {
                    self.x11.remove(&display);
                }
                result
            }
            "wayland" => mutter::mutter_idle(s.uid, None).await,
            _ => {
                let now = SystemTime::now();
                tty::session_tty_idle(s, now).or_else(|_| tty::user_pts_idle(s.uid, now))
            }
        }
    }

    fn other_cpu(&mut self) -> Option<(bool, f32)> {
        let due = self.cpu_last.is_none_or(|(t, _)| t.elapsed() >= CPU_SAMPLE);
        if due {
            let own = std::process::id();
            let groups = running_groups();
            let pct = self
                .cpu
                .sample(&|pid, pgid| pid == own || groups.contains(&pgid));
            // `OtherCpu::new` took the baseline, so even the first sample covers an interval.
            self.cpu_last = Some((Instant::now(), pct));
            self.cpu_busy.update(pct, Instant::now());
        }
        self.cpu_last.map(|(_, pct)| (self.cpu_busy.busy(), pct))
    }

    async fn tick(&mut self) {
        let needs_sessions = self.config.policy != Policy::Always;
        if needs_sessions {
            self.refresh_sessions().await;
        }
        let persons: Vec<Session> = match &self.sessions {
            Ok(s) => s.iter().filter(|s| s.is_person()).cloned().collect(),
            Err(_) => Vec::new(),
        };
        let sessions = match &self.sessions {
            Ok(_) => {
                let mut observed = Vec::with_capacity(persons.len());
                for s in &persons {
                    let input_idle = if self.config.policy == Policy::Idle {
                        self.input_idle(s).await
                    } else {
                        Err("not measured under this policy".into())
                    };
                    observed.push(SessionObservation {
                        session: s.clone(),
                        input_idle,
                    });
                }
                Ok(observed)
            }
            Err(e) => Err(e.clone()),
        };
        let other_cpu = if self.config.policy == Policy::Idle {
            self.other_cpu()
        } else {
            Some((false, 0.0))
        };
        let in_schedule = self
            .config
            .schedule
            .as_ref()
            .is_none_or(|s| s.allows(WeekTime::now()));
        let obs = Observation {
            sessions,
            other_cpu,
            in_schedule,
            draining: false,
        };
        let verdict = policy::evaluate(self.config.policy, self.config.idle_after, &obs);

        if !persons.is_empty() && self.persons_before == 0 {
            self.hub.person_arrived();
        }
        self.persons_before = persons.len();
        self.publish(&verdict, &obs);
    }

    fn publish(&mut self, verdict: &Verdict, obs: &Observation) {
        let now = Instant::now();
        let settled = if verdict.available {
            let since = *self.ok_since.get_or_insert(now);
            now.duration_since(since) >= self.config.settle
        } else {
            self.ok_since = None;
            false
        };
        let current = *self.tx.borrow();
        let next = if settled {
            Availability::Available
        } else if verdict.available {
            // Settling: keep saying what was true before.
            match current {
                Availability::Available => Availability::Unavailable(PresenceState::UserPresent),
                other => other,
            }
        } else {
            Availability::Unavailable(verdict.state)
        };
        let reason = if verdict.available && !settled {
            let left = self.config.settle.saturating_sub(
                self.ok_since
                    .map_or(Duration::ZERO, |s| now.duration_since(s)),
            );
            format!(
                "{} (settling, {} to go)",
                verdict.reason,
                policy::human(left)
            )
        } else {
            verdict.reason.clone()
        };
        if next != current {
            let entered = match next {
                Availability::Available => PresenceState::Idle,
                Availability::Unavailable(s) => s,
            };
            // Before the verdict goes out, so a renderer stopped for it finds this reading.
            self.hub.metrics().presence_changed(entered, now);
        }
        self.tx.send_if_modified(|a| {
            if *a == next {
                false
            } else {
                tracing::info!(availability = ?next, "presence: {reason}");
                *a = next;
                true
            }
        });
        if let Ok(mut r) = self.reason.lock() {
            r.clone_from(&reason);
        }
        let state = match next {
            Availability::Available => PresenceState::Idle,
            Availability::Unavailable(s) => s,
        };
        // The hub fills in its own frame and job counts when it sends the snapshot.
        self.hub.set_snapshot(StatusEvent::Snapshot {
            presence: state,
            reason,
            sources: self.sources(obs),
            frames_since_login: 0,
            jobs_since_login: 0,
            coordinator_problem: None,
            coordinator: None,
        });
    }

    fn sources(&self, obs: &Observation) -> Vec<SourceStatus> {
        let mut out = vec![SourceStatus {
            source: "policy".into(),
            reading: self.config.policy.to_string(),
        }];
        if self.from_utmp {
            out.push(SourceStatus {
                source: "logind".into(),
                reading: format!(
                    "unknown: {} (logins read from utmp instead)",
                    self.logind_error
                ),
            });
        }
        let logind = match &obs.sessions {
            Err(why) => format!("unknown: {why}"),
            Ok(s) if s.is_empty() => "no user sessions".into(),
            Ok(s) => {
                let names: Vec<String> = s
                    .iter()
                    .map(|o| {
                        format!(
                            "{} ({}, {})",
                            o.session.user,
                            o.session.kind,
                            o.session.seat.as_deref().unwrap_or("remote")
                        )
                    })
                    .collect();
                format!("{} user session(s): {}", s.len(), names.join(", "))
            }
        };
        out.push(SourceStatus {
            source: if self.from_utmp { "utmp" } else { "logind" }.into(),
            reading: logind,
        });
        if let Ok(sessions) = &obs.sessions {
            for o in sessions {
                let reading = match &o.input_idle {
                    Ok(d) => format!("input idle {}", policy::human(*d)),
                    Err(why) => format!("unknown: {why}"),
                };
                out.push(SourceStatus {
                    source: format!("input {} {}", o.session.user, o.session.kind),
                    reading,
                });
            }
        }
        if self.config.policy == Policy::Idle {
            let reading = match obs.other_cpu {
                None => "unknown: measuring".into(),
                Some((busy, pct)) => {
                    format!("{pct:.0}% other use{}", if busy { " (busy)" } else { "" })
                }
            };
            out.push(SourceStatus {
                source: "cpu".into(),
                reading,
            });
        }
        if let Some(s) = &self.config.schedule {
            let reading = if obs.in_schedule {
                format!("inside `{s}`")
            } else {
                format!("outside `{s}`")
            };
            out.push(SourceStatus {
                source: "schedule".into(),
                reading,
            });
        }
        out
    }
}
