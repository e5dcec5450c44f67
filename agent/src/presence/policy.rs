//! Presence policy: from what the sources observed to "may this PC render now, and why not".
//! Pure: the monitor gathers an [`Observation`] and asks [`evaluate`]; tests build observations
//! by hand.
//!
//! A source that cannot tell ("unknown") never counts as idle.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use idlefarm_protocol::PresenceState;

use super::logind::Session;

/// When an agent may take work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Only while no person's session exists (the default).
    #[default]
    NoUser,
    /// Sessions may exist, but every person's input has been idle long enough and other programs
    /// leave the CPU free.
    Idle,
    /// Always (a dedicated node).
    Always,
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "no-user" => Ok(Policy::NoUser),
            "idle" => Ok(Policy::Idle),
            "always" => Ok(Policy::Always),
            other => Err(format!(
                "`{other}` is not a policy: use no-user, idle or always"
            )),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::NoUser => "no-user",
            Policy::Idle => "idle",
            Policy::Always => "always",
        })
    }
}

/// A person's session and how long its input has been idle.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionObservation {
    /// The session as logind describes it.
    pub session: Session,
    /// Input idle time, from whichever source fits the session (X11, Mutter, terminal), or why
    /// none could be read.
    pub input_idle: Result<Duration, String>,
}

/// Everything the sources said at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Persons' sessions (greeters and the like already left out), or why logind could not tell.
    pub sessions: Result<Vec<SessionObservation>, String>,
    /// Whether other programs keep the CPU busy (after hysteresis), with their share in percent;
    /// `None` when unknown.
    pub other_cpu: Option<(bool, f32)>,
    /// Whether the weekly schedule allows rendering now.
    pub in_schedule: bool,
    /// Whether an admin asked the agent to drain.
    pub draining: bool,
}

/// The outcome: may the PC render, the state to report, and a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether work may run.
    pub available: bool,
    /// What to report to the coordinator.
    pub state: PresenceState,
    /// Why, in words.
    pub reason: String,
}

impl Verdict {
    fn no(state: PresenceState, reason: String) -> Verdict {
        Verdict {
            available: false,
            state,
            reason,
        }
    }
}

/// Formats a duration the way the status shows it: `45s`, `3m12s`, `2h05m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn describe(s: &Session) -> String {
    let place = match (&s.seat, s.remote) {
        (_, true) => format!(
            "remote from {}",
            s.remote_host.as_deref().unwrap_or("elsewhere")
        ),
        (Some(seat), false) => seat.clone(),
        (None, false) => "no seat".into(),
    };
    format!("{} ({}, {place})", s.user, s.kind)
}

