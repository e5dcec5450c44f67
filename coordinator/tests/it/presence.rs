//! Presence detection end to end: a real coordinator, an in-process agent with
//! `DetectedPresence`, real POV-Ray renders, a mocked logind (python-dbusmock on a private bus)
//! and a real X server (Xvfb) whose mouse xdotool moves.
//!
//! What is checked is what a person and the admin see: the renderer's processes stopped
//! (state `T`, no CPU time used) while the PC is in use and running again afterwards, the lease
//! given back once the person stays longer than `max_suspend`, the agent's presence on the
//! coordinator, and every job complete with each frame exactly once and no failure counted.
//! Waits have generous limits and fail with what was seen last instead of hanging.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idlefarm_agent::presence::monitor::{DetectedPresence, PresenceConfig};
use idlefarm_agent::presence::policy::Policy;
use idlefarm_agent::presence::x11::find_xauthority;
use idlefarm_agent::status::StatusHub;
use idlefarm_coordinator::client::SubmitOptions;
use idlefarm_protocol::{JobInfo, PresenceState};

use crate::common::{Farm, assert_complete, shared_tempdir, wait_for_job};
use crate::scenes::{pov_ini, pov_scene};

#[allow(dead_code)] // Shared with the agent's tests; only part of it is used here.
#[path = "../../../agent/tests/it/x_support.rs"]
mod x_support;

#[path = "../../../agent/tests/it/dbus_support.rs"]
mod dbus_support;

use dbus_support::{MockLogind, SessionSpec};
use x_support::Xvfb;

/// Longest wait for anything that should happen within a few seconds on an idle machine.
const SOON: Duration = Duration::from_secs(30);
/// Longest wait for a whole job.
const JOB_LIMIT: Duration = Duration::from_secs(240);
/// How often the tests act as the person at the mouse.
const TOUCH_EVERY: Duration = Duration::from_millis(200);
/// Under `idle`, how long input must have been idle before rendering (re)starts.
const IDLE_AFTER: Duration = Duration::from_secs(1);
/// How long the verdict must hold before rendering (re)starts.
const SETTLE: Duration = Duration::from_millis(300);
/// Heartbeat interval of the agents here, so the coordinator hears of changes quickly.
const HEARTBEAT: Duration = Duration::from_millis(300);

/// A child process killed on drop, so a failing assertion leaves nothing behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// The presence configuration the tests use: `policy` on the mocked logind, quick polls, and
/// other programs' CPU use ignored (a machine running builds and other tests is never idle by
/// that measure; the CPU source is tested in the agent's own tests). The threshold lies above
/// 100 % because the share is clamped to 100 and `>=` counts as busy.
fn presence_config(policy: Policy, logind: &MockLogind) -> PresenceConfig {
    PresenceConfig {
        policy,
        idle_after: IDLE_AFTER,
        settle: SETTLE,
        system_bus: Some(logind.bus.address.clone()),
        cpu_threshold: 1000.0,
        slow_poll: Duration::from_millis(200),
        ..PresenceConfig::default()
    }
}

/// Starts an agent on `farm` with detected presence; returns its work directory.
fn add_detected_agent(
    farm: &mut Farm,
    name: &str,
    config: PresenceConfig,
    max_suspend: Duration,
) -> PathBuf {
    let hub = StatusHub::new();
    // Served so tests can read the agent's metrics as `idlefarm-agent status --metrics` does.
    hub.serve(&status_socket(farm, name))
        .expect("status socket");
    let presence = DetectedPresence::start(config, hub.clone());
    farm.add_agent_with(name, presence, |c| {
        c.status = hub;
        c.max_suspend = max_suspend;
        c.heartbeat_interval = HEARTBEAT;
    })
}

/// The status socket of the agent `name` started by [`add_detected_agent`].
fn status_socket(farm: &Farm, name: &str) -> PathBuf {
    farm.dir.path().join(format!("{name}.sock"))
}

/// Submits a POV-Ray animation of `frames` frames at `w`×`h`, as one chunk when `chunk`.
async fn submit_pov(farm: &Farm, name: &str, frames: i64, w: u32, h: u32, chunk: bool) -> JobInfo {
    let scenes = shared_tempdir();
    let pov = scenes.path().join(format!("{name}.pov"));
    let ini = scenes.path().join(format!("{name}.ini"));
    // Each job gets its own bytes: the agent's input cache keys a single-file input by its hash
    // alone, so a second job with the same bytes under another name would not find its scene.
    std::fs::write(&pov, format!("// job {name}\n{}", pov_scene(None))).unwrap();
    std::fs::write(&ini, pov_ini(1, frames, w, h)).unwrap();
    let opts = SubmitOptions {
        ini: Some(ini),
        chunk: chunk.then(|| frames.to_string()),
        ..SubmitOptions::default()
    };
    farm.client.submit(&pov, &opts).await.unwrap()
}

