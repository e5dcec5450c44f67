//! Straggler backups through the real coordinator: a PC whose person came back does not hold a
//! job's last frame; an idle PC renders a second copy with real POV-Ray, the first copy's lease
//! is revoked at its next heartbeat, and nothing counts as a failure.

use std::time::Duration;

use idlefarm_protocol::{LeaseEnd, LeaseOutcome, PresenceState, Renderer};

use crate::common::{Farm, shared_tempdir, wait_for_job};
use crate::hostile_agent::{FakeAgent, H, W, submit_pov};

/// Frame 1 of the `submit_pov` scene rendered by `povray` by hand, as an agent would.
fn rendered_frame_one() -> Vec<u8> {
    let dir = shared_tempdir();
    std::fs::write(dir.path().join("s.pov"), crate::scenes::pov_scene(None)).unwrap();
    let out = dir.path().join("f.png");
    let run = std::process::Command::new("povray")
        .current_dir(dir.path())
        .arg("+Is.pov")
        .arg(format!("+O{}", out.display()))
        .args([
            "+FN",
            &format!("+W{W}"),
            &format!("+H{H}"),
            "+A",
            "-D",
            "-V",
            "+K0",
        ])
        .output()
        .expect("povray runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(out).unwrap()
}

#[tokio::test]
async fn the_last_frame_held_by_a_pc_in_use_is_rendered_by_an_idle_pc_and_the_first_lease_revoked()
{
    let mut farm = Farm::start(|_| {}).await;
    let job = submit_pov(&farm, 2, 1).await;
    // PC "a" renders frame 1 (so the farm knows its speed on this job), then takes frame 2.
    let a = FakeAgent::enrol(&farm, "a", &[Renderer::Povray]).await;
    let first = a.lease().await;
    assert_eq!(first.frames, vec![1]);
    assert_eq!(
        a.put_frame(first.id, 1, rendered_frame_one()).await.status,
        200
    );
    let complete = LeaseEnd {
        outcome: LeaseOutcome::Complete,
        message: None,
        log_tail: None,
    };
    assert_eq!(a.end(first.id, &complete).await.status, 200);
    let second = a.lease().await;
    assert_eq!(second.frames, vec![2]);
    // Its person comes back: the render is stopped, and the PC says so.
    let held = [second.id];
    assert!(
        a.heartbeat(PresenceState::Suspended, &held)
            .await
            .is_empty()
    );

    // A real agent joins. Nothing is queued, so it gets a second copy of frame 2.
    farm.add_agent("b");
    let done = wait_for_job(&farm.client, job.id, Duration::from_secs(120)).await;
    assert_eq!(done.frames.done, 2, "{done:?}");
    assert_eq!(done.frames.failed, 0);

    // The first copy lost the race: its lease is revoked at its next heartbeat, and its late
    // frame is not wanted.
    assert_eq!(a.heartbeat(PresenceState::Suspended, &held).await, held);
    let late = a.put_frame(second.id, 2, rendered_frame_one()).await;
    assert_eq!(late.status, 409, "{late:?}");
    let agents = farm.client.agents().await.unwrap();
    let by_name = |n: &str| agents.iter().find(|x| x.name == n).unwrap();
    assert_eq!((by_name("a").frames_done, by_name("b").frames_done), (1, 1));
    assert_eq!(
        by_name("a").failures + by_name("b").failures,
        0,
        "a lost race is no failure"
    );
    farm.stop().await;
}
