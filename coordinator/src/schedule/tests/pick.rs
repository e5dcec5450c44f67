//! Which job an agent gets: modes, presence, quarantine, priority, fair share, tags, renderers,
//! blocklists, and the reasons shown when it gets nothing.

use std::collections::HashMap;

use idlefarm_protocol::Renderer;

use crate::schedule::{
    AgentMode, AgentView, Health, JobStatus, JobView, Misfit, NoWork, Unfit, misfit, pick_order,
};

const BOTH: &[Renderer] = &[Renderer::Blender, Renderer::Povray];
const NO_TAGS: &[String] = &[];

fn job(id: i64, priority: i64, owner: Option<i64>) -> JobView<'static> {
    JobView {
        id,
        owner,
        priority,
        status: JobStatus::Runnable,
        renderer: Renderer::Blender,
        required_tags: NO_TAGS,
        queued: 5,
        running: 0,
    }
}

fn agent(health: &Health) -> AgentView<'_> {
    AgentView {
        id: 1,
        renderers: BOTH,
        tags: NO_TAGS,
        mode: AgentMode::Active,
        may_take_work: true,
        health,
    }
}

fn order(jobs: &[JobView], agent: &AgentView) -> Result<Vec<i64>, NoWork> {
    pick_order(jobs, agent, &HashMap::new(), 0)
}

#[test]
fn higher_priority_first_then_older_first() {
    let h = Health::default();
    let jobs = [
        job(1, 0, None),
        job(2, 5, None),
        job(3, 0, None),
        job(4, 5, None),
    ];
    assert_eq!(order(&jobs, &agent(&h)), Ok(vec![2, 4, 1, 3]));
}

#[test]
fn equal_priorities_share_the_farm_between_owners() {
    let h = Health::default();
    let jobs = [
        job(1, 0, Some(10)),
        job(2, 0, Some(10)),
        job(3, 0, Some(20)),
        job(4, 1, Some(10)),
    ];
    let running = HashMap::from([(Some(10), 3), (Some(20), 1)]);
    let picked = pick_order(&jobs, &agent(&h), &running, 0);
    // Priority still wins over fairness; among priority 0, owner 20 runs less.
    assert_eq!(picked, Ok(vec![4, 3, 1, 2]));
}

#[test]
fn equal_jobs_of_one_owner_share_the_farm_rather_than_the_oldest_taking_it_all() {
    let h = Health::default();
    let mut jobs = [
        job(1, 0, Some(10)),
        job(2, 0, Some(10)),
        job(3, 0, Some(10)),
    ];
    jobs[0].running = 4;
    jobs[1].running = 1;
    jobs[2].running = 1;
    let running = HashMap::from([(Some(10), 6)]);
    // The job with fewer PCs first; between equals, the older.
    assert_eq!(
        pick_order(&jobs, &agent(&h), &running, 0),
        Ok(vec![2, 3, 1])
    );
    // A running count never beats a higher priority.
    jobs[0].priority = 1;
    assert_eq!(
        pick_order(&jobs, &agent(&h), &running, 0),
        Ok(vec![1, 2, 3])
    );
}

#[test]
fn paused_cancelled_finished_and_empty_jobs_are_skipped() {
    let h = Health::default();
    let mut jobs = [
        job(1, 0, None),
        job(2, 0, None),
        job(3, 0, None),
        job(4, 0, None),
    ];
    jobs[0].status = JobStatus::Paused;
    jobs[1].status = JobStatus::Cancelled;
    jobs[2].status = JobStatus::Finished;
    jobs[3].queued = 0;
    assert_eq!(order(&jobs, &agent(&h)), Err(NoWork::NothingToDo));
    assert_eq!(
        order(&[], &agent(&h)).unwrap_err().to_string(),
        "no queued frames"
    );
}

#[test]
fn modes_presence_and_quarantine_stop_all_work() {
    let h = Health::default();
    let jobs = [job(1, 0, None)];
    let mut a = agent(&h);
    a.mode = AgentMode::Disabled;
    assert_eq!(order(&jobs, &a), Err(NoWork::Disabled));
    a.mode = AgentMode::Draining;
    assert_eq!(order(&jobs, &a), Err(NoWork::Draining));
    a.mode = AgentMode::Active;
    a.may_take_work = false;
    assert_eq!(order(&jobs, &a), Err(NoWork::Busy));

    let sick = Health {
        quarantined_until: Some(14 * 3_600_000 + 5 * 60_000),
        quarantined_for: [1, 2, 3].into(),
        ..Health::default()
    };
    let a = agent(&sick);
    let now = 13 * 3_600_000 + 23 * 60_000;
    let err = pick_order(&jobs, &a, &HashMap::new(), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "quarantined until 14:05 UTC after failures on 3 jobs"
    );
    assert_eq!(
        err.describe(now),
        "quarantined for another 42 min (until 14:05 UTC) after failures on 3 jobs"
    );
    let later = 14 * 3_600_000 + 5 * 60_000;
    assert_eq!(pick_order(&jobs, &a, &HashMap::new(), later), Ok(vec![1]));
}

#[test]
fn required_tags_and_renderers_must_be_on_the_agent() {
    let h = Health::default();
    let gpu = vec!["gpu".to_owned()];
    let gpu_room = vec!["gpu".to_owned(), "room-2".to_owned()];
    let mut jobs = [job(1, 0, None), job(2, 0, None), job(3, 0, None)];
    jobs[0].required_tags = &gpu;
    jobs[1].required_tags = &gpu_room;
    jobs[2].renderer = Renderer::Povray;
    let mut a = agent(&h);
    a.renderers = &[Renderer::Blender];
    a.tags = &gpu;
    assert_eq!(order(&jobs, &a), Ok(vec![1]));
    assert_eq!(misfit(&jobs[1], &a), Some(Misfit::Tag("room-2".into())));
    assert_eq!(
        misfit(&jobs[2], &a),
        Some(Misfit::Renderer(Renderer::Povray))
    );

    a.tags = NO_TAGS;
    let err = order(&jobs, &a).unwrap_err();
    assert_eq!(
        err,
        NoWork::NoneFits(Unfit {
            agent_renderers: vec![Renderer::Blender],
            renderer: 1,
            missing_renderers: vec![Renderer::Povray],
            tags: 2,
            missing_tags: vec!["gpu".into()],
            blocklisted: vec![],
        })
    );
    assert_eq!(
        err.to_string(),
        "no queued job needs Blender; 1 queued job needs POV-Ray; 2 queued jobs need tag gpu"
    );
}

#[test]
fn a_blocklisted_job_goes_to_other_agents_only() {
    let bad = Health {
        blocklisted: [7].into(),
        ..Health::default()
    };
    let fine = Health::default();
    let jobs = [job(7, 0, None), job(8, -1, None)];
    assert_eq!(order(&jobs, &agent(&bad)), Ok(vec![8]));
    assert_eq!(order(&jobs, &agent(&fine)), Ok(vec![7, 8]));
    let err = order(&jobs[..1], &agent(&bad)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "blocklisted for job 7 after repeated failures"
    );
}

#[test]
fn agent_modes_round_trip_through_their_names() {
    for mode in [AgentMode::Active, AgentMode::Draining, AgentMode::Disabled] {
        assert_eq!(AgentMode::parse(mode.as_str()), Some(mode));
    }
    assert_eq!(AgentMode::parse("asleep"), None);
}
