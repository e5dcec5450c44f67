//! A PC's timeline: its presence history cut into spans over a window (the last 24 hours or 7
//! days) and laid out in the user units of the `<svg>` the farm page draws, with the axis
//! labels under it. Pure: the history and the clock are passed in.
//!
//! The page's Content-Security-Policy forbids inline styles, so spans are not positioned with
//! `style=`; they are SVG `<rect x= width=>` whose presentation attributes are not style, and
//! their colour comes from the stylesheet by `data-state`.

use idlefarm_protocol::PresenceState;
use idlefarm_protocol::events::PresenceChange;

/// Width of every timeline in SVG user units; the `<svg>` stretches it to the page's width.
pub const WIDTH: f64 = 1000.0;

/// The narrowest span drawn, in SVG units (about 2 px on a laptop screen).
pub const MIN_WIDTH: f64 = 2.0;

/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// Which stretch of time a timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The last 24 hours, labelled every 6 hours.
    Day,
    /// The last 7 days, labelled every day.
    Week,
}

impl Period {
    /// Its length in milliseconds.
    pub fn length_ms(self) -> i64 {
        match self {
            Period::Day => 24 * HOUR_MS,
            Period::Week => 7 * 24 * HOUR_MS,
        }
    }

    /// Hours between two labels.
    fn tick_hours(self) -> i64 {
        match self {
            Period::Day => 6,
            Period::Week => 24,
        }
    }

    /// `day` or `week`, the timeline's `data-period` on the page.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// How the timeline is named on the page.
    pub fn title(self) -> &'static str {
        match self {
            Period::Day => "Last 24 hours",
            Period::Week => "Last 7 days",
        }
    }
}

/// One stretch of time in one state, in SVG units.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The presence state's wire name (`user-present`), which the stylesheet colours.
    pub state: &'static str,
    /// Left edge.
    pub x: f64,
    /// Width.
    pub width: f64,
    /// What a person reads on hovering it: the state, how long, and when it ended.
    pub title: String,
    /// When it began, Unix millis (at the earliest the window's start).
    pub from_ms: i64,
    /// When it ended, Unix millis (at the latest now).
    pub to_ms: i64,
}

/// A label of the time axis and its position in SVG units (for the grid line).
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// `18 h ago`, `now`.
    pub label: String,
    /// Position in SVG units.
    pub x: f64,
}

/// A drawn timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Which period it shows.
    pub period: Period,
    /// Spans oldest first, except that spans widened to [`MIN_WIDTH`] come last (drawn on
    /// top); time before the first known state has none.
    pub spans: Vec<Span>,
    /// Axis labels, oldest first, ending with `now`.
    pub ticks: Vec<Tick>,
    /// Time spent rendering in the period, for a person (`3 h 10 min`).
    pub rendering: String,
    /// Time a person used the PC in the period.
    pub in_use: String,
}

impl Timeline {
    /// The timeline of `history` (oldest first, starting with the state at or before the
    /// period's start, as `Store::presence_history` answers) over `period` ending at `now_ms`.
    pub fn new(period: Period, history: &[PresenceChange], now_ms: i64) -> Timeline {
        let start = now_ms - period.length_ms();
        let scale = WIDTH / period.length_ms() as f64;
        let mut spans: Vec<Span> = Vec::new();
        let mut rendering_ms = 0;
        let mut in_use_ms = 0;
        for (i, change) in history.iter().enumerate() {
            let from = change.at_ms.max(start);
            let to = history
                .get(i + 1)
                .map_or(now_ms, |next| next.at_ms)
                .min(now_ms);
            if to <= from {
                continue;
            }
            match change.state {
                PresenceState::Rendering => rendering_ms += to - from,
                PresenceState::UserPresent | PresenceState::Suspended => in_use_ms += to - from,
                _ => {}
            }
            let state = change.state.as_str();
            // Repeated states (a restart re-reporting) draw as one span.
            if let Some(last) = spans.last_mut().filter(|s| s.state == state) {
                last.to_ms = to;
                continue;
            }
            spans.push(Span {
                state,
                x: 0.0,
                width: 0.0,
                title: String::new(),
                from_ms: from,
                to_ms: to,
            });
        }
        // Laid out once spans are merged, from their final extent.
        for span in &mut spans {
            span.x = round((span.from_ms - start) as f64 * scale);
            span.width = round((span.to_ms - span.from_ms) as f64 * scale);
            span.title = span_title(span.state, span.from_ms, span.to_ms, now_ms);
            // A minute of rendering in a day is worth seeing: it gets a sliver.
            if span.width < MIN_WIDTH {
                span.width = MIN_WIDTH;
                span.x = span.x.min(WIDTH - MIN_WIDTH);
            }
        }
        // Widened spans overlap their neighbours: drawn last, they stay on top.
        spans.sort_by_key(|s| s.width <= MIN_WIDTH);
        Timeline {
            period,
            spans,
            ticks: ticks(period),
            rendering: duration(rendering_ms),
            in_use: duration(in_use_ms),
        }
    }
}

