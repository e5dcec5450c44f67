//! The presence monitor as a whole, on real sources: other programs keeping the CPU busy make
//! an `idle`-policy agent unavailable while a short spike does not, sources that cannot be
//! read never count as idle — the status says why — and a person who touches the PC between
//! chunks or just before a renderer starts is seen at once (Xvfb + xdotool).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use idlefarm_agent::presence::monitor::{DetectedPresence, PresenceConfig};
use idlefarm_agent::presence::policy::Policy;
use idlefarm_agent::status::{StatusEvent, StatusHub, read_snapshot};
use idlefarm_agent::{Availability, Presence};
use idlefarm_protocol::PresenceState;

use crate::dbus_support::MockLogind;
use crate::x_support::Xvfb;

/// Busy loops, one per core, each in its own process group; killed on drop.
struct Burners(Vec<Child>);

impl Burners {
    fn start() -> Burners {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..cores)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .unwrap()
            })
            .collect();
        Burners(children)
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `presence` satisfies `want`, failing after `limit`.
async fn wait_for(
    presence: &Arc<DetectedPresence>,
    limit: Duration,
    want: impl Fn(Availability) -> bool,
) {
    let mut rx = presence.watch();
    let reached = tokio::time::timeout(limit, rx.wait_for(|a| want(*a)))
        .await
        .is_ok();
    assert!(
        reached,
        "presence stayed {:?} ({}) for {limit:?}",
        *rx.borrow(),
        presence.reason()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_other_cpu_use_makes_the_pc_unavailable_but_a_spike_does_not() {
    let logind = MockLogind::start().await;
    let config = PresenceConfig {
        policy: Policy::Idle,
        settle: Duration::ZERO,
        system_bus: Some(logind.bus.address.clone()),
        cpu_threshold: 60.0,
        cpu_hold: Duration::from_secs(3),
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, StatusHub::new());
    wait_for(&presence, Duration::from_secs(60), |a| {
        a == Availability::Available
    })
    .await;

    // A spike shorter than the hold time: the PC stays available throughout.
    let spike = Burners::start();
    let mut rx = presence.watch();
    let watch_until = Instant::now() + Duration::from_secs(6);
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(spike);
    while Instant::now() < watch_until {
        assert_eq!(
            *rx.borrow_and_update(),
            Availability::Available,
            "flapped on a spike: {}",
            presence.reason()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Sustained use: unavailable, and the reason names the CPU.
    let burners = Burners::start();
    wait_for(&presence, Duration::from_secs(30), |a| {
        a == Availability::Unavailable(PresenceState::UserPresent)
    })
    .await;
    assert!(
        presence.reason().contains("% of the CPU"),
        "{}",
        presence.reason()
    );
    drop(burners);
    wait_for(&presence, Duration::from_secs(60), |a| {
        a == Availability::Available
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_logind_is_not_idle_and_the_status_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("status.sock");
    let hub = StatusHub::new();
    let _server = hub.serve(&socket).unwrap();
    let config = PresenceConfig {
        policy: Policy::Idle,
        settle: Duration::ZERO,
        system_bus: Some(format!("unix:path={}", dir.path().join("no-bus").display())),
        // No utmp either, so nothing says who is here.
        utmp: dir.path().join("no-utmp"),
        slow_poll: Duration::from_millis(200),
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, hub);
    // Give it several rounds: it must stay unavailable.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        *presence.watch().borrow(),
        Availability::Unavailable(PresenceState::UserPresent)
    );
    assert!(
        presence.reason().contains("cannot reach logind"),
        "{}",
        presence.reason()
    );
    let StatusEvent::Snapshot {
        reason, sources, ..
    } = read_snapshot(&socket).await.unwrap()
    else {
        panic!("the first line is a snapshot");
    };
    assert!(reason.contains("not idle"), "{reason}");
    let logind = sources
        .iter()
        .find(|s| s.source == "logind")
        .expect("logind is listed");
    assert!(
        logind.reading.starts_with("unknown: cannot reach logind"),
        "{}",
        logind.reading
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_whose_display_cannot_be_reached_counts_as_present() {
    let logind = MockLogind::start().await;
    logind
        .add_session("c1", 4242, "carol", "user", "x11", Some(":77"))
        .await;
    let config = PresenceConfig {
        policy: Policy::Idle,
        idle_after: Duration::from_millis(1),
        settle: Duration::ZERO,
        system_bus: Some(logind.bus.address.clone()),
        slow_poll: Duration::from_millis(200),
        cpu_threshold: 100.0,
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, StatusHub::new());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        *presence.watch().borrow(),
        Availability::Unavailable(PresenceState::UserPresent)
    );
    let reason = presence.reason();
    assert!(
        reason.contains("carol") && reason.contains(":77") && reason.contains("counted as present"),
        "{reason}"
    );

    // The same under no-user: a person is logged in, so no work either way.
    let config = PresenceConfig {
        policy: Policy::NoUser,
        settle: Duration::ZERO,
        system_bus: Some(logind.bus.address.clone()),
        ..PresenceConfig::default()
    };
    let no_user = DetectedPresence::start(config, StatusHub::new());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(no_user.reason().contains("carol"), "{}", no_user.reason());
}

/// A session process on `xvfb`'s display, where the monitor finds the Xauthority cookie.
struct SessionProcess(Child);

impl Drop for SessionProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks for fresh readings until the PC is available.
async fn confirm_until_available(presence: &Arc<DetectedPresence>) {
    let available = tokio::time::timeout(Duration::from_secs(30), async {
        while presence.confirm().await != Availability::Available {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(available.is_ok(), "never available: {}", presence.reason());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renderer_start_wakes_the_monitor_and_work_waits_for_a_fresh_reading() {
    let xvfb = Xvfb::start();
    let _session = SessionProcess(
        xvfb.env(&mut Command::new("sleep"))
            .arg("infinity")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let logind = MockLogind::start().await;
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    logind
        .add_session("2", uid, "person", "user", "x11", Some(&xvfb.display))
        .await;
    let config = PresenceConfig {
        policy: Policy::Idle,
        idle_after: Duration::from_millis(300),
        settle: Duration::ZERO,
        system_bus: Some(logind.bus.address.clone()),
        cpu_threshold: 100.0,
        // On its own the monitor would not read again within this test: only a renderer
        // start, a request for a fresh reading or fast polling can make it notice a person.
        slow_poll: Duration::from_secs(3600),
        fast_poll: Duration::from_millis(1),
        ..PresenceConfig::default()
    };
    let presence = DetectedPresence::start(config, StatusHub::new());
    confirm_until_available(&presence).await;

    // Between chunks: the lease loop's fresh reading sees a person who touched the mouse
    // after the last reading, however recent the watch's "available" looks.
    xvfb.touch_mouse();
    assert_ne!(
        presence.confirm().await,
        Availability::Available,
        "{}",
        presence.reason()
    );
    confirm_until_available(&presence).await;

    // A person touches the PC just before a renderer starts: its spawn wakes the monitor.
    xvfb.touch_mouse();
    let mut sleeper = tokio::process::Command::new("sleep");
    sleeper.arg("60");
    let (renderer, _lines) = idlefarm_agent::render::process::spawn(sleeper, None, None)
        .expect("spawn a stand-in renderer");
    wait_for(&presence, Duration::from_secs(20), |a| {
        a != Availability::Available
    })
    .await;
    // While it runs, input is read fast: the monitor sees the person leave and come back
    // without anyone asking.
    wait_for(&presence, Duration::from_secs(20), |a| {
        a == Availability::Available
    })
    .await;
    xvfb.touch_mouse();
    wait_for(&presence, Duration::from_secs(20), |a| {
        a != Availability::Available
    })
    .await;
    drop(renderer);
}
