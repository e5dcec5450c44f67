//! Likely free spells from presence history, chunk targets from them, and speeds per frame.

use crate::schedule::Speeds;
use crate::schedule::availability::{Change, MAX_SPELL, chunk_target, likely_free};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A PC used 09:00–17:00 on days `used`, free otherwise, for `days` days.
fn timetable(days: i64, used: impl Fn(i64) -> bool) -> Vec<Change> {
    let mut out = vec![Change { at: 0, free: true }];
    for d in 0..days {
        if used(d) {
            out.push(Change {
                at: d * DAY + 9 * HOUR,
                free: false,
            });
            out.push(Change {
                at: d * DAY + 17 * HOUR,
                free: true,
            });
        }
    }
    out
}

#[test]
fn a_pc_reclaimed_at_nine_every_day_is_short_lived_at_a_quarter_to_and_free_all_night_after_five() {
    let history = timetable(28, |_| true);
    let today = 28 * DAY;
    assert_eq!(
        likely_free(&history, today + 8 * HOUR + 45 * MIN),
        Some(15 * MIN)
    );
    assert_eq!(likely_free(&history, today + 22 * HOUR), Some(11 * HOUR));
    // In use at this time on earlier days: nothing to go on for a PC someone just left.
    assert_eq!(likely_free(&history, today + 12 * HOUR), None);
    // A spell never counts beyond a night.
    assert_eq!(
        likely_free(&timetable(28, |_| false), today),
        Some(MAX_SPELL)
    );
}

#[test]
fn the_same_weekday_counts_first_and_the_last_week_without_it() {
    // Used on weekdays only (day 0 is a Monday); asked on a Saturday at 08:00.
    let history = timetable(28, |d| d % 7 < 5);
    let saturday = 33 * DAY + 8 * HOUR;
    assert_eq!(likely_free(&history, saturday), Some(MAX_SPELL));
    // With four days of history, the last days count: a cautious quarter of them.
    let short = timetable(4, |_| true);
    assert_eq!(likely_free(&short, 4 * DAY + 8 * HOUR), Some(HOUR));
    // No history, or too little: no estimate.
    assert_eq!(likely_free(&[], 0), None);
    assert_eq!(likely_free(&timetable(1, |_| true), DAY + 8 * HOUR), None);
}

#[test]
fn chunk_targets_follow_the_spell_within_bounds_and_stay_short_for_a_short_job() {
    assert_eq!(chunk_target(None, None, 120.0), 120.0);
    assert_eq!(chunk_target(Some(4 * MIN), None, 120.0), 120.0);
    assert_eq!(chunk_target(Some(MIN), None, 120.0), 30.0);
    assert_eq!(chunk_target(Some(MAX_SPELL), None, 120.0), 1800.0);
    // A job that would be done in 20 minutes on the farm gets chunks of at most 5.
    assert_eq!(chunk_target(Some(MAX_SPELL), Some(1200.0), 120.0), 300.0);
    assert_eq!(chunk_target(Some(MAX_SPELL), Some(10.0), 120.0), 30.0);
}

#[test]
fn speeds_follow_each_frame_and_guess_the_slowest_for_a_newcomer() {
    let mut s = Speeds::default();
    assert_eq!(s.guess(), None);
    s.record(1, 10.0);
    s.record(2, 40.0);
    assert_eq!(s.of(1), Some(10.0));
    assert_eq!(s.of_or_guess(3), Some(40.0));
    // A PC that slows down is noticed within a few frames.
    for _ in 0..5 {
        s.record(1, 30.0);
    }
    assert!(s.of(1).is_some_and(|v| v > 25.0 && v < 30.0));
    // Nonsense is ignored.
    s.record(1, f64::NAN);
    s.record(1, -1.0);
    assert!(s.of(1).is_some_and(|v| v > 25.0));
}