/// Labels every `tick_hours` from the period's start to now.
pub fn ticks(period: Period) -> Vec<Tick> {
    let hours = period.length_ms() / HOUR_MS;
    let step = period.tick_hours();
    (0..=hours / step)
        .map(|i| {
            let ago = hours - i * step;
            let label = match (ago, period) {
                (0, _) => "now".to_owned(),
                (h, Period::Day) => format!("{h} h ago"),
                (h, Period::Week) => format!("{} d ago", h / 24),
            };
            Tick {
                label,
                x: round(WIDTH * (i * step) as f64 / hours as f64),
            }
        })
        .collect()
}

/// `Rendering for 25 min, until 3 h ago` / `Idle for 2 h, until now`.
fn span_title(state: &str, from: i64, to: i64, now: i64) -> String {
    let until = if now - to < 60_000 {
        "until now".to_owned()
    } else {
        format!("until {} ago", duration(now - to))
    };
    format!(
        "{} for {}, {until}",
        state_label(state),
        duration(to - from)
    )
}

/// What a person calls a presence state.
pub fn state_label(state: &str) -> &'static str {
    match state {
        "idle" => "Idle",
        "rendering" => "Rendering",
        "user-present" => "Person present",
        "suspended" => "Suspended (person back)",
        "outside-schedule" => "Outside schedule",
        "draining" => "Draining",
        "offline" => "Offline",
        _ => "Unknown",
    }
}

/// The legend: every state a timeline can show, with its label.
pub fn legend() -> Vec<(&'static str, &'static str)> {
    [
        PresenceState::Idle,
        PresenceState::Rendering,
        PresenceState::UserPresent,
        PresenceState::Suspended,
        PresenceState::OutsideSchedule,
        PresenceState::Draining,
        PresenceState::Offline,
    ]
    .into_iter()
    .map(|s| (s.as_str(), state_label(s.as_str())))
    .collect()
}

/// `45 s`, `25 min`, `3 h 10 min`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => match s % 3600 / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        s => match s % 86_400 / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

