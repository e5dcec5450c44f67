//! A PC as the farm page and the overview show it: the one state a person reads at a glance
//! (offline, rendering, person present, quarantined, draining...), the reason when there is
//! one, the thumbnail of what it renders when the viewer may see that job, and the API routes
//! of the admin's actions. Built from the same `AgentInfo` the JSON API lists.

use std::collections::HashMap;

use idlefarm_protocol::routes::{self, with_id};
use idlefarm_protocol::{AgentInfo, AgentMode, PresenceState};

use super::timeline::{self, Period, Timeline};
use super::view::iso_time;
use idlefarm_protocol::events::PresenceChange;

/// What a PC is doing, as a person names it; the first match wins: a silent PC is offline
/// whatever it last said, a PC at work shows its work (even while draining), then the admin's
/// and the health checks' holds, then what the PC itself reports.
pub fn display_state(presence: PresenceState, mode: AgentMode, quarantined: bool) -> &'static str {
    match presence {
        PresenceState::Offline | PresenceState::Rendering | PresenceState::Suspended => {
            presence.as_str()
        }
        _ if quarantined => "quarantined",
        _ if mode == AgentMode::Disabled => "disabled",
        _ if mode == AgentMode::Draining => "draining",
        _ => presence.as_str(),
    }
}

/// The label of a [`display_state`].
pub fn state_label(state: &str) -> &'static str {
    match state {
        "quarantined" => "Quarantined",
        "disabled" => "Disabled",
        other => timeline::state_label(other),
    }
}

/// The frame a PC stored last, when the viewer may see its job.
pub struct Latest {
    /// The job.
    pub job: i64,
    /// The job's name.
    pub job_name: String,
    /// The frame.
    pub frame: i64,
    /// The thumbnail's URL.
    pub thumbnail: String,
    /// The job page.
    pub job_page: String,
}

/// The API routes an admin acts on a PC through.
pub struct Actions {
    /// `PATCH` rename / re-tag, `DELETE` forget.
    pub agent: String,
    /// `POST` drain.
    pub drain: String,
    /// `POST` disable.
    pub disable: String,
    /// `POST` enable.
    pub enable: String,
    /// `POST` release from quarantine.
    pub release: String,
}

/// One PC on a page.
pub struct Pc {
    /// The agent's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// [`display_state`], the badge's `data-state`.
    pub state: &'static str,
    /// The state for a person.
    pub label: &'static str,
    /// Why it does not work, when it matters (quarantine, no work).
    pub reason: Option<String>,
    /// `active`, `draining` or `disabled`.
    pub mode: &'static str,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its tags as the tags field shows them (`room-2 gpu`).
    pub tags_text: String,
    /// `blender 4.2, povray 3.7`.
    pub renderers: String,
    /// Frames it delivered.
    pub frames_done: i64,
    /// Leases it gave back for a person.
    pub yields: i64,
    /// Leases that failed on it.
    pub failures: i64,
    /// When it was last heard from, ISO 8601 for `<time data-ago>`.
    pub last_seen: Option<String>,
    /// What it rendered last, shown while it renders.
    pub latest: Option<Latest>,
    /// Whether it is at work (rendering, or suspended mid-render).
    pub working: bool,
    /// The admin's actions.
    pub actions: Actions,
    /// Its last 24 hours and 7 days (the farm page only).
    pub timelines: Vec<Timeline>,
}

impl Pc {
    /// The PC of `info`; `jobs` names the jobs the viewer may see, `now_secs` is the clock.
    pub fn new(info: AgentInfo, jobs: &HashMap<i64, String>, now_secs: i64) -> Pc {
        let quarantined = info.quarantined_until.is_some();
        let state = display_state(info.presence, info.mode, quarantined);
        let reason = match state {
            "quarantined" => Some(info.no_work_reason.clone().unwrap_or_else(|| {
                "failed on several jobs within an hour; an admin may release it".to_owned()
            })),
            "offline" | "rendering" | "suspended" => None,
            // A job it declined (its disk budget) explains an idle PC when nothing else does.
            _ => info
                .no_work_reason
                .clone()
                .or_else(|| info.declined.clone()),
        };
        let latest = info.latest_frame.and_then(|(job, frame)| {
            jobs.get(&job).map(|name| Latest {
                job,
                job_name: name.clone(),
                frame,
                thumbnail: routes::job_frame_thumbnail(job, frame),
                job_page: format!("/jobs/{job}"),
            })
        });
        let renderers: Vec<String> = info
            .renderers
            .iter()
            .map(|r| format!("{} {}", r.renderer.as_str(), r.version))
            .collect();
        Pc {
            id: info.id,
            state,
            label: state_label(state),
            reason,
            mode: info.mode.as_str(),
            tags_text: info.tags.join(" "),
            tags: info.tags,
            renderers: renderers.join(", "),
            frames_done: info.frames_done,
            yields: info.yields,
            failures: info.failures,
            last_seen: info.last_seen_secs_ago.map(|ago| iso_time(now_secs - ago)),
            latest,
            working: matches!(state, "rendering" | "suspended"),
            actions: Actions {
                agent: with_id(routes::AGENT, info.id),
                drain: with_id(routes::AGENT_DRAIN, info.id),
                disable: with_id(routes::AGENT_DISABLE, info.id),
                enable: with_id(routes::AGENT_ENABLE, info.id),
                release: with_id(routes::AGENT_RELEASE, info.id),
            },
            name: info.name,
            timelines: Vec::new(),
        }
    }