/// Polls `probe` every 50 ms until it answers `Ok`; panics with its last `Err` after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < limit,
                "{what}: not so after {limit:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A renderer process as /proc shows it.
#[derive(Debug)]
struct Proc {
    pid: u32,
    /// State letter of every thread (`R`, `S`, `T`, ...).
    threads: Vec<char>,
    /// User plus system CPU time of the whole process (all its threads), in clock ticks.
    cpu_ticks: u64,
}

/// `/proc/.../stat` fields after the command name: index 0 is the state (field 3 in proc(5)).
fn stat_fields(path: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The renderers of the agent working in `work_dir`: every process whose command line mentions
/// it (only renderers are given paths inside it).
fn renderers(work_dir: &Path) -> Vec<Proc> {
    let needle = work_dir.display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let mentions = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle));
        if !mentions {
            continue;
        }
        let Some(fields) = stat_fields(Path::new(&format!("/proc/{pid}/stat"))) else {
            continue; // exited meanwhile
        };
        // utime and stime are fields 14 and 15.
        let cpu_ticks =
            fields[14 - 3].parse::<u64>().unwrap() + fields[15 - 3].parse::<u64>().unwrap();
        let mut threads = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Some(f) = stat_fields(&task.path().join("stat")) {
                    threads.push(f[0].chars().next().unwrap_or('?'));
                }
            }
        }
        out.push(Proc {
            pid,
            threads,
            cpu_ticks,
        });
    }
    out
}

/// Whether there are renderers and every thread of every one is stopped.
fn all_stopped(procs: &[Proc]) -> bool {
    !procs.is_empty() && procs.iter().all(|p| p.threads.iter().all(|&s| s == 'T'))
}

fn cpu_ticks(procs: &[Proc]) -> u64 {
    procs.iter().map(|p| p.cpu_ticks).sum()
}

