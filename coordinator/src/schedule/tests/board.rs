//! One job's board: chunks, failures on distinct agents, render times, revoke, retry, re-render
//! and restore.

use std::collections::BTreeMap;

use crate::schedule::{
    Board, FrameReject, FrameSlot, FrameState, LeaseEnding, LeaseSlot, MAX_FRAME_FAILURES,
    UnknownFrame,
};

#[test]
fn chunks_are_consecutive_queued_frames() {
    let mut b = Board::new(1..=10);
    assert_eq!(b.take_chunk(1, 7, 3, 0, 1000), Some(vec![0, 1, 2]));
    assert_eq!(b.take_chunk(2, 8, 3, 0, 1000), Some(vec![3, 4, 5]));
    b.end_lease(1, LeaseEnding::Yield);
    assert_eq!(b.take_chunk(3, 8, 10, 0, 1000), Some(vec![0, 1, 2]));
    assert_eq!(b.frames[0].failures, 0, "a yield is not a failure");
    assert_eq!(b.frames[0].attempts, 2, "two leases took frame 1");
    assert_eq!(b.frames[6].attempts, 0);
}

#[test]
fn one_agent_failing_again_and_again_does_not_fail_the_frame() {
    let mut b = Board::new([5]);
    for lease in 0..5 {
        b.take_chunk(lease, 1, 1, 0, 10).unwrap();
        b.end_lease(lease, LeaseEnding::Failed);
    }
    assert_eq!(b.frames[0].state, FrameState::Queued);
    assert_eq!(b.frames[0].failures, 5);
    assert_eq!(b.frames[0].failed_on, vec![1]);
    assert!(!b.is_stuck());
}

#[test]
fn a_frame_fails_for_good_on_distinct_agents() {
    let mut b = Board::new([5]);
    for (lease, agent) in [(0, 7), (1, 7), (2, 8), (3, 9)] {
        assert_eq!(b.frames[0].state, FrameState::Queued);
        b.take_chunk(lease, agent, 1, 0, 10).unwrap();
        b.end_lease(lease, LeaseEnding::Failed);
    }
    assert_eq!(b.frames[0].state, FrameState::Failed);
    assert_eq!(b.frames[0].failed_on, vec![7, 8, 9]);
    assert_eq!(b.frames[0].failed_on.len(), MAX_FRAME_FAILURES as usize);
    assert_eq!(b.frames[0].failures, 4);
    assert!(b.is_stuck());
    assert_eq!(b.take_chunk(99, 1, 1, 0, 10), None);
    assert_eq!(b.wants(5), Err(FrameReject::Failed));
}

#[test]
fn a_complete_lease_missing_frames_counts_against_them() {
    let mut b = Board::new(1..=3);
    b.take_chunk(1, 4, 3, 0, 100).unwrap();
    b.frame_done(1, 4, 10).unwrap();
    let (_, changed) = b.end_lease(1, LeaseEnding::Complete).unwrap();
    assert_eq!(changed, vec![1, 2]);
    assert_eq!(b.frames[0].failed_on, Vec::<i64>::new(), "delivered");
    assert_eq!(b.frames[1].failed_on, vec![4]);
    assert_eq!(b.frames[2].failures, 1);
}

#[test]
fn yields_and_expiries_never_count() {
    let mut b = Board::new(1..=2);
    b.take_chunk(1, 4, 2, 0, 100).unwrap();
    b.end_lease(1, LeaseEnding::Yield);
    b.take_chunk(2, 4, 2, 0, 100).unwrap();
    for id in b.expired(100) {
        b.end_lease(id, LeaseEnding::Expired);
    }
    for f in &b.frames {
        assert_eq!((f.failures, f.failed_on.len(), f.attempts), (0, 0, 2));
        assert_eq!(f.state, FrameState::Queued);
    }
}

#[test]
fn late_frames_of_an_expired_lease_still_count() {
    let mut b = Board::new(1..=2);
    b.take_chunk(1, 1, 2, 0, 10);
    for id in b.expired(10) {
        b.end_lease(id, LeaseEnding::Expired);
    }
    assert_eq!(b.frame_done(1, 1, 50), Ok(0));
    assert_eq!(b.frames[0].render_ms, None, "no live lease held it");
    assert_eq!(b.frame_done(1, 2, 60), Err(FrameReject::AlreadyDone));
    assert_eq!(b.frame_done(42, 2, 60), Err(FrameReject::Unknown));
    assert_eq!(b.take_chunk(2, 2, 5, 20, 10), Some(vec![1]));
}

#[test]
fn render_time_runs_from_the_lease_start_then_from_the_previous_frame() {
    let mut b = Board::new(1..=3);
    b.take_chunk(1, 1, 3, 1_000, 60_000).unwrap();
    b.frame_done(1, 1, 4_000).unwrap();
    b.frame_done(2, 1, 4_500).unwrap();
    assert_eq!(b.frames[0].render_ms, Some(3_000));
    assert_eq!(b.frames[1].render_ms, Some(500));
    assert_eq!(b.leases[&1].last_progress, 4_500);
    // A queued frame delivered by someone without a lease has no measured time.
    b.end_lease(1, LeaseEnding::Yield);
    b.frame_done(3, 2, 9_000).unwrap();
    assert_eq!(b.frames[2].render_ms, None);
}

