//! Blocklist and quarantine rules, and their edges in time.

use crate::schedule::{FailureRecord, Health, HealthPolicy, all_blocklisted, assess};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn at(job: i64, at: i64) -> FailureRecord {
    FailureRecord {
        job,
        at,
        wrong_frame: false,
    }
}

#[test]
fn blocklisted_for_a_job_after_three_failures_on_it() {
    let p = HealthPolicy::default();
    let two = [at(7, 0), at(7, 5 * HOUR)];
    assert!(assess(&two, 6 * HOUR, &p).blocklisted.is_empty());
    let three = [at(7, 0), at(8, HOUR), at(7, 5 * HOUR), at(7, 9 * HOUR)];
    let h = assess(&three, 10 * HOUR, &p);
    assert_eq!(h.blocklisted.into_iter().collect::<Vec<_>>(), vec![7]);
    assert_eq!(h.quarantined_until, None, "two jobs are not three");
}

#[test]
fn quarantine_window_is_inclusive_at_its_edge() {
    let p = HealthPolicy::default();
    let within = [at(1, 0), at(2, 30 * MIN), at(3, HOUR)];
    let h = assess(&within, HOUR, &p);
    assert_eq!(h.quarantined_until, Some(2 * HOUR));
    assert_eq!(h.quarantined_for.len(), 3);
    assert!(h.is_quarantined(HOUR));

    let just_outside = [at(1, 0), at(2, 30 * MIN), at(3, HOUR + 1)];
    let h = assess(&just_outside, HOUR + 1, &p);
    assert_eq!(h.quarantined_until, None);
    assert!(h.quarantined_for.is_empty());
}

#[test]
fn repeated_failures_on_one_job_are_not_different_jobs() {
    let p = HealthPolicy::default();
    let same = [at(1, 0), at(1, MIN), at(2, 2 * MIN), at(2, 3 * MIN)];
    assert_eq!(assess(&same, 3 * MIN, &p).quarantined_until, None);
}

#[test]
fn quarantine_lasts_the_forgive_time_after_the_failure_that_completed_it() {
    let p = HealthPolicy {
        forgive_ms: 20 * MIN,
        ..HealthPolicy::default()
    };
    // Out of order on purpose: records come back from the database in any order.
    let records = [at(3, 40 * MIN), at(1, 0), at(2, 10 * MIN)];
    let until = 40 * MIN + 20 * MIN;
    assert_eq!(
        assess(&records, until - 1, &p).quarantined_until,
        Some(until)
    );
    let forgiven = assess(&records, until, &p);
    assert_eq!(
        forgiven,
        Health::default(),
        "forgiven, and nothing else to say"
    );
}

#[test]
fn a_later_failure_that_still_completes_a_set_extends_the_quarantine() {
    let p = HealthPolicy::default();
    let records = [at(1, 0), at(2, MIN), at(3, 2 * MIN), at(2, 30 * MIN)];
    let h = assess(&records, 31 * MIN, &p);
    assert_eq!(h.quarantined_until, Some(30 * MIN + HOUR));
}

#[test]
fn release_is_an_empty_failure_list() {
    let p = HealthPolicy::default();
    let bad = [at(1, 0), at(1, 1), at(1, 2), at(2, 3), at(3, 4)];
    let h = assess(&bad, 10, &p);
    assert!(h.is_blocklisted(1) && h.is_quarantined(10));
    assert_eq!(assess(&[], 10, &p), Health::default());
}

#[test]
fn zero_in_the_policy_turns_a_rule_off() {
    let p = HealthPolicy {
        blocklist_after: 0,
        quarantine_jobs: 0,
        ..HealthPolicy::default()
    };
    let bad = [at(1, 0), at(1, 1), at(1, 2), at(2, 3), at(3, 4)];
    assert_eq!(assess(&bad, 10, &p), Health::default());
}

#[test]
fn all_blocklisted_needs_at_least_one_capable_agent() {
    let blocked = Health {
        blocklisted: [4].into(),
        ..Health::default()
    };
    let fine = Health::default();
    assert!(!all_blocklisted(4, []), "no capable PC: the job waits");
    assert!(all_blocklisted(4, [&blocked, &blocked]));
    assert!(!all_blocklisted(4, [&blocked, &fine]));
    assert!(!all_blocklisted(5, [&blocked]));
}

#[test]
fn two_wrong_frames_within_the_window_quarantine_whatever_their_jobs() {
    let p = HealthPolicy::default();
    let wrong = |job, at| FailureRecord {
        job,
        at,
        wrong_frame: true,
    };
    let one = [wrong(1, 0)];
    assert_eq!(assess(&one, 10, &p), Health::default());
    let two = [wrong(1, 0), wrong(1, 1000)];
    let h = assess(&two, 2000, &p);
    assert_eq!(h.quarantined_until, Some(1000 + p.forgive_ms));
    assert_eq!(h.quarantined_for, [1].into());
    // Too far apart: forgiven.
    let apart = [wrong(1, 0), wrong(2, p.quarantine_window_ms + 1)];
    assert!(!assess(&apart, p.quarantine_window_ms + 2, &p).is_quarantined(0));
    // Failed leases do not count as wrong frames.
    let failed = [at(1, 0), at(2, 1)];
    assert_eq!(assess(&failed, 2, &p).quarantined_until, None);
}
