//! Benchmark: how soon jobs finish on a lab whose PCs come and go. The real scheduling core
//! drives a simulated lab (see `lab/sim.rs`) for each scenario over 20 seeds and prints, per
//! scenario and for the scheduler before issue 10 and with each of its means added in turn:
//! makespan ÷ ideal (median, p90, max), frames rendered twice, work lost to reclaims, work
//! thrown away by backup copies that lost their race, and PC utilisation while available.
//! Asserts nothing.
//!
//! `cargo bench -p idlefarm-coordinator --bench lab_sim [-- SEEDS]` (default 20).

#[path = "lab/sim.rs"]
#[allow(dead_code)]
mod sim;
#[path = "lab/trace.rs"]
mod trace;

fn main() {
    let seeds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    println!(
        "idlefarm lab simulator: 12 PCs of speeds 1:4, submitted Monday 10:00 after two weeks of history, {seeds} seeds"
    );
    println!(
        "  classes 09:00-17:00 on weekdays (70 % of slots, 30 % with a short absence), some evening use,"
    );
    println!(
        "  one PC in eight off, one in eight off at night; a stopped render yields after 60 s"
    );
    println!();
    println!(
        "  {:<30} {:<20} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6}",
        "scenario",
        "scheduler",
        "ideal h",
        "ratio",
        "p90",
        "max",
        "whole",
        "twice",
        "lost %",
        "dup %",
        "util %"
    );
    for scenario in sim::scenarios() {
        for policy in sim::policies() {
            let mut ratios = Vec::new();
            let mut whole = Vec::new();
            let (mut twice, mut lost, mut dup, mut util, mut ideal_h) = (0u64, 0.0, 0.0, 0.0, 0.0);
            for seed in 0..seeds {
                let out = sim::run(&scenario, seed, &policy, |_, _, _| {});
                assert_eq!(
                    out.frames_done, out.frames_total,
                    "{}: unfinished",
                    scenario.name
                );
                ratios.push(out.makespan as f64 / out.ideal.max(1) as f64);
                whole.push(out.makespan as f64 / out.whole_frames.max(1) as f64);
                twice += out.rendered_twice;
                lost += out.lost_share;
                dup += out.duplicate_share;
                util += out.utilisation;
                ideal_h += out.ideal as f64 / 3_600_000.0;
            }
            ratios.sort_by(f64::total_cmp);
            whole.sort_by(f64::total_cmp);
            let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
            let whole = format!("{:.3}", whole[(whole.len() - 1) / 2]);
            let n = seeds as f64;
            println!(
                "  {:<30} {:<20} {:>7.2} {:>7.3} {:>7.3} {:>7.3} {:>7} {:>6.1} {:>7.2} {:>6.2} {:>6.1}",
                scenario.name,
                policy.name,
                ideal_h / n,
                at(0.5),
                at(0.9),
                at(1.0),
                whole,
                twice as f64 / n,
                100.0 * lost / n,
                100.0 * dup / n,
                100.0 * util / n,
            );
        }
        println!();
    }
    println!();
    println!(
        "  ratio = makespan ÷ ideal (median over seeds; target ≤ 1.05); ideal h = mean ideal in hours;"
    );
    println!(
        "  whole = makespan ÷ when the PCs' free spells could first hold each job's frames whole (median);"
    );
    println!(
        "  twice = frames rendered more than once per run; lost = work thrown away at yields;"
    );
    println!("  dup = work of backup copies stopped because the other copy finished first.");
}