#[test]
fn revoke_all_requeues_unfinished_frames_without_failures() {
    let mut b = Board::new(1..=6);
    b.take_chunk(1, 1, 2, 0, 100).unwrap();
    b.take_chunk(2, 2, 2, 0, 100).unwrap();
    b.frame_done(1, 1, 5).unwrap();
    let (ids, changed) = b.clone().revoke_all_changed();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(changed, vec![1, 2, 3]);
    assert_eq!(b.revoke_all(), vec![1, 2]);
    assert!(b.leases.is_empty());
    let c = b.counts();
    assert_eq!((c.queued, c.leased, c.done, c.failed), (5, 0, 1, 0));
    assert!(b.frames.iter().all(|f| f.failures == 0));
}

#[test]
fn retry_requeues_failed_frames_with_a_clean_history() {
    let mut b = Board::new([1, 2]);
    for (lease, agent) in [(0, 7), (1, 8), (2, 9)] {
        b.take_chunk(lease, agent, 1, 0, 10).unwrap();
        b.end_lease(lease, LeaseEnding::Failed);
    }
    assert_eq!(b.frames[0].state, FrameState::Failed);
    assert_eq!(b.retry_failed(), vec![0]);
    let f = &b.frames[0];
    assert_eq!(
        (f.state, f.failures, f.failed_on.len()),
        (FrameState::Queued, 0, 0)
    );
    assert_eq!(f.attempts, 3, "history of attempts is kept");
    assert_eq!(b.retry_failed(), Vec::<usize>::new());
}

#[test]
fn rerender_validates_every_frame_before_changing_any() {
    let mut b = Board::new(10..=13);
    b.take_chunk(1, 1, 2, 0, 100).unwrap();
    b.frame_done(10, 1, 5).unwrap();
    let before = b.clone();
    assert_eq!(b.rerender(&[10, 99, 11]), Err(UnknownFrame(99)));
    assert_eq!(b, before);
    assert_eq!(
        UnknownFrame(99).to_string(),
        "frame 99 is not part of this job"
    );
}

#[test]
fn rerender_requeues_done_and_failed_frames_and_leaves_the_rest() {
    let mut b = Board::new(10..=13);
    b.take_chunk(1, 1, 2, 0, 100).unwrap();
    b.frame_done(10, 1, 5).unwrap();
    b.frames[3].state = FrameState::Failed;
    b.frames[3].failed_on = vec![1, 2, 3];
    // 10 done, 11 leased, 12 queued, 13 failed; 10 named twice.
    assert_eq!(b.rerender(&[13, 10, 11, 12, 10]), Ok(vec![0, 3]));
    assert_eq!(b.frames[0].state, FrameState::Queued);
    assert_eq!(b.frames[0].render_ms, None);
    assert_eq!(b.frames[1].state, FrameState::Leased(1));
    assert_eq!(b.frames[3].failed_on, Vec::<i64>::new());
    // A new generation: frame 10 may be delivered again, once.
    assert_eq!(b.frame_done(10, 2, 50), Ok(0));
    assert_eq!(b.frame_done(10, 2, 60), Err(FrameReject::AlreadyDone));
}

fn lease(agent: i64, frames: Vec<usize>, started_at: i64, last_progress: i64) -> LeaseSlot {
    LeaseSlot {
        agent,
        frames,
        started_at,
        expires_at: started_at + 100,
        last_progress,
    }
}

#[test]
fn restore_repairs_what_a_crash_leaves_behind() {
    let mut frames: Vec<FrameSlot> = (1..=4).map(FrameSlot::queued).collect();
    frames[0].state = FrameState::Leased(1);
    frames[1].state = FrameState::Leased(2); // lease 2 names a frame the job lacks
    frames[2].state = FrameState::Leased(3); // lease 3 was never written
    frames[3].failed_on = vec![5, 6, 5];
    frames[3].render_ms = Some(7);
    let leases = BTreeMap::from([
        (1, lease(9, vec![0], 50, 10)),
        (2, lease(9, vec![1, 4], 0, 0)),
    ]);
    let b = Board::restore(frames, leases);
    assert_eq!(b.frames[0].state, FrameState::Leased(1));
    assert_eq!(b.leases[&1].last_progress, 50, "never before the start");
    assert!(!b.leases.contains_key(&2));
    assert_eq!(b.frames[1].state, FrameState::Queued);
    assert_eq!(b.frames[2].state, FrameState::Queued);
    assert_eq!(b.frames[3].failed_on, vec![5, 6]);
    assert_eq!(b.frames[3].render_ms, None, "only done frames have a time");
}

#[test]
fn restore_keeps_a_consistent_board_as_it_is() {
    let mut b = Board::new(1..=5);
    b.take_chunk(1, 1, 2, 0, 100).unwrap();
    b.frame_done(1, 1, 30).unwrap();
    b.take_chunk(2, 2, 2, 10, 100).unwrap();
    b.end_lease(2, LeaseEnding::Failed);
    assert_eq!(Board::restore(b.frames.clone(), b.leases.clone()), b);
}
