//! Straggler backups: which frames may get a second copy, the race between the copies, a copy
//! taking over when the first lease yields, restore, and the choice by expected finish.

use std::collections::BTreeMap;

use crate::schedule::backup::{self, Outstanding};
use crate::schedule::{Board, FrameState, LeaseEnding};

/// Agent 1 holds frames 1–3 in lease 10 and has delivered the first two; agent 2 holds frame 4
/// in lease 20.
fn near_the_end() -> Board {
    let mut b = Board::new(1..=4);
    b.take_chunk(10, 1, 3, 0, 1000, false).unwrap();
    b.take_chunk(20, 2, 1, 0, 1000, false).unwrap();
    b.frame_done(1, 1, 50, None, None).unwrap();
    b.frame_done(2, 1, 100, None, None).unwrap();
    b
}

#[test]
fn only_the_last_frame_a_lease_still_renders_may_be_backed_up_and_only_once() {
    let mut b = near_the_end();
    let o = b.outstanding(3);
    assert_eq!(
        o,
        vec![
            Outstanding {
                index: 2,
                lease: 10,
                holder: 1,
                since: 100
            },
            Outstanding {
                index: 3,
                lease: 20,
                holder: 2,
                since: 0
            },
        ]
    );
    // Nobody backs up their own frame.
    assert!(b.outstanding(1).iter().all(|o| o.holder != 1));
    assert!(b.take_backup(30, 3, 3, 200, 1000));
    assert_eq!(
        b.frames[3].state,
        FrameState::Leased(20),
        "the frame stays with its lease"
    );
    assert_eq!(b.frames[3].attempts, 2);
    let left: Vec<usize> = b.outstanding(4).iter().map(|o| o.index).collect();
    assert_eq!(left, vec![2], "a frame gets one backup at most");
    // A lease with two frames left has none backed up.
    let mut early = Board::new(1..=3);
    early.take_chunk(1, 1, 3, 0, 1000, false).unwrap();
    early.frame_done(1, 1, 10, None, None).unwrap();
    assert!(early.outstanding(2).is_empty());
    // A frame that is not leased cannot be backed up.
    assert!(!early.take_backup(2, 2, 0, 20, 1000));
    assert!(!early.take_backup(2, 2, 9, 20, 1000));
}

#[test]
fn the_first_copy_wins_and_the_other_lease_is_superseded() {
    // The backup wins: the holder's lease has nothing left to do.
    let mut b = near_the_end();
    b.take_backup(30, 3, 3, 200, 1000);
    b.frame_done(4, 3, 900, None, None).unwrap();
    assert_eq!(b.frames[3].state, FrameState::Done(3));
    assert_eq!(
        b.frames[3].render_ms,
        Some(700),
        "timed from the backup's own lease"
    );
    assert_eq!(b.superseded(3, 3), vec![20]);
    let (_, changed) = b.end_lease(20, LeaseEnding::Yield).unwrap();
    assert!(changed.is_empty());
    assert_eq!(b.frames[3].failures, 0, "losing the race is no failure");
    // The holder wins: the backup is superseded.
    let mut b = near_the_end();
    b.take_backup(30, 3, 3, 200, 1000);
    b.frame_done(4, 2, 300, None, None).unwrap();
    assert_eq!(b.superseded(3, 2), vec![30]);
    // A lease with frames still to render is not superseded.
    let mut b = near_the_end();
    b.take_backup(30, 3, 2, 200, 1000);
    b.frame_done(3, 3, 300, None, None).unwrap();
    assert_eq!(b.superseded(2, 3), vec![10]);
    assert!(b.superseded(3, 2).is_empty());
}

#[test]
fn a_backup_takes_the_frame_over_when_the_first_lease_yields_expires_or_fails() {
    for how in [
        LeaseEnding::Yield,
        LeaseEnding::Expired,
        LeaseEnding::Failed,
    ] {
        let mut b = near_the_end();
        b.take_backup(30, 3, 3, 200, 1000);
        b.end_lease(20, how);
        assert_eq!(b.frames[3].state, FrameState::Leased(30), "{how:?}");
        assert_eq!(b.counts().queued, 0, "{how:?}: not queued a third time");
        // When the backup yields too, the frame goes back to the queue.
        b.end_lease(30, LeaseEnding::Yield);
        assert_eq!(b.frames[3].state, FrameState::Queued, "{how:?}");
    }
    // Ending the backup leaves the first lease alone.
    let mut b = near_the_end();
    b.take_backup(30, 3, 3, 200, 1000);
    let (_, changed) = b.end_lease(30, LeaseEnding::Failed).unwrap();
    assert!(changed.is_empty());
    assert_eq!(b.frames[3].state, FrameState::Leased(20));
    assert_eq!(b.frames[3].failures, 0);
}

#[test]
fn a_board_with_a_backup_survives_a_restart() {
    let mut b = near_the_end();
    b.take_backup(30, 3, 3, 200, 1000);
    let leases: BTreeMap<_, _> = b.leases.clone();
    let restored = Board::restore(b.frames.clone(), leases);
    assert_eq!(restored, b);
    assert!(restored.outstanding(4).iter().all(|o| o.index != 3));
}

#[test]
fn the_backup_goes_to_the_frame_expected_last_that_the_asker_would_beat() {
    let o = |index, since| Outstanding {
        index,
        lease: index as i64,
        holder: index as i64,
        since,
    };
    let outstanding = [o(0, 0), o(1, 0), o(2, 0)];
    // Holders 0, 1 and 2 deliver at 100, 400 and (stopped for a person) never.
    let finish = |x: &Outstanding| match x.holder {
        0 => Some(100),
        1 => Some(400),
        _ => Some(i64::MAX),
    };
    assert_eq!(
        backup::choose(&outstanding, 300, finish).map(|x| x.index),
        Some(2)
    );
    let no_stopped = |x: &Outstanding| (x.holder < 2).then(|| finish(x)).flatten();
    assert_eq!(
        backup::choose(&outstanding, 300, no_stopped).map(|x| x.index),
        Some(1)
    );
    // Slower than every holder: no backup.
    assert_eq!(backup::choose(&outstanding, 500, no_stopped), None);
    assert_eq!(backup::choose(&[], 0, finish), None);
}