/// Decides whether the PC may render under `policy` with `idle_after`.
pub fn evaluate(policy: Policy, idle_after: Duration, obs: &Observation) -> Verdict {
    if obs.draining {
        return Verdict::no(
            PresenceState::Draining,
            "draining: an admin asked this PC to take no more work".into(),
        );
    }
    if !obs.in_schedule {
        return Verdict::no(
            PresenceState::OutsideSchedule,
            "outside the rendering schedule".into(),
        );
    }
    if policy == Policy::Always {
        return Verdict {
            available: true,
            state: PresenceState::Idle,
            reason: "policy always: dedicated node".into(),
        };
    }
    let sessions = match &obs.sessions {
        Ok(s) => s,
        Err(why) => {
            return Verdict::no(
                PresenceState::UserPresent,
                format!("not idle: cannot tell whether anyone is logged in ({why})"),
            );
        }
    };
    if policy == Policy::NoUser {
        return match sessions.first() {
            Some(s) => Verdict::no(
                PresenceState::UserPresent,
                format!("{} logged in (policy no-user)", describe(&s.session)),
            ),
            None => Verdict {
                available: true,
                state: PresenceState::Idle,
                reason: "nobody is logged in".into(),
            },
        };
    }
    for s in sessions {
        match &s.input_idle {
            Err(why) => {
                return Verdict::no(
                    PresenceState::UserPresent,
                    format!(
                        "{}: no idle reading ({why}), so counted as present",
                        describe(&s.session)
                    ),
                );
            }
            Ok(idle) if *idle < idle_after => {
                return Verdict::no(
                    PresenceState::UserPresent,
                    format!("{} active {} ago", describe(&s.session), human(*idle)),
                );
            }
            Ok(_) => {}
        }
    }
    match obs.other_cpu {
        None => Verdict::no(
            PresenceState::UserPresent,
            "not idle: other CPU use is unknown".into(),
        ),
        Some((true, pct)) => Verdict::no(
            PresenceState::UserPresent,
            format!("other programs use {pct:.0}% of the CPU"),
        ),
        Some((false, pct)) => Verdict {
            available: true,
            state: PresenceState::Idle,
            reason: if sessions.is_empty() {
                format!("nobody is logged in; other CPU use {pct:.0}%")
            } else {
                format!(
                    "{} session(s) idle ≥ {}; other CPU use {pct:.0}%",
                    sessions.len(),
                    human(idle_after)
                )
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: &str) -> Session {
        Session {
            id: "1".into(),
            uid: 1000,
            user: user.into(),
            class: "user".into(),
            kind: "x11".into(),
            seat: Some("seat0".into()),
            remote: false,
            remote_host: None,
            active: true,
            locked: false,
            idle_hint: false,
            display: Some(":0".into()),
            tty: None,
            leader: 1,
        }
    }

    fn obs(sessions: Result<Vec<SessionObservation>, String>) -> Observation {
        Observation {
            sessions,
            other_cpu: Some((false, 3.0)),
            in_schedule: true,
            draining: false,
        }
    }

    const MIN5: Duration = Duration::from_secs(300);

    #[test]
    fn no_user_policy_renders_only_without_sessions() {
        assert!(evaluate(Policy::NoUser, MIN5, &obs(Ok(vec![]))).available);
        let alice = SessionObservation {
            session: session("alice"),
            input_idle: Ok(Duration::from_secs(9999)),
        };
        let v = evaluate(Policy::NoUser, MIN5, &obs(Ok(vec![alice])));
        assert!(!v.available);
        assert_eq!(v.state, PresenceState::UserPresent);
        assert!(v.reason.contains("alice"), "{}", v.reason);
    }

    #[test]
    fn idle_policy_needs_idle_input_and_a_free_cpu() {
        let idle = SessionObservation {
            session: session("bob"),
            input_idle: Ok(Duration::from_secs(301)),
        };
        let busy = SessionObservation {
            session: session("bob"),
            input_idle: Ok(Duration::from_secs(4)),
        };
        assert!(evaluate(Policy::Idle, MIN5, &obs(Ok(vec![idle.clone()]))).available);
        let v = evaluate(Policy::Idle, MIN5, &obs(Ok(vec![busy])));
        assert!(
            !v.available && v.reason.contains("active 4s ago"),
            "{}",
            v.reason
        );
        let mut hot = obs(Ok(vec![idle]));
        hot.other_cpu = Some((true, 87.0));
        let v = evaluate(Policy::Idle, MIN5, &hot);
        assert!(!v.available && v.reason.contains("87%"), "{}", v.reason);
    }

    #[test]
    fn unknown_never_counts_as_idle() {
        let v = evaluate(Policy::Idle, MIN5, &obs(Err("cannot reach logind".into())));
        assert!(
            !v.available && v.reason.contains("cannot reach logind"),
            "{}",
            v.reason
        );
        let blind = SessionObservation {
            session: session("carol"),
            input_idle: Err("no X display".into()),
        };
        let v = evaluate(Policy::Idle, MIN5, &obs(Ok(vec![blind])));
        assert!(
            !v.available && v.reason.contains("no X display"),
            "{}",
            v.reason
        );
        let mut cpu_unknown = obs(Ok(vec![]));
        cpu_unknown.other_cpu = None;
        assert!(!evaluate(Policy::Idle, MIN5, &cpu_unknown).available);
    }

    #[test]
    fn schedule_and_drain_override_everything_but_always_ignores_sessions() {
        let mut o = obs(Ok(vec![]));
        o.in_schedule = false;
        assert_eq!(
            evaluate(Policy::Always, MIN5, &o).state,
            PresenceState::OutsideSchedule
        );
        o.in_schedule = true;
        o.draining = true;
        assert_eq!(
            evaluate(Policy::NoUser, MIN5, &o).state,
            PresenceState::Draining
        );
        let v = evaluate(Policy::Always, MIN5, &obs(Err("no bus".into())));
        assert!(v.available);
    }

    #[test]
    fn policies_parse_and_bad_names_are_explained() {
        assert_eq!("idle".parse::<Policy>(), Ok(Policy::Idle));
        assert!(
            "lazy"
                .parse::<Policy>()
                .unwrap_err()
                .contains("no-user, idle or always")
        );
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
    }
}
