//! The suspicion rules and how second opinions settle a check.

use super::*;

fn varied(bytes: u64) -> Look {
    Look { flat: None, bytes }
}

fn black(bytes: u64) -> Look {
    Look {
        flat: Some([0, 0, 0]),
        bytes,
    }
}

#[test]
fn a_black_frame_among_varied_neighbours_is_suspicious_but_not_in_a_fade() {
    let around = [(4, varied(900)), (5, varied(950)), (7, varied(940))];
    let why = suspicion(&black(200), &around, None).expect("suspicious");
    assert_eq!(
        why,
        Suspicion::Flat {
            colour: [0, 0, 0],
            neighbours: vec![4, 5, 7]
        }
    );
    assert!(
        why.to_string().contains("frame(s) 4, 5, 7 are not"),
        "{why}"
    );
    // The edge of a fade to black: half the neighbours are black too.
    let fade = [
        (4, varied(900)),
        (5, varied(950)),
        (7, black(200)),
        (8, black(200)),
    ];
    assert_eq!(suspicion(&black(200), &fade, None), None);
    // Nothing to compare with yet: accepted for now (the final review looks again).
    assert_eq!(suspicion(&black(200), &[], None), None);
    // A varied frame is never flat-suspicious.
    assert_eq!(suspicion(&varied(900), &fade, None), None);
}

#[test]
fn a_file_far_off_every_neighbour_is_suspicious() {
    let around = [(1, varied(10_000)), (3, varied(12_000))];
    assert!(matches!(
        suspicion(&varied(2_000), &around, None),
        Some(Suspicion::Size { bytes: 2_000, .. })
    ));
    assert!(matches!(
        suspicion(&varied(60_000), &around, None),
        Some(Suspicion::Size { .. })
    ));
    // Close to one neighbour (a cut between two shots): fine.
    let cut = [(1, varied(10_000)), (3, varied(2_500))];
    assert_eq!(suspicion(&varied(2_000), &cut, None), None);
    // One neighbour is not enough to call a size odd.
    assert_eq!(suspicion(&varied(100), &[(1, varied(10_000))], None), None);
    // An empty file does not divide by zero.
    assert!(suspicion(&varied(0), &around, None).is_some());
}

#[test]
fn a_renderer_error_comes_first() {
    let why = suspicion(&varied(900), &[], Some("CUDA error: out of memory")).unwrap();
    assert!(why.looked_wrong());
    assert!(why.to_string().contains("CUDA error"), "{why}");
    assert!(!Suspicion::Sample.looked_wrong());
}

#[test]
fn the_sample_is_stable_and_about_the_asked_share() {
    let hits = (1..=10_000).filter(|&f| sampled(7, f, 5.0)).count();
    assert!((400..=600).contains(&hits), "{hits} of 10000 at 5 %");
    assert_eq!(sampled(7, 42, 5.0), sampled(7, 42, 5.0));
    assert!((1..=1000).all(|f| sampled(3, f, 100.0)));
    assert!((1..=1000).all(|f| !sampled(3, f, 0.0)));
}

fn pc(agent: AgentId) -> String {
    format!("PC {agent}")
}

fn candidate(agent: AgentId, looked_wrong: bool) -> Candidate {
    Candidate {
        agent,
        lease: agent * 10,
        file: format!("check-{agent}.png"),
        look: if looked_wrong { black(10) } else { varied(900) },
        looked_wrong,
    }
}

fn check(reason: Suspicion, candidates: Vec<Candidate>) -> Check {
    Check {
        reason,
        since: 0,
        candidates,
    }
}

fn flat_reason() -> Suspicion {
    Suspicion::Flat {
        colour: [0, 0, 0],
        neighbours: vec![1, 3],
    }
}

#[test]
fn two_agreeing_renders_are_accepted_even_when_black() {
    let c = check(flat_reason(), vec![candidate(1, true)]);
    let v = settle(2, &c, (2, 20), true, &[f64::INFINITY], &pc);
    let Verdict::AcceptNew { blame, note } = v else {
        panic!("{v:?}")
    };
    assert!(blame.is_empty());
    assert!(
        note.contains("confirmed by PC 1 (PSNR identical)"),
        "{note}"
    );
}

#[test]
fn a_right_looking_render_beats_a_black_one_and_blames_its_pc() {
    let c = check(flat_reason(), vec![candidate(1, true)]);
    let Verdict::AcceptNew { blame, .. } = settle(2, &c, (2, 20), false, &[9.5], &pc) else {
        panic!()
    };
    assert_eq!(blame.len(), 1);
    assert_eq!((blame[0].agent, blame[0].lease), (1, 10));
    assert!(
        blame[0].message.contains("PSNR 9.5 dB"),
        "{}",
        blame[0].message
    );
    assert!(
        blame[0].message.contains("a single colour"),
        "{}",
        blame[0].message
    );
}

#[test]
fn a_sampled_frame_that_disagrees_asks_a_third_pc_and_the_majority_wins() {
    let c = check(Suspicion::Sample, vec![candidate(1, false)]);
    assert_eq!(
        settle(5, &c, (2, 20), false, &[18.0], &pc),
        Verdict::AskAnother
    );
    let c = check(
        Suspicion::Sample,
        vec![candidate(1, false), candidate(2, false)],
    );
    let Verdict::AcceptNew { blame, note } = settle(5, &c, (3, 30), false, &[50.0, 18.0], &pc)
    else {
        panic!()
    };
    assert_eq!(blame.iter().map(|b| b.agent).collect::<Vec<_>>(), vec![2]);
    assert!(note.contains("confirmed by PC 1"), "{note}");
    // Three renders, no two alike: the newest is kept and nobody is blamed.
    let Verdict::AcceptNew { blame, .. } = settle(5, &c, (3, 30), false, &[20.0, 18.0], &pc) else {
        panic!()
    };
    assert!(blame.is_empty());
}

#[test]
fn a_wrong_looking_second_render_keeps_the_first_and_blames_its_own_pc() {
    let c = check(Suspicion::Sample, vec![candidate(1, false)]);
    let Verdict::KeepCandidate { index, blame, .. } = settle(5, &c, (2, 20), true, &[7.0], &pc)
    else {
        panic!()
    };
    assert_eq!(index, 0);
    assert_eq!((blame[0].agent, blame[0].lease), (2, 20));
}

#[test]
fn the_same_pc_rendering_again_settles_without_blame() {
    let c = check(flat_reason(), vec![candidate(1, true)]);
    assert!(matches!(
        settle(2, &c, (1, 11), true, &[f64::INFINITY], &pc),
        Verdict::AcceptNew { ref blame, .. } if blame.is_empty()
    ));
}

#[test]
fn a_held_frame_waits_for_another_pc_unless_alone_or_waited_long() {
    let c = check(flat_reason(), vec![candidate(1, true)]);
    assert!(!c.open_to(1, 1000, false));
    assert!(c.open_to(2, 1000, false));
    assert!(c.open_to(1, 1000, true));
    assert!(c.open_to(1, WAIT_FOR_OTHERS_MS, false));
}
