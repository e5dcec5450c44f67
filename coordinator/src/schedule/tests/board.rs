//! One job's board: chunks, failures on distinct agents, render times, revoke, retry, re-render
//! and restore.

use std::collections::BTreeMap;

use crate::schedule::check::{self, Candidate, Check, Look, Suspicion};
use crate::schedule::{
    Board, FrameReject, FrameSlot, FrameState, LeaseEnding, LeaseSlot, MAX_FRAME_FAILURES,
    UnknownFrame,
};

#[test]
fn chunks_are_consecutive_queued_frames() {
    let mut b = Board::new(1..=10);
    assert_eq!(b.take_chunk(1, 7, 3, 0, 1000, false), Some(vec![0, 1, 2]));
    assert_eq!(b.take_chunk(2, 8, 3, 0, 1000, false), Some(vec![3, 4, 5]));
    b.end_lease(1, LeaseEnding::Yield);
    assert_eq!(b.take_chunk(3, 8, 10, 0, 1000, false), Some(vec![0, 1, 2]));
    assert_eq!(b.frames[0].failures, 0, "a yield is not a failure");
    assert_eq!(b.frames[0].attempts, 2, "two leases took frame 1");
    assert_eq!(b.frames[6].attempts, 0);
}

#[test]
fn one_agent_failing_again_and_again_does_not_fail_the_frame() {
    let mut b = Board::new([5]);
    for lease in 0..5 {
        b.take_chunk(lease, 1, 1, 0, 10, false).unwrap();
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
        b.take_chunk(lease, agent, 1, 0, 10, false).unwrap();
        b.end_lease(lease, LeaseEnding::Failed);
    }
    assert_eq!(b.frames[0].state, FrameState::Failed);
    assert_eq!(b.frames[0].failed_on, vec![7, 8, 9]);
    assert_eq!(b.frames[0].failed_on.len(), MAX_FRAME_FAILURES as usize);
    assert_eq!(b.frames[0].failures, 4);
    assert!(b.is_stuck());
    assert_eq!(b.take_chunk(99, 1, 1, 0, 10, false), None);
    assert_eq!(b.wants(5), Err(FrameReject::Failed));
}

#[test]
fn a_complete_lease_missing_frames_counts_against_them() {
    let mut b = Board::new(1..=3);
    b.take_chunk(1, 4, 3, 0, 100, false).unwrap();
    b.frame_done(1, 4, 10, None, None).unwrap();
    let (_, changed) = b.end_lease(1, LeaseEnding::Complete).unwrap();
    assert_eq!(changed, vec![1, 2]);
    assert_eq!(b.frames[0].failed_on, Vec::<i64>::new(), "delivered");
    assert_eq!(b.frames[1].failed_on, vec![4]);
    assert_eq!(b.frames[2].failures, 1);
}

#[test]
fn yields_and_expiries_never_count() {
    let mut b = Board::new(1..=2);
    b.take_chunk(1, 4, 2, 0, 100, false).unwrap();
    b.end_lease(1, LeaseEnding::Yield);
    b.take_chunk(2, 4, 2, 0, 100, false).unwrap();
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
    b.take_chunk(1, 1, 2, 0, 10, false);
    for id in b.expired(10) {
        b.end_lease(id, LeaseEnding::Expired);
    }
    assert_eq!(b.frame_done(1, 1, 50, None, None), Ok(0));
    assert_eq!(b.frames[0].render_ms, None, "no live lease held it");
    assert_eq!(
        b.frame_done(1, 2, 60, None, None),
        Err(FrameReject::AlreadyDone)
    );
    assert_eq!(
        b.frame_done(42, 2, 60, None, None),
        Err(FrameReject::Unknown)
    );
    assert_eq!(b.take_chunk(2, 2, 5, 20, 10, false), Some(vec![1]));
}

