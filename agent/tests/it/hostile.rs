//! Hostile leases (issue 11): a lease the agent cannot even prepare fails with its reason instead
//! of going back to the queue, and an agent whose leases keep ending badly slows down instead of
//! asking again at once, while it still takes the other jobs.

use std::sync::Arc;
use std::time::Duration;

use idlefarm_agent::AlwaysAvailable;
use idlefarm_protocol::{InputKind, LeaseOutcome};

use crate::coordinator::{Agent, add_lease, lease_end, start_coordinator, wait_for};
use crate::support::*;

/// The name from the reproducer: 10,000 characters and `.pov`.
fn hostile_name() -> String {
    format!("{}.pov", "a".repeat(10_000))
}

#[tokio::test]
async fn a_lease_whose_input_cannot_be_created_fails_with_the_reason_and_does_not_spin() {
    let (url, fake) = start_coordinator().await;
    // Like a coordinator that re-queues the frames of every lease that does not complete.
    fake.lock().unwrap().requeue = true;
    let dir = open_tempdir();
    let name = hostile_name();
    add_lease(
        &fake,
        1,
        ball_scene(false).into_bytes(),
        InputKind::File,
        &name,
        povray_settings(&name, 32, 24, 1),
        vec![1],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(30), |f| lease_end(f, 1)).await;
    assert_eq!(end.outcome, LeaseOutcome::Failed, "{end:?}");
    let message = end.message.unwrap_or_default();
    assert!(
        message.contains("10004 bytes") && message.contains("at most 255"),
        "{message}"
    );
    assert!(message.len() < 300, "the report quotes the whole name");

    // The same lease keeps coming back: the agent waits longer each time instead of spinning.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let work_dir = agent.work_dir.clone();
    agent.shutdown().await.unwrap();
    let fake = fake.lock().unwrap();
    assert!(fake.ends.len() >= 2, "the agent stopped asking for work");
    assert!(
        fake.lease_requests <= 5,
        "{} lease requests in about 4 s",
        fake.lease_requests
    );
    assert!(
        fake.ends
            .iter()
            .all(|(_, e)| e.outcome == LeaseOutcome::Failed),
        "{:?}",
        fake.ends
    );
    assert_eq!(fake.blob_downloads, 0, "the input was downloaded anyway");
    let cached = std::fs::read_dir(work_dir.join("cache")).unwrap().count();
    assert_eq!(cached, 0, "something was stored in the cache");
}

#[tokio::test]
async fn an_agent_slowed_by_a_bad_job_still_renders_the_others() {
    let (url, fake) = start_coordinator().await;
    fake.lock().unwrap().requeue = true;
    let dir = open_tempdir();
    let name = hostile_name();
    add_lease(
        &fake,
        1,
        ball_scene(false).into_bytes(),
        InputKind::File,
        &name,
        povray_settings(&name, 32, 24, 1),
        vec![1],
    );
    add_lease(
        &fake,
        2,
        ball_scene(false).into_bytes(),
        InputKind::File,
        "ball.pov",
        povray_settings("ball.pov", 32, 24, 2),
        vec![1, 2],
    );
    let agent = Agent::start(&url, dir.path(), Arc::new(AlwaysAvailable));
    let end = wait_for(&fake, Duration::from_secs(60), |f| lease_end(f, 2)).await;
    assert_eq!(end.outcome, LeaseOutcome::Complete, "{end:?}");
    let first = lease_end(&fake.lock().unwrap(), 1).expect("the bad lease was not reported");
    assert_eq!(first.outcome, LeaseOutcome::Failed);
    agent.shutdown().await.unwrap();
}
