//! The disk budget against a stand-in coordinator: inputs used least recently leave the cache
//! to make room, an input that cannot fit is declined (not failed), and no lease folder stays.

use std::sync::Arc;
use std::time::Duration;

use idlefarm_agent::budget::{DiskBudget, MinFree};
use idlefarm_agent::{AgentConfig, AlwaysAvailable};
use idlefarm_protocol::{InputKind, LeaseOutcome};
use tokio::sync::oneshot;

use crate::coordinator::{TOKEN, add_lease, lease_end, start_coordinator, wait_for};
use crate::support::*;

/// A small scene padded with a comment to about `bytes` bytes.
fn scene_of(bytes: usize, tag: &str) -> Vec<u8> {
    format!("// {tag} {}\n{}", "x".repeat(bytes), ball_scene(false)).into_bytes()
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_inputs_are_evicted_and_an_input_that_cannot_fit_is_declined() {
    let (url, fake) = start_coordinator().await;
    let dir = open_tempdir();
    let settings = |main: &str| povray_settings(main, 32, 24, 1);
    let first = add_lease(
        &fake,
        1,
        scene_of(600 << 10, "a"),
        InputKind::File,
        "a.pov",
        settings("a.pov"),
        vec![1],
    );
    let second = add_lease(
        &fake,
        2,
        scene_of(600 << 10, "b"),
        InputKind::File,
        "b.pov",
        settings("b.pov"),
        vec![1],
    );
    add_lease(
        &fake,
        3,
        scene_of(2 << 20, "c"),
        InputKind::File,
        "c.pov",
        settings("c.pov"),
        vec![1],
    );

    let mut config = AgentConfig::new(&url, TOKEN, dir.path().to_path_buf());
    config.heartbeat_interval = Duration::from_millis(200);
    config.disk_budget = DiskBudget {
        max_cache: 1 << 20,
        min_free: MinFree::Bytes(0),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(idlefarm_agent::run(
        config,
        Arc::new(AlwaysAvailable),
        async {
            let _ = stopped.await;
        },
    ));

    let ends = wait_for(&fake, Duration::from_secs(60), |f| {
        Some([lease_end(f, 1)?, lease_end(f, 2)?, lease_end(f, 3)?])
    })
    .await;
    assert_eq!(ends[0].outcome, LeaseOutcome::Complete, "{:?}", ends[0]);
    assert_eq!(ends[1].outcome, LeaseOutcome::Complete, "{:?}", ends[1]);
    assert_eq!(ends[2].outcome, LeaseOutcome::Declined, "{:?}", ends[2]);
    let why = ends[2].message.clone().unwrap_or_default();
    assert!(
        why.starts_with("its input needs 2.0 MiB and this PC's disk budget leaves"),
        "{why}"
    );

    // Two 600 KiB inputs do not fit a 1 MiB cache: the first made room for the second, and
    // the declined one evicted nothing.
    let cache = names_in(&dir.path().join("cache"));
    assert_eq!(cache, [second], "first input {first} should be gone");
    assert!(names_in(&dir.path().join("leases")).is_empty());

    let _ = stop.send(());
    agent.await.unwrap().unwrap();
}
