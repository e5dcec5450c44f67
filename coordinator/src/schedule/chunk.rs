//! How big the next chunk should be: a small probe for an unmeasured agent, then enough frames to keep
//! it busy for the target time, split fairly near the end of a job so no straggler holds it.

/// Inputs to the chunk size decision.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPolicy {
    /// The submitter's fixed chunk size, if any.
    pub fixed: Option<u32>,
    /// How long a chunk should take, in seconds.
    pub target_secs: f64,
    /// How many frames the first chunk of an unmeasured agent gets, at most.
    pub probe_frames: usize,
    /// Seconds per frame to assume for an unmeasured agent, once other agents delivered frames
    /// of the job (see [`super::Speeds::guess`]): its first chunk then also stays within the
    /// target time.
    pub guess_secs: Option<f64>,
    /// Frames per second the agents that can work on the job render together (this one
    /// included), when their speeds are known: near the end of a job each agent's share of the
    /// queue is then in proportion to its speed, so a slow PC does not end up with the last
    /// long chunk.
    pub farm_rate: Option<f64>,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        ChunkPolicy {
            fixed: None,
            target_secs: 120.0,
            // One frame: a slow PC must not start with two frames of a job whose frames turn
            // out to take ten minutes each.
            probe_frames: 1,
            guess_secs: None,
            farm_rate: None,
        }
    }
}

/// How many frames the next chunk for an agent should hold.
///
/// `secs_per_frame` is the agent's measured time on this job (`None` before its first chunk);
/// `queued` the frames waiting; `agents` how many agents can work on the job. Near the end of a
/// job the remaining frames are split between the agents (by speed when
/// [`ChunkPolicy::farm_rate`] is known, else evenly) so no single straggler holds the job.
pub fn chunk_size(
    policy: &ChunkPolicy,
    secs_per_frame: Option<f64>,
    queued: usize,
    agents: usize,
) -> usize {
    if let Some(fixed) = policy.fixed {
        return (fixed as usize).max(1);
    }
    let spf = secs_per_frame.or(policy.guess_secs).filter(|&s| s > 0.0);
    let fair_share = match (spf, policy.farm_rate) {
        (Some(spf), Some(rate)) if rate > 0.0 => (queued as f64 / spf / rate).ceil() as usize,
        _ => queued.div_ceil(agents.max(1)),
    }
    .max(1);
    let wanted = match secs_per_frame {
        None => match policy.guess_secs {
            Some(guess) if guess > 0.0 => {
                ((policy.target_secs / guess).floor() as usize).min(policy.probe_frames)
            }
            _ => policy.probe_frames,
        },
        Some(spf) if spf > 0.0 => (policy.target_secs / spf).floor() as usize,
        Some(_) => fair_share,
    };
    wanted.clamp(1, fair_share)
}

/// Another PC as seen by [`others_finish_first`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peer {
    /// Seconds until it is done with the work it holds (0 when idle).
    pub free_in: f64,
    /// Its seconds per frame on the job.
    pub secs_per_frame: f64,
}

/// Whether the free PCs `peers` would render all `queued` frames of a job before a PC that
/// takes `mine` seconds per frame could deliver even one: then it taking a frame would only
/// make the job end later (a slow PC holding the last frame), and it is better left free for
/// other work or a backup copy if a peer falls behind. Never with fewer than one peer.
pub fn others_finish_first(queued: usize, mine: f64, peers: &[Peer]) -> bool {
    let capacity: f64 = (peers.iter())
        .filter(|p| p.secs_per_frame > 0.0 && p.free_in < mine)
        .map(|p| ((mine - p.free_in) / p.secs_per_frame).floor())
        .sum();
    !peers.is_empty() && capacity >= queued as f64
}
