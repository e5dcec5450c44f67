//! Waking the PCs that wait for work: queued frames wake waiting lease requests a few at a time
//! and each passes the wake-up on, so a PC that can render the frames gets them at once even
//! when PCs that cannot are waiting ahead of it, and the others go on waiting.

use std::time::Duration;

use idlefarm_protocol::Renderer;

use crate::common::Farm;
use crate::hostile_agent::{FakeAgent, submit_pov};

#[tokio::test]
async fn a_waiting_pc_that_can_render_the_frames_gets_them_though_others_wait_ahead_of_it() {
    let farm = Farm::start(|_| {}).await;
    // Three PCs with only Blender start waiting first, then one with POV-Ray.
    let mut blender_pcs = Vec::new();
    for name in ["b1", "b2", "b3"] {
        let pc = FakeAgent::enrol(&farm, name, &[Renderer::Blender]).await;
        blender_pcs.push(tokio::spawn(async move { pc.ask().await }));
        // Only so that they queue up in this order; the outcome does not depend on it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pov_pc = FakeAgent::enrol(&farm, "p", &[Renderer::Povray]).await;
    let waiting = tokio::spawn(async move { pov_pc.ask().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    submit_pov(&farm, 1, 1).await;
    // Its one long-polled request gets the frame (without passing the wake-up on, it would
    // have waited out the long poll and come back empty)...
    let lease = waiting
        .await
        .unwrap()
        .expect("the POV-Ray PC's waiting request gets the frame");
    assert_eq!(lease.frames, vec![1]);
    // ...while the PCs that cannot render it are still waiting, and then get nothing.
    assert!(blender_pcs.iter().all(|pc| !pc.is_finished()));
    for pc in blender_pcs {
        assert!(pc.await.unwrap().is_none());
    }
}
