//! The live event stream (`GET /api/v1/events`, Server-Sent Events) and per-agent presence
//! history: what changed on the farm, as the web pages and scripts receive it.
//!
//! Each SSE message carries one [`Event`]: its `id:` line is [`Event::id`], its `event:` line is
//! [`EventKind::name`] and its `data:` line is the event as JSON. A message named
//! [`RESET_EVENT`] means events were lost (the client resumed from an id the coordinator no
//! longer holds, or read too slowly): the client re-fetches the state it shows.

use serde::{Deserialize, Serialize};

use crate::{FrameCounts, JobState, PresenceState};

/// Route of the event stream.
pub const EVENTS_PATH: &str = crate::routes::EVENTS;

/// SSE event name that tells the client to re-fetch state; its data is `{}`.
pub const RESET_EVENT: &str = "reset";

/// Route of an agent's presence history (`GET`, answers a list of [`PresenceChange`]).
pub fn agent_history_path(agent: i64) -> String {
    crate::routes::with_id(crate::routes::AGENT_HISTORY, agent)
}

/// One change on the farm, numbered by the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Increasing id; a client resumes after it with `Last-Event-ID`.
    pub id: u64,
    /// When the coordinator published it, Unix milliseconds.
    pub at_ms: i64,
    /// What changed.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What changed. On the wire the variant is the `type` field, named as [`EventKind::name`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    /// A job's state or frame counts changed.
    JobChanged {
        /// The job.
        job: i64,
        /// The user who owns it (`None` for jobs from before accounts).
        owner: Option<i64>,
        /// Its state now.
        state: JobState,
        /// Its frames by state now.
        frames: FrameCounts,
    },
    /// A job was deleted.
    JobDeleted {
        /// The job.
        job: i64,
        /// The user who owned it.
        owner: Option<i64>,
    },
    /// A frame changed state; a frame that was stored is `state: "done"`.
    FrameChanged {
        /// The job.
        job: i64,
        /// The user who owns the job.
        owner: Option<i64>,
        /// Frame number.
        frame: i64,
        /// `queued`, `rendering`, `done` or `failed`, as in `FrameInfo::state`.
        state: String,
        /// The agent rendering it or that rendered it.
        agent: Option<i64>,
    },
    /// An agent was enrolled, renamed, drained, quarantined, forgotten...: re-fetch it.
    AgentChanged {
        /// The agent.
        agent: i64,
    },
    /// An agent's presence state changed.
    Presence {
        /// The agent.
        agent: i64,
        /// Its state now.
        state: PresenceState,
    },
}

impl EventKind {
    /// The SSE event name, the same as the JSON `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::JobChanged { .. } => "job-changed",
            EventKind::JobDeleted { .. } => "job-deleted",
            EventKind::FrameChanged { .. } => "frame-changed",
            EventKind::AgentChanged { .. } => "agent-changed",
            EventKind::Presence { .. } => "presence",
        }
    }

    /// Whose job the event is about: `Some(owner)` for job and frame events (only that owner
    /// and admins may see them), `None` for farm events everyone signed in may see.
    pub fn owner(&self) -> Option<Option<i64>> {
        match self {
            EventKind::JobChanged { owner, .. }
            | EventKind::JobDeleted { owner, .. }
            | EventKind::FrameChanged { owner, .. } => Some(*owner),
            EventKind::AgentChanged { .. } | EventKind::Presence { .. } => None,
        }
    }
}

/// One entry of an agent's presence history: from `at_ms` on, the agent was in `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceChange {
    /// When the state began, Unix milliseconds.
    pub at_ms: i64,
    /// The state.
    pub state: PresenceState,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<EventKind> {
        vec![
            EventKind::JobChanged {
                job: 3,
                owner: Some(7),
                state: JobState::Rendering,
                frames: FrameCounts {
                    queued: 2,
                    rendering: 1,
                    done: 4,
                    failed: 0,
                },
            },
            EventKind::FrameChanged {
                job: 3,
                owner: None,
                frame: 12,
                state: "done".into(),
                agent: Some(2),
            },
            EventKind::AgentChanged { agent: 2 },
            EventKind::Presence {
                agent: 2,
                state: PresenceState::UserPresent,
            },
        ]
    }

    #[test]
    fn events_round_trip_with_a_flat_type_field_named_like_the_sse_event() {
        for (i, kind) in samples().into_iter().enumerate() {
            let event = Event {
                id: 40 + i as u64,
                at_ms: 1_700_000_000_000,
                kind,
            };
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.kind.name());
            assert_eq!(json["id"], event.id);
            assert_eq!(json["at_ms"], event.at_ms);
            let back: Event = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn frame_done_event_reads_as_a_person_expects() {
        let json = r#"{"id":9,"at_ms":5,"type":"frame-changed","job":1,"owner":4,
                       "frame":17,"state":"done","agent":null}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(
            event.kind,
            EventKind::FrameChanged {
                job: 1,
                owner: Some(4),
                frame: 17,
                state: "done".into(),
                agent: None
            }
        );
        assert_eq!(event.kind.owner(), Some(Some(4)));
    }

    #[test]
    fn only_job_and_frame_events_have_an_owner() {
        let owners: Vec<_> = samples().iter().map(EventKind::owner).collect();
        assert_eq!(owners, vec![Some(Some(7)), Some(None), None, None]);
    }

    #[test]
    fn routes_live_under_the_api_prefix() {
        assert!(EVENTS_PATH.starts_with(crate::API_PREFIX));
        assert_eq!(agent_history_path(5), "/api/v1/agents/5/history");
    }

    #[test]
    fn presence_changes_use_the_wire_names_of_states() {
        let change = PresenceChange {
            at_ms: 12,
            state: PresenceState::OutsideSchedule,
        };
        let json = serde_json::to_string(&change).unwrap();
        assert_eq!(json, r#"{"at_ms":12,"state":"outside-schedule"}"#);
    }
}