#[test]
fn render_time_runs_from_the_lease_start_then_from_the_previous_frame() {
    let mut b = Board::new(1..=3);
    b.take_chunk(1, 1, 3, 1_000, 60_000, false).unwrap();
    b.frame_done(1, 1, 4_000, None, None).unwrap();
    b.frame_done(2, 1, 4_500, None, None).unwrap();
    assert_eq!(b.frames[0].render_ms, Some(3_000));
    assert_eq!(b.frames[1].render_ms, Some(500));
    assert_eq!(b.leases[&1].last_progress, 4_500);
    // A queued frame delivered by someone without a lease has no measured time.
    b.end_lease(1, LeaseEnding::Yield);
    b.frame_done(3, 2, 9_000, None, None).unwrap();
    assert_eq!(b.frames[2].render_ms, None);
}

#[test]
fn revoke_all_requeues_unfinished_frames_without_failures() {
    let mut b = Board::new(1..=6);
    b.take_chunk(1, 1, 2, 0, 100, false).unwrap();
    b.take_chunk(2, 2, 2, 0, 100, false).unwrap();
    b.frame_done(1, 1, 5, None, None).unwrap();
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
        b.take_chunk(lease, agent, 1, 0, 10, false).unwrap();
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
    b.take_chunk(1, 1, 2, 0, 100, false).unwrap();
    b.frame_done(10, 1, 5, None, None).unwrap();
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
    b.take_chunk(1, 1, 2, 0, 100, false).unwrap();
    b.frame_done(10, 1, 5, None, None).unwrap();
    b.frames[3].state = FrameState::Failed;
    b.frames[3].failed_on = vec![1, 2, 3];
    // 10 done, 11 leased, 12 queued, 13 failed; 10 named twice.
    assert_eq!(b.rerender(&[13, 10, 11, 12, 10]), Ok(vec![0, 3]));
    assert_eq!(b.frames[0].state, FrameState::Queued);
    assert_eq!(b.frames[0].render_ms, None);
    assert_eq!(b.frames[1].state, FrameState::Leased(1));
    assert_eq!(b.frames[3].failed_on, Vec::<i64>::new());
    // A new generation: frame 10 may be delivered again, once.
    assert_eq!(b.frame_done(10, 2, 50, None, None), Ok(0));
    assert_eq!(
        b.frame_done(10, 2, 60, None, None),
        Err(FrameReject::AlreadyDone)
    );
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
    b.take_chunk(1, 1, 2, 0, 100, false).unwrap();
    b.frame_done(1, 1, 30, None, None).unwrap();
    b.take_chunk(2, 2, 2, 10, 100, false).unwrap();
    b.end_lease(2, LeaseEnding::Failed);
    assert_eq!(Board::restore(b.frames.clone(), b.leases.clone()), b);
}

fn look(flat: bool, bytes: u64) -> Look {
    Look {
        flat: flat.then_some([0, 0, 0]),
        bytes,
    }
}

fn candidate(agent: i64, lease: i64) -> Candidate {
    Candidate {
        agent,
        lease,
        file: format!("check/{agent}.png"),
        look: look(true, 10),
        looked_wrong: true,
    }
}

#[test]
fn a_held_frame_goes_back_to_the_queue_and_waits_for_another_pc() {
    let mut b = Board::new(1..=3);
    assert_eq!(b.take_chunk(1, 7, 3, 0, 1000, false), Some(vec![0, 1, 2]));
    let why = Suspicion::Sample;
    assert_eq!(b.hold(2, candidate(7, 1), why.clone(), 5), Ok(1));
    assert_eq!(b.frames[1].state, FrameState::Queued);
    assert_eq!(b.counts().queued, 1);
    // The lease ends complete: the held frame is not its failure.
    b.frame_done(1, 7, 6, Some(look(false, 900)), None).unwrap();
    b.frame_done(3, 7, 7, Some(look(false, 900)), None).unwrap();
    b.end_lease(1, LeaseEnding::Complete).unwrap();
    assert_eq!(b.frames[1].failures, 0);
    // The PC that rendered it does not get it again while another PC is there...
    assert_eq!(b.take_chunk(2, 7, 3, 10, 1000, false), None);
    // ...unless it is alone, or the frame waited long enough.
    assert_eq!(b.take_chunk(2, 7, 3, 10, 1000, true), Some(vec![1]));
    b.end_lease(2, LeaseEnding::Yield).unwrap();
    let late = 5 + check::WAIT_FOR_OTHERS_MS;
    assert_eq!(b.take_chunk(3, 7, 3, late, 1000, false), Some(vec![1]));
    b.end_lease(3, LeaseEnding::Yield).unwrap();
    // Another PC takes it; its render settles the check.
    assert_eq!(b.take_chunk(4, 8, 3, 20, 1000, false), Some(vec![1]));
    let note = Some("confirmed by PC 7".to_owned());
    b.frame_done(2, 8, 30, Some(look(false, 900)), note.clone())
        .unwrap();
    assert_eq!(b.frames[1].state, FrameState::Done(8));
    assert_eq!(
        (b.frames[1].check.as_ref(), &b.frames[1].note),
        (None, &note)
    );
    assert!(b.is_complete());
}

