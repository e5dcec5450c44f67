//! Benchmark: how soon jobs finish on a lab whose PCs come and go. The real scheduling core
//! drives a simulated lab (see `lab/sim.rs`) for each scenario over 20 seeds and prints, per
//! scenario: makespan ÷ ideal (median, p90, max), frames rendered twice, work lost to
//! reclaims, and PC utilisation while available. Asserts nothing.
//!
//! `cargo bench -p idlefarm-coordinator --bench lab_sim [-- SEEDS]` (default 20).

#[path = "lab/sim.rs"]
mod sim;

fn main() {
    let seeds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    println!("idlefarm lab simulator: 12 PCs of speeds 1:4, submitted Monday 10:00, {seeds} seeds");
    println!(
        "  classes 09:00-17:00 on weekdays (70 % of slots, 30 % with a short absence), some evening use,"
    );
    println!(
        "  one PC in eight off, one in eight off at night; a stopped render yields after 60 s"
    );
    println!();
    println!(
        "  {:<30} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "ideal h", "ratio", "p90", "max", "twice", "lost %", "util %"
    );
    for scenario in sim::scenarios() {
        let mut ratios = Vec::new();
        let (mut twice, mut lost, mut util, mut ideal_h) = (0u64, 0.0, 0.0, 0.0);
        for seed in 0..seeds {
            let out = sim::run(&scenario, seed, |_, _, _| {});
            assert_eq!(
                out.frames_done, out.frames_total,
                "{}: unfinished",
                scenario.name
            );
            ratios.push(out.makespan as f64 / out.ideal.max(1) as f64);
            twice += out.rendered_twice;
            lost += out.lost_share;
            util += out.utilisation;
            ideal_h += out.ideal as f64 / 3_600_000.0;
        }
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
        let n = seeds as f64;
        println!(
            "  {:<30} {:>8.2} {:>8.3} {:>8.3} {:>8.3} {:>8.1} {:>8.2} {:>7.1}",
            scenario.name,
            ideal_h / n,
            at(0.5),
            at(0.9),
            at(1.0),
            twice as f64 / n,
            100.0 * lost / n,
            100.0 * util / n,
        );
    }
    println!();
    println!(
        "  ratio = makespan ÷ ideal (median over seeds; target ≤ 1.05); ideal h = mean ideal in hours;"
    );
    println!(
        "  twice = frames rendered more than once per run; lost = work thrown away at yields."
    );
}
