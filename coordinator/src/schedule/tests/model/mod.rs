//! A model of the whole farm driven by random events: several jobs with owners and priorities,
//! several agents with renderers, tags, modes, presence and failure records. Every lease goes
//! through [`pick_order`] then [`Board::take_chunk`], as the coordinator does; after every event
//! the safety rules are checked, and a final drain with honest agents must finish every job that
//! was not cancelled.

mod events;
mod farm;

use proptest::prelude::*;

use crate::schedule::{FrameState, JobStatus};
use events::{agent, event, job};
use farm::Farm;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Under random leases, uploads, renders held for a second opinion, yields, failures, expiries, cancels, pauses, resumes,
    /// priority changes, retries, re-renders, agent modes, presence, releases and restarts,
    /// nothing is leased where it must not be and no frame is done twice; a drain with honest
    /// agents then finishes every job that was not cancelled.
    #[test]
    fn every_frame_of_every_live_job_is_done_exactly_once(
        jobs in proptest::collection::vec(job(), 1..5),
        agents in proptest::collection::vec(agent(), 1..5),
        events in proptest::collection::vec(event(), 0..300),
    ) {
        let mut farm = Farm { jobs, agents, held: Vec::new(), now: 0, next_lease: 1 };
        for ev in events {
            farm.apply(ev)?;
            farm.check()?;
        }
        farm.drain()?;
        farm.check()?;
        for job in farm.jobs.iter().filter(|j| j.status != JobStatus::Cancelled) {
            prop_assert!(job.board.leases.is_empty());
            prop_assert_eq!(job.status, JobStatus::Finished);
            for (i, f) in job.board.frames.iter().enumerate() {
                match f.state {
                    FrameState::Done(_) => prop_assert_eq!(job.delivered[i], 1),
                    FrameState::Failed => prop_assert_eq!(job.delivered[i], 0),
                    other => prop_assert!(false, "frame left in {:?}", other),
                }
            }
        }
    }
}