/// Image files in the agent's lease folders: POV-Ray's own (`frame07.png`, the last of which it
/// may still be writing) and the renamed ones waiting for their upload (`frame_00006.png`).
/// With the renderer stopped and at most one such file, no frame can be handed over any more.
fn images_in_leases(work_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(leases) = std::fs::read_dir(work_dir.join("leases")) else {
        return out;
    };
    for lease in leases.flatten() {
        let Ok(files) = std::fs::read_dir(lease.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with("frame") && name.ends_with(".png") {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

/// Waits until the agent in `work_dir` renders `job` and has delivered at least one frame of it.
async fn wait_rendering(farm: &Farm, job: i64, work_dir: &Path) -> JobInfo {
    eventually("a renderer runs and frames arrive", JOB_LIMIT, || async {
        let j = farm.client.job(job).await.unwrap();
        assert!(
            !j.state.is_final(),
            "job {job} ended before it could be watched: {j:?}"
        );
        let procs = renderers(work_dir);
        if j.frames.done >= 1 && !procs.is_empty() {
            Ok(j)
        } else {
            Err(format!("{:?}, renderers {procs:?}", j.frames))
        }
    })
    .await
}

/// Waits until every renderer thread of the agent in `work_dir` is stopped.
async fn wait_stopped(work_dir: &Path, what: &str) -> Vec<Proc> {
    eventually(what, SOON, || async {
        let procs = renderers(work_dir);
        if all_stopped(&procs) {
            Ok(procs)
        } else {
            Err(format!("{procs:?}"))
        }
    })
    .await
}

/// Waits until no renderer thread of the agent in `work_dir` is stopped any more.
async fn wait_running(work_dir: &Path) {
    eventually("the renderer continues", SOON, || async {
        let procs = renderers(work_dir);
        if procs.iter().all(|p| p.threads.iter().all(|&s| s != 'T')) {
            Ok(())
        } else {
            Err(format!("{procs:?}"))
        }
    })
    .await;
}

/// Waits until the renderers are stopped and every frame they finished has been delivered, so
/// the job's done count cannot change while they stay stopped; returns that count.
async fn wait_quiet(farm: &Farm, job: i64, work_dir: &Path) -> u64 {
    eventually(
        "the frames finished before the stop are delivered",
        SOON,
        || async {
            let images = images_in_leases(work_dir);
            let procs = renderers(work_dir);
            if !all_stopped(&procs) {
                return Err(format!("renderers not stopped: {procs:?}"));
            }
            if images.len() > 1 {
                return Err(format!("images waiting: {images:?}"));
            }
            Ok(farm.client.job(job).await.unwrap().frames.done)
        },
    )
    .await
}

/// Waits until the coordinator lists agent `name` with a presence `accept` likes.
async fn wait_agent_presence(
    farm: &Farm,
    name: &str,
    what: &str,
    accept: impl Fn(PresenceState) -> bool,
) -> PresenceState {
    eventually(what, SOON, || async {
        let agents = farm.client.agents().await.unwrap();
        match agents.iter().find(|a| a.name == name) {
            Some(a) if accept(a.presence) => Ok(a.presence),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Asserts no frame of `job` and no agent has a failure counted.
async fn assert_no_failures(farm: &Farm, job: i64) {
    let frames = farm.client.frames(job).await.unwrap();
    let failed: Vec<_> = frames.iter().filter(|f| f.failures != 0).collect();
    assert!(failed.is_empty(), "frames with failures: {failed:?}");
    let agents = farm.client.agents().await.unwrap();
    for a in &agents {
        assert_eq!(a.failures, 0, "agent {} has failures: {a:?}", a.name);
    }
}

/// A person's X11 session on `xvfb`, as logind and /proc show it: the logind session (uid =
/// this test's, so the monitor looks for the Xauthority among this user's processes) and a
/// process of the session carrying `DISPLAY` and `XAUTHORITY`.
struct XSession {
    logind: MockLogind,
    _process: Reaped,
}

async fn x_session(xvfb: &Xvfb) -> XSession {
    let uid = current_uid();
    let process = Reaped(
        xvfb.env(&mut Command::new("sleep"))
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A new program's environment shows in /proc only once exec is done: the monitor must
    // find it on its first try (a failed X connection is not retried for a while).
    if let Some(auth) = &xvfb.auth {
        eventually("the session process shows its Xauthority", SOON, || async {
            match find_xauthority(&xvfb.display, uid) {
                Some(found) if &found == auth => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    let logind = MockLogind::start().await;
    logind
        .add_session("2", uid, "person", "user", "x11", Some(&xvfb.display))
        .await;
    XSession {
        logind,
        _process: process,
    }
}

/// The person at the mouse: a thread moving it every [`TOUCH_EVERY`] until stopped, so waits
/// and checks in the test cannot let input go idle by being slow.
struct Person {
    active: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Person {
    /// Moves the mouse once (returning after the server moved it), then keeps moving it.
    fn arrives(xvfb: &Arc<Xvfb>) -> Person {
        xvfb.touch_mouse();
        let active = Arc::new(AtomicBool::new(true));
        let thread = {
            let (xvfb, active) = (xvfb.clone(), active.clone());
            std::thread::spawn(move || {
                let mut moves = 1;
                while active.load(Ordering::Relaxed) {
                    std::thread::sleep(TOUCH_EVERY);
                    xvfb.touch_mouse();
                    moves += 1;
                }
                moves
            })
        };
        Person {
            active,
            thread: Some(thread),
        }
    }

    /// Stops moving the mouse; returns how many moves there were.
    fn leaves(mut self) -> u32 {
        self.active.store(false, Ordering::Relaxed);
        let thread = self.thread.take().unwrap();
        thread.join().expect("xdotool moved the mouse")
    }
}

impl Drop for Person {
    fn drop(&mut self) {
        self.active.store(false, Ordering::Relaxed);
    }
}

/// Runs `check` every 100 ms for `how_long`.
async fn throughout(how_long: Duration, mut check: impl AsyncFnMut()) {
    let start = Instant::now();
    while start.elapsed() < how_long {
        check().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_policy_agent_stops_for_mouse_input_resumes_and_yields() {
    let started = Instant::now();
    let xvfb = Arc::new(Xvfb::start());
    let session = x_session(&xvfb).await;

    // Phase A: a person moves the mouse; the render stops at once, stays stopped while the
    // person is active, and continues once input has been idle for `idle_after` + `settle`.
    // A short lease: the stop below outlasts it, so a lease not renewed while suspended shows.
    let mut farm = Farm::start(|c| c.lease_ttl = Duration::from_secs(3)).await;
    let work = add_detected_agent(
        &mut farm,
        "patient",
        presence_config(Policy::Idle, &session.logind),
        Duration::from_secs(60),
    );
    let job = submit_pov(&farm, "a", 40, 320, 240, true).await;
    let before = wait_rendering(&farm, job.id, &work).await;
    assert!(
        before.frames.done < 40,
        "the job finished before the mouse could move: {before:?}"
    );

    let person = Person::arrives(&xvfb);
    let procs = wait_stopped(&work, "every renderer thread stops after a mouse move").await;
    eprintln!(
        "phase A: renderer(s) {:?} stopped after the mouse moved",
        procs.iter().map(|p| p.pid).collect::<Vec<_>>()
    );
    wait_agent_presence(
        &farm,
        "patient",
        "the coordinator hears the render is suspended",
        |p| p == PresenceState::Suspended,
    )
    .await;
    let done = wait_quiet(&farm, job.id, &work).await;
    let ticks = cpu_ticks(&renderers(&work));
    throughout(Duration::from_secs(4), async || {
        let procs = renderers(&work);
        assert!(
            all_stopped(&procs),
            "a renderer ran while the person was active: {procs:?}"
        );
        assert_eq!(cpu_ticks(&procs), ticks, "a stopped renderer used CPU");
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.frames.done, done, "frames arrived while stopped");
        assert_eq!(
            j.frames.rendering + j.frames.done,
            40,
            "the lease is kept while stopped: {j:?}"
        );
    })
    .await;
    let moves = person.leaves();

    // The person leaves: after idle_after + settle the renderer runs and frames arrive again.
    wait_running(&work).await;
    eventually("frames arrive again", JOB_LIMIT, || async {
        let j = farm.client.job(job.id).await.unwrap();
        if j.frames.done > done {
            Ok(())
        } else {
            Err(format!("{:?}", j.frames))
        }
    })
    .await;
    eprintln!("phase A: {moves} mouse moves; the renderer continued afterwards");
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_no_failures(&farm, job.id).await;
    let agents = farm.client.agents().await.unwrap();
    assert_eq!(agents.iter().map(|a| a.frames_done).sum::<i64>(), 40);
    farm.stop().await;
    eprintln!("phase A took {:.1} s", started.elapsed().as_secs_f64());

    // Phase B: the person stays longer than max_suspend: the renderer is ended and the lease
    // yielded (not failed); once the person leaves, the agent takes the frames up again.
    let phase_b = Instant::now();
    // The default lease (60 s): its frames can come back within the waits below only because
    // the agent gave the lease back.
    let mut farm = Farm::start(|_| {}).await;
    let work = add_detected_agent(
        &mut farm,
        "quick",
        presence_config(Policy::Idle, &session.logind),
        Duration::from_secs(1),
    );
    let job = submit_pov(&farm, "b", 40, 320, 240, true).await;
    let before = wait_rendering(&farm, job.id, &work).await;
    assert!(
        before.frames.done < 40,
        "the job finished before the mouse could move: {before:?}"
    );

    let person = Person::arrives(&xvfb);
    let touching = Instant::now();
    wait_stopped(&work, "every renderer thread stops after a mouse move").await;
    let yielded = eventually(
        "the lease is yielded while the person stays",
        SOON,
        || async {
            let procs = renderers(&work);
            let j = farm.client.job(job.id).await.unwrap();
            if procs.is_empty() && j.frames.rendering == 0 {
                Ok(j)
            } else {
                Err(format!("{:?}, renderers {procs:?}", j.frames))
            }
        },
    )
    .await;
    eprintln!(
        "phase B: lease yielded {:.1} s after the mouse moved: {:?}",
        touching.elapsed().as_secs_f64(),
        yielded.frames
    );
    assert!(
        yielded.frames.queued > 0 && yielded.frames.done < 40,
        "the yielded frames are queued again: {yielded:?}"
    );
    // While the person stays, the frames wait for them.
    throughout(Duration::from_secs(1), async || {
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(
            j.frames.rendering, 0,
            "leased while the person is active: {j:?}"
        );
        let procs = renderers(&work);
        assert!(
            procs.is_empty(),
            "rendering while the person is active: {procs:?}"
        );
    })
    .await;
    person.leaves();
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_no_failures(&farm, job.id).await;
    let agents = farm.client.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.frames_done).sum::<i64>(),
        40,
        "no frame counted twice"
    );
    farm.stop().await;
    eprintln!(
        "phase B took {:.1} s; whole test {:.1} s",
        phase_b.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logind_sessions_decide_a_no_user_agent() {
    let started = Instant::now();
    let logind = MockLogind::start().await;
    let mut farm = Farm::start(|c| c.lease_ttl = Duration::from_secs(5)).await;
    let work = add_detected_agent(
        &mut farm,
        "lab",
        presence_config(Policy::NoUser, &logind),
        Duration::from_secs(60),
    );
    wait_agent_presence(&farm, "lab", "the agent is idle", |p| {
        p == PresenceState::Idle
    })
    .await;

    // A greeter (the login screen) is nobody: work goes on while it exists.
    let greeter = SessionSpec::new("c1", 120, "gdm", "greeter", "x11");
    logind.add(&greeter).await;
    let first = submit_pov(&farm, "greeter", 12, 160, 120, false).await;
    let first_job = eventually("the job is done beside the greeter", JOB_LIMIT, || async {
        let j = farm.client.job(first.id).await.unwrap();
        let procs = renderers(&work);
        assert!(
            !procs.iter().any(|p| p.threads.contains(&'T')),
            "the renderer stopped for a greeter: {procs:?}"
        );
        let agents = farm.client.agents().await.unwrap();
        assert!(
            agents
                .iter()
                .all(|a| matches!(a.presence, PresenceState::Idle | PresenceState::Rendering)),
            "a greeter counts as a person: {agents:?}"
        );
        if j.state.is_final() {
            Ok(j)
        } else {
            Err(format!("{:?}", j.frames))
        }
    })
    .await;
    assert_complete(&farm, &first_job).await;

    // A person logs in at the seat while a job renders: the renderer stops at once and the
    // coordinator is told.
    let job = submit_pov(&farm, "person", 40, 320, 240, true).await;
    let before = wait_rendering(&farm, job.id, &work).await;
    assert!(
        before.frames.done < 40,
        "the job finished before anyone could log in: {before:?}"
    );
    let mut alice = SessionSpec::new("3", 1000, "alice", "user", "tty");
    alice.tty = "tty2".into();
    logind.add(&alice).await;
    wait_stopped(&work, "every renderer thread stops when a person logs in").await;
    wait_agent_presence(
        &farm,
        "lab",
        "the coordinator hears the agent is in use",
        |p| matches!(p, PresenceState::Suspended | PresenceState::UserPresent),
    )
    .await;
    let done = wait_quiet(&farm, job.id, &work).await;
    let ticks = cpu_ticks(&renderers(&work));

    // Work submitted meanwhile waits: the agent takes nothing while the person is there.
    let second = submit_pov(&farm, "waiting", 6, 48, 32, false).await;
    throughout(HEARTBEAT * 6, async || {
        let j = farm.client.job(second.id).await.unwrap();
        assert_eq!(
            (j.frames.queued, j.frames.rendering, j.frames.done),
            (6, 0, 0),
            "the second job got work while a person is logged in: {j:?}"
        );
        let procs = renderers(&work);
        assert!(all_stopped(&procs), "the renderer ran: {procs:?}");
        assert_eq!(cpu_ticks(&procs), ticks, "a stopped renderer used CPU");
        let j = farm.client.job(job.id).await.unwrap();
        assert_eq!(j.frames.done, done, "frames arrived while stopped");
    })
    .await;

    // The person logs out: the render continues and both jobs finish.
    logind.remove_session("3").await;
    wait_running(&work).await;
    let job = wait_for_job(&farm.client, job.id, JOB_LIMIT).await;
    let second = wait_for_job(&farm.client, second.id, JOB_LIMIT).await;
    assert_complete(&farm, &job).await;
    assert_complete(&farm, &second).await;
    for id in [first_job.id, job.id, second.id] {
        assert_no_failures(&farm, id).await;
    }

    // The agent's metrics saw it all: the login, the stop and how long the stop took.
    let text = idlefarm_agent::metrics::read_metrics(&status_socket(&farm, "lab"))
        .await
        .unwrap();
    let m = crate::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let v = |name: &str, labels: &[(&str, &str)]| crate::metrics::value(&m, name, labels);
    assert!(v("idlefarm_agent_suspensions_total", &[]) >= 1.0, "{text}");
    assert!(
        v("idlefarm_agent_yield_latency_seconds_count", &[]) >= 1.0,
        "{text}"
    );
    let entered = |state| {
        v(
            "idlefarm_agent_presence_transitions_total",
            &[("state", state)],
        )
    };
    assert!(
        entered("user-present") >= 1.0 && entered("idle") >= 1.0,
        "{text}"
    );
    assert_eq!(
        v("idlefarm_agent_frames_total", &[]),
        12.0 + 40.0 + 6.0,
        "{text}"
    );
    assert_eq!(
        v("idlefarm_agent_leases_total", &[("outcome", "failed")]),
        0.0
    );
    eprintln!(
        "yield latency (reading to SIGSTOP): {:.2} ms over {} stop(s)",
        1000.0 * v("idlefarm_agent_yield_latency_seconds_sum", &[])
            / v("idlefarm_agent_yield_latency_seconds_count", &[]),
        v("idlefarm_agent_yield_latency_seconds_count", &[])
    );
    farm.stop().await;
    eprintln!("no-user test took {:.1} s", started.elapsed().as_secs_f64());
}
