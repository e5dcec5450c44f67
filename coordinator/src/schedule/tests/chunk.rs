//! Chunk sizing: probe, target time, fair split of the tail, fixed sizes.

use crate::schedule::{ChunkPolicy, chunk_size};

#[test]
fn chunk_size_probes_then_targets_then_splits_the_tail() {
    let p = ChunkPolicy {
        fixed: None,
        target_secs: 60.0,
        probe_frames: 2,
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