/// Two decimals are finer than any screen shows and keep the HTML short.
fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::PresenceState::{Idle, Offline, Rendering, UserPresent};

    use super::*;

    fn at(at_ms: i64, state: PresenceState) -> PresenceChange {
        PresenceChange { at_ms, state }
    }

    const NOW: i64 = 1_000 * 24 * HOUR_MS;
    const DAY_START: i64 = NOW - 24 * HOUR_MS;

    fn extent(t: &Timeline) -> Vec<(&'static str, f64, f64)> {
        t.spans.iter().map(|s| (s.state, s.x, s.width)).collect()
    }

    #[test]
    fn spans_are_cut_at_the_window_and_reach_now() {
        let history = [
            at(DAY_START - 5 * HOUR_MS, Idle), // the state at the window's start
            at(DAY_START + 6 * HOUR_MS, Rendering),
            at(DAY_START + 12 * HOUR_MS, UserPresent),
            at(DAY_START + 18 * HOUR_MS, Offline),
        ];
        let t = Timeline::new(Period::Day, &history, NOW);
        assert_eq!(
            extent(&t),
            [
                ("idle", 0.0, 250.0),
                ("rendering", 250.0, 250.0),
                ("user-present", 500.0, 250.0),
                ("offline", 750.0, 250.0),
            ]
        );
        assert_eq!(t.rendering, "6 h");
        assert_eq!(t.in_use, "6 h");
        assert_eq!(t.spans[1].title, "Rendering for 6 h, until 12 h ago");
        assert_eq!(t.spans[3].title, "Offline for 6 h, until now");
    }

    #[test]
    fn time_before_the_first_known_state_is_left_empty() {
        let history = [at(NOW - 6 * HOUR_MS, Idle)];
        let t = Timeline::new(Period::Day, &history, NOW);
        assert_eq!(extent(&t), [("idle", 750.0, 250.0)]);
        assert!(Timeline::new(Period::Day, &[], NOW).spans.is_empty());
    }

    #[test]
    fn repeated_states_merge_and_empty_or_future_changes_draw_nothing() {
        let history = [
            at(DAY_START, Rendering),
            at(DAY_START + 6 * HOUR_MS, Rendering),
            at(DAY_START + 12 * HOUR_MS, Idle),
            at(DAY_START + 12 * HOUR_MS, UserPresent), // same millisecond: no width
            at(NOW + HOUR_MS, Idle),                   // after now (a clock step)
        ];
        let t = Timeline::new(Period::Day, &history, NOW);
        assert_eq!(
            extent(&t),
            [("rendering", 0.0, 500.0), ("user-present", 500.0, 500.0)]
        );
        assert_eq!(t.spans[0].title, "Rendering for 12 h, until 12 h ago");
    }

    #[test]
    fn a_short_render_is_still_a_span_of_the_week() {
        let history = [
            at(NOW - 2 * HOUR_MS, Idle),
            at(NOW - HOUR_MS, Rendering),
            at(NOW - HOUR_MS + 90_000, Idle),
        ];
        let t = Timeline::new(Period::Week, &history, NOW);
        // Drawn last, on top of its neighbours, and wide enough to see.
        let last = t.spans.last().unwrap();
        assert_eq!((last.state, last.width), ("rendering", MIN_WIDTH));
        assert_eq!(t.spans.len(), 3);
        assert_eq!(t.rendering, "1 min");
        assert_eq!(last.title, "Rendering for 1 min, until 58 min ago");
        // A render that just began, at the right edge, stays inside the timeline.
        let t = Timeline::new(Period::Day, &[at(NOW - 500, Rendering)], NOW);
        assert_eq!(extent(&t), [("rendering", WIDTH - MIN_WIDTH, MIN_WIDTH)]);
    }

    #[test]
    fn axes_label_hours_and_days_ending_now() {
        let day: Vec<_> = ticks(Period::Day)
            .into_iter()
            .map(|t| (t.label, t.x))
            .collect();
        assert_eq!(
            day,
            [
                ("24 h ago".to_owned(), 0.0),
                ("18 h ago".to_owned(), 250.0),
                ("12 h ago".to_owned(), 500.0),
                ("6 h ago".to_owned(), 750.0),
                ("now".to_owned(), 1000.0),
            ]
        );
        let week = ticks(Period::Week);
        assert_eq!(week.len(), 8);
        assert_eq!(week[0].label, "7 d ago");
        assert_eq!(week[6].label, "1 d ago");
        assert_eq!(week[7].label, "now");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(duration(-5), "0 s");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(25 * 60_000), "25 min");
        assert_eq!(duration(3 * HOUR_MS + 10 * 60_000), "3 h 10 min");
        assert_eq!(duration(50 * HOUR_MS), "2 d 2 h");
        assert_eq!(duration(48 * HOUR_MS), "2 d");
    }

    #[test]
    fn every_state_has_a_label_and_a_legend_entry() {
        let legend = legend();
        assert_eq!(legend.len(), 7);
        assert!(legend.iter().all(|(_, label)| *label != "Unknown"));
        assert!(legend.contains(&("offline", "Offline")));
    }
}