#[test]
fn a_chunk_skips_held_frames_its_pc_rendered_and_stays_consecutive() {
    let mut b = Board::new(1..=5);
    b.take_chunk(1, 7, 5, 0, 1000, false).unwrap();
    b.hold(2, candidate(7, 1), Suspicion::Sample, 1).unwrap();
    b.end_lease(1, LeaseEnding::Yield).unwrap();
    assert_eq!(b.take_chunk(2, 7, 5, 2, 1000, false), Some(vec![0]));
    assert_eq!(b.take_chunk(3, 7, 5, 2, 1000, false), Some(vec![2, 3, 4]));
    assert_eq!(b.take_chunk(4, 8, 5, 2, 1000, false), Some(vec![1]));
}

#[test]
fn neighbours_are_the_nearest_done_frames_with_looks_on_each_side() {
    let mut b = Board::new(1..=7);
    b.take_chunk(1, 1, 7, 0, 1000, false).unwrap();
    for (frame, bytes) in [(1, 100), (2, 200), (3, 300), (5, 500), (7, 700)] {
        b.frame_done(frame, 1, 1, Some(look(false, bytes)), None)
            .unwrap();
    }
    let n: Vec<(i64, u64)> = (b.neighbours(3).iter())
        .map(|(f, l)| (*f, l.bytes))
        .collect();
    assert_eq!(n, vec![(2, 200), (3, 300), (5, 500), (7, 700)]);
    assert_eq!(b.neighbours(0).len(), 2, "only one side at the start");
}

#[test]
fn the_review_finds_unchecked_frames_that_look_wrong_among_their_neighbours() {
    let mut b = Board::new(1..=5);
    b.take_chunk(1, 1, 5, 0, 1000, false).unwrap();
    // Frame 1 arrived first, black, with nothing to compare it with.
    b.frame_done(1, 1, 1, Some(look(true, 10)), None).unwrap();
    for frame in 2..=4 {
        b.frame_done(frame, 1, 1, Some(look(false, 900)), None)
            .unwrap();
    }
    // Frame 5 is black too, but a check confirmed it.
    b.frame_done(5, 1, 1, Some(look(true, 10)), Some("confirmed".into()))
        .unwrap();
    let found = b.review();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, 0);
    assert!(matches!(found[0].1, Suspicion::Flat { .. }));
    b.reopen(
        0,
        Check {
            reason: found[0].1.clone(),
            since: 2,
            candidates: vec![candidate(1, 0)],
        },
    );
    assert_eq!(b.frames[0].state, FrameState::Queued);
    assert!(!b.is_complete());
    assert_eq!(b.take_chunk(2, 1, 5, 3, 1000, false), None);
    assert_eq!(b.take_chunk(2, 2, 5, 3, 1000, false), Some(vec![0]));
}

#[test]
fn a_rerender_forgets_a_check() {
    let mut b = Board::new(1..=2);
    b.take_chunk(1, 7, 2, 0, 1000, false).unwrap();
    b.hold(1, candidate(7, 1), Suspicion::Sample, 1).unwrap();
    b.frame_done(2, 7, 2, Some(look(false, 9)), Some("n".into()))
        .unwrap();
    assert_eq!(b.rerender(&[2]), Ok(vec![1]));
    assert_eq!((b.frames[1].look, &b.frames[1].note), (None, &None));
}
