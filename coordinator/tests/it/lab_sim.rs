//! The lab simulator's invariants, on a few seeds of every scenario (the `lab_sim` bench
//! prints the numbers), with every means of the scheduler in use (backups too): every frame of
//! every job is done, none is rendered twice, and no chunk is leased to a PC that is not
//! available at that moment.

#[path = "../../benches/lab/sim.rs"]
#[allow(dead_code)]
mod sim;
#[path = "../../benches/lab/trace.rs"]
mod trace;

#[test]
fn a_simulated_lab_renders_every_frame_once_and_leases_only_to_available_pcs() {
    for scenario in sim::scenarios() {
        for seed in 0..3 {
            let mut leases_checked = 0;
            let out = sim::run(&scenario, seed, &sim::current(), |boards, pcs, now| {
                for board in boards {
                    for slot in board.leases.values().filter(|s| s.started_at == now) {
                        leases_checked += 1;
                        assert!(
                            pcs[slot.agent as usize].available(now),
                            "{} seed {seed}: a chunk went to PC {} while it was in use",
                            scenario.name,
                            slot.agent
                        );
                    }
                }
            });
            assert_eq!(
                out.frames_done, out.frames_total,
                "{}: {out:?}",
                scenario.name
            );
            assert_eq!(out.rendered_twice, 0, "{}: {out:?}", scenario.name);
            // The whole-frames bound is found to the second, and frames end on whole ms.
            assert!(
                out.makespan >= out.ideal && out.makespan + 2_000 >= out.whole_frames,
                "{}: faster than possible: {out:?}",
                scenario.name
            );
            assert!(leases_checked > 0);
        }
    }
}
