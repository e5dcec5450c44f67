//! The random material of the model: jobs, agents and the events that happen to them.

use idlefarm_protocol::Renderer;
use proptest::prelude::*;

use super::farm::{Agent, Job};
use crate::schedule::{AgentMode, Board, JobStatus, Millis};

const TAGS: [&str; 2] = ["gpu", "room-2"];

/// Something that happens on the farm; indices wrap around the jobs, agents or held leases.
#[derive(Debug, Clone)]
pub(super) enum Event {
    Lease { agent: usize, want: usize },
    Upload { pick: usize, frame: usize },
    Hold { pick: usize, frame: usize },
    End { pick: usize, how: usize },
    Tick { ms: Millis },
    Cancel { job: usize },
    Pause { job: usize },
    Resume { job: usize },
    Priority { job: usize, priority: i64 },
    Retry { job: usize },
    Rerender { job: usize, frames: Vec<i64> },
    Mode { agent: usize, mode: usize },
    Presence { agent: usize, present: bool },
    Release { agent: usize },
    Restart { crash_drops: Option<usize> },
}

pub(super) fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        10 => (0..6usize, 1..5usize).prop_map(|(agent, want)| Event::Lease { agent, want }),
        8 => (0..16usize, 0..8usize).prop_map(|(pick, frame)| Event::Upload { pick, frame }),
        2 => (0..16usize, 0..8usize).prop_map(|(pick, frame)| Event::Hold { pick, frame }),
        // Failures are over-represented so blocklists and quarantines happen.
        8 => (0..16usize, 0..6usize).prop_map(|(pick, how)| Event::End { pick, how }),
        4 => (1..3_000i64).prop_map(|ms| Event::Tick { ms }),
        1 => (0..6usize).prop_map(|job| Event::Cancel { job }),
        1 => (0..6usize).prop_map(|job| Event::Pause { job }),
        2 => (0..6usize).prop_map(|job| Event::Resume { job }),
        1 => (0..6usize, -1..3i64).prop_map(|(job, priority)| Event::Priority { job, priority }),
        1 => (0..6usize).prop_map(|job| Event::Retry { job }),
        1 => (0..6usize, proptest::collection::vec(0..12i64, 1..4))
            .prop_map(|(job, frames)| Event::Rerender { job, frames }),
        1 => (0..6usize, 0..5usize).prop_map(|(agent, mode)| Event::Mode { agent, mode }),
        1 => (0..6usize, 0..3u8).prop_map(|(agent, p)| Event::Presence { agent, present: p > 0 }),
        1 => (0..6usize).prop_map(|agent| Event::Release { agent }),
        1 => proptest::option::of(0..4usize).prop_map(|crash_drops| Event::Restart { crash_drops }),
    ]
}

pub(super) fn renderers(bits: u8) -> Vec<Renderer> {
    let all = [Renderer::Blender, Renderer::Povray];
    (0..2)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| all[b])
        .collect()
}

pub(super) fn tags(bits: u8) -> Vec<String> {
    (0..2)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| TAGS[b].to_owned())
        .collect()
}

pub(super) fn job() -> impl Strategy<Value = Job> {
    (0..4i64, 0..3i64, any::<bool>(), 0..4u8, 1..25i64).prop_map(
        |(owner, priority, povray, tag_bits, n)| Job {
            owner: (owner < 3).then_some(owner),
            priority,
            status: JobStatus::Runnable,
            renderer: if povray {
                Renderer::Povray
            } else {
                Renderer::Blender
            },
            // Tags are rarer than no tags, so most jobs find an agent.
            tags: tags(tag_bits & 0b01),
            board: Board::new(1..=n),
            delivered: vec![0; n as usize],
        },
    )
}

pub(super) fn agent() -> impl Strategy<Value = Agent> {
    (1..4u8, 0..4u8).prop_map(|(r, t)| Agent {
        renderers: renderers(r),
        tags: tags(t),
        mode: AgentMode::Active,
        present: true,
        failures: Vec::new(),
    })
}
