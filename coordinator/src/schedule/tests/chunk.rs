//! Chunk sizing: probe, target time, fair split of the tail, fixed sizes.

use crate::schedule::{ChunkPolicy, Peer, chunk_size, others_finish_first};

#[test]
fn chunk_size_probes_then_targets_then_splits_the_tail() {
    let p = ChunkPolicy {
        fixed: None,
        target_secs: 60.0,
        probe_frames: 2,
        guess_secs: None,
        farm_rate: None,
    };
    assert_eq!(chunk_size(&p, None, 100, 2), 2);
    assert_eq!(chunk_size(&p, Some(10.0), 100, 2), 6);
    assert_eq!(chunk_size(&p, Some(0.5), 100, 2), 50);
    assert_eq!(chunk_size(&p, Some(0.5), 7, 3), 3);
    assert_eq!(chunk_size(&p, Some(1000.0), 7, 3), 1);
    let fixed = ChunkPolicy {
        fixed: Some(4),
        ..p
    };
    assert_eq!(chunk_size(&fixed, None, 2, 9), 4);
}

#[test]
fn an_unmeasured_agent_gets_a_probe_no_longer_than_the_target_at_the_slowest_speed_seen() {
    let p = |guess| ChunkPolicy {
        fixed: None,
        target_secs: 120.0,
        probe_frames: 2,
        guess_secs: guess,
        farm_rate: None,
    };
    assert_eq!(chunk_size(&p(Some(600.0)), None, 24, 4), 1);
    assert_eq!(chunk_size(&p(Some(1.0)), None, 2000, 4), 2);
    assert_eq!(chunk_size(&p(Some(0.0)), None, 2000, 4), 2);
    assert_eq!(chunk_size(&p(None), None, 24, 4), 2);
    // Once measured, the agent's own speed counts, not the guess.
    assert_eq!(chunk_size(&p(Some(600.0)), Some(10.0), 2000, 4), 12);
}

#[test]
fn near_the_end_of_a_job_shares_follow_speed() {
    let p = ChunkPolicy {
        fixed: None,
        target_secs: 3600.0,
        probe_frames: 2,
        guess_secs: None,
        // One PC at 1 frame/s and three at 1/3 frame/s: 2 frames/s together.
        farm_rate: Some(2.0),
    };
    assert_eq!(chunk_size(&p, Some(1.0), 40, 4), 20);
    assert_eq!(chunk_size(&p, Some(3.0), 40, 4), 7);
    // Without speeds the split is even.
    let even = ChunkPolicy {
        farm_rate: None,
        ..p
    };
    assert_eq!(chunk_size(&even, Some(3.0), 40, 4), 10);
}

#[test]
fn a_slow_pc_leaves_the_last_frames_to_faster_ones_that_finish_them_first() {
    let idle = |secs_per_frame| Peer {
        free_in: 0.0,
        secs_per_frame,
    };
    // A 40-minute PC; two idle 10-minute PCs do 8 frames in 40 minutes.
    assert!(others_finish_first(8, 2400.0, &[idle(600.0), idle(600.0)]));
    assert!(!others_finish_first(9, 2400.0, &[idle(600.0), idle(600.0)]));
    // A peer busy for another 35 minutes does nothing in time.
    let busy = Peer {
        free_in: 2100.0,
        secs_per_frame: 600.0,
    };
    assert!(!others_finish_first(1, 2400.0, &[busy]));
    // A peer slower than the asker does not count; nor does an empty farm.
    assert!(!others_finish_first(1, 600.0, &[idle(2400.0)]));
    assert!(!others_finish_first(0, 600.0, &[]));
}