    /// Adds the 24-hour and 7-day timelines drawn from `history` (at least 7 days of it).
    pub fn with_timelines(mut self, history: &[PresenceChange], now_ms: i64) -> Pc {
        self.timelines = vec![
            Timeline::new(Period::Day, history, now_ms),
            Timeline::new(Period::Week, history, now_ms),
        ];
        self
    }

    /// Whether the admin may release it (it is quarantined).
    pub fn is_quarantined(&self) -> bool {
        self.state == "quarantined"
    }
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::AgentMode::{Active, Disabled, Draining};
    use idlefarm_protocol::PresenceState::{
        Idle, Offline, OutsideSchedule, Rendering, Suspended, UserPresent,
    };

    use super::*;

    #[test]
    fn the_badge_shows_silence_then_work_then_holds_then_the_pc() {
        assert_eq!(display_state(Offline, Disabled, true), "offline");
        assert_eq!(display_state(Rendering, Draining, false), "rendering");
        assert_eq!(display_state(Suspended, Active, true), "suspended");
        assert_eq!(display_state(Idle, Disabled, true), "quarantined");
        assert_eq!(display_state(Idle, Disabled, false), "disabled");
        assert_eq!(display_state(UserPresent, Draining, false), "draining");
        assert_eq!(display_state(UserPresent, Active, false), "user-present");
        assert_eq!(
            display_state(OutsideSchedule, Active, false),
            "outside-schedule"
        );
        assert_eq!(state_label("quarantined"), "Quarantined");
        assert_eq!(state_label("user-present"), "Person present");
    }

    fn info() -> AgentInfo {
        serde_json::from_value(serde_json::json!({
            "id": 4, "name": "lab-3", "presence": "rendering", "last_seen_secs_ago": 5,
            "frames_done": 12, "failures": 1, "renderers": [], "yields": 2,
            "tags": ["room-2", "gpu"], "latest_frame": [7, 33]
        }))
        .unwrap()
    }

    #[test]
    fn the_thumbnail_is_shown_only_of_jobs_the_viewer_may_see() {
        let mine = HashMap::from([(7, "intro".to_owned())]);
        let pc = Pc::new(info(), &mine, 1_000);
        let latest = pc.latest.as_ref().unwrap();
        assert_eq!(latest.thumbnail, "/api/v1/jobs/7/frames/33/thumbnail");
        assert_eq!(latest.job_name, "intro");
        assert!(pc.working);
        assert_eq!(pc.tags_text, "room-2 gpu");
        assert_eq!(pc.last_seen.as_deref(), Some("1970-01-01T00:16:35Z"));
        assert_eq!(pc.actions.drain, "/api/v1/agents/4/drain");
        assert!(Pc::new(info(), &HashMap::new(), 1_000).latest.is_none());
    }

    #[test]
    fn an_idle_pc_that_declined_a_job_says_why() {
        let mut i = info();
        i.presence = PresenceState::Idle;
        i.declined = Some("declined job 7: its input needs 12.0 GiB".into());
        let pc = Pc::new(i, &HashMap::new(), 1_000);
        assert_eq!(
            pc.reason.as_deref(),
            Some("declined job 7: its input needs 12.0 GiB")
        );
    }

    #[test]
    fn a_quarantined_pc_says_why() {
        let mut i = info();
        i.presence = Idle;
        i.quarantined_until = Some(99);
        let pc = Pc::new(i.clone(), &HashMap::new(), 0);
        assert!(pc.is_quarantined());
        assert!(pc.reason.unwrap().contains("failed on several jobs"));
        i.no_work_reason = Some("quarantined until 10:00 after failures on 3 jobs".into());
        let pc = Pc::new(i, &HashMap::new(), 0);
        assert_eq!(
            pc.reason.as_deref(),
            Some("quarantined until 10:00 after failures on 3 jobs")
        );
    }
}
