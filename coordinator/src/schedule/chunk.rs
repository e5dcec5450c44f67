//! How big the next chunk should be: a probe for an unmeasured agent, then enough frames to keep
//! it busy for the target time, split fairly near the end of a job so no straggler holds it.

/// Inputs to the chunk size decision.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPolicy {
    /// The submitter's fixed chunk size, if any.
    pub fixed: Option<u32>,
    /// How long a chunk should take, in seconds.
    pub target_secs: f64,
    /// How many frames the first chunk of an unmeasured agent gets.
    pub probe_frames: usize,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        ChunkPolicy {
            fixed: None,
            target_secs: 120.0,
            probe_frames: 2,
        }
    }
}

/// How many frames the next chunk for an agent should hold.
///
/// `secs_per_frame` is the agent's measured time on this job (`None` before its first chunk);
/// `queued` the frames waiting; `agents` how many agents can work on the job. Near the end of a
/// job the remaining frames are split between the agents so no single straggler holds the job.
pub fn chunk_size(
    policy: &ChunkPolicy,
    secs_per_frame: Option<f64>,
    queued: usize,
    agents: usize,
) -> usize {
    if let Some(fixed) = policy.fixed {
        return (fixed as usize).max(1);
    }
    let fair_share = queued.div_ceil(agents.max(1)).max(1);
    let wanted = match secs_per_frame {
        None => policy.probe_frames,
        Some(spf) if spf > 0.0 => (policy.target_secs / spf).floor() as usize,
        Some(_) => fair_share,
    };
    wanted.clamp(1, fair_share)
}
