//! Who may see and steer a job: its owner and admins; another submitter gets 403 (and does not
//! see it listed), someone not logged in gets 401, and neither changes anything.

use idlefarm_coordinator::client::Client;
use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::routes::{self, with_id};
use idlefarm_protocol::{JobInfo, JobState};
use reqwest::Method;
use serde_json::json;

use super::{JOB_LIMIT, Scene, call, post_form, submit};
use crate::common::{Farm, assert_complete, wait_for_job};

/// Every route that reads or changes one job, with a valid body where it takes one.
fn job_routes(id: i64) -> Vec<(Method, String, Option<serde_json::Value>)> {
    let post = |template: &str, body| (Method::POST, with_id(template, id), Some(body));
    vec![
        (Method::GET, routes::job(id), None),
        (Method::GET, routes::job_frames(id), None),
        (Method::GET, with_id(routes::JOB_FAILURES, id), None),
        (
            Method::GET,
            routes::job_frame_file(id, "frame_00001.png"),
            None,
        ),
        (Method::GET, routes::job_frame_thumbnail(id, 1), None),
        (Method::GET, routes::job_video(id), None),
        (Method::GET, routes::job_frames_zip(id), None),
        post(routes::JOB_CANCEL, json!({})),
        post(routes::JOB_PAUSE, json!({})),
        post(routes::JOB_RESUME, json!({})),
        post(routes::JOB_RETRY, json!({ "frames": "1" })),
        post(routes::JOB_PRIORITY, json!({ "priority": 5 })),
        (Method::DELETE, routes::job(id), None),
    ]
}

/// The job as its owner sees it, to compare before and after refused requests.
async fn snapshot(owner: &Client, id: i64) -> (JobState, i64, u64, u64, bool) {
    let j: JobInfo = owner.job(id).await.unwrap();
    (
        j.state,
        j.priority,
        j.frames.queued,
        j.frames.done,
        j.has_video,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submitter_sees_and_controls_only_their_own_jobs() {
    let mut farm = Farm::start(|_| {}).await;
    farm.add_agent("a");
    let alice = farm.client_as("alice", Role::Submitter).await;
    let bob = farm.client_as("bob", Role::Submitter).await;

    // One finished job of Alice's, and one no PC can take (it needs a tag none has).
    let done = submit(&alice, "done", &Scene::tiny(2)).await;
    let waiting = Scene {
        tags: Some("room-9"),
        ..Scene::tiny(2)
    };
    let waiting = submit(&alice, "waiting", &waiting).await;
    assert_eq!(waiting.required_tags, vec!["room-9".to_owned()]);
    let done = wait_for_job(&alice, done.id, JOB_LIMIT).await;
    assert_complete(&farm, &done).await;
    assert_eq!(done.owner.as_deref(), Some("alice"));

    let mut mine: Vec<i64> = alice.jobs().await.unwrap().iter().map(|j| j.id).collect();
    mine.sort_unstable();
    assert_eq!(mine, vec![done.id, waiting.id], "Alice sees her jobs");
    assert!(
        bob.jobs().await.unwrap().is_empty(),
        "Bob sees none of Alice's jobs"
    );
    assert_eq!(
        bob.agents().await.unwrap().len(),
        1,
        "a submitter sees the farm's PCs"
    );

    let before = [
        snapshot(&alice, done.id).await,
        snapshot(&alice, waiting.id).await,
    ];
    let audit_before = farm.client.audit(1000).await.unwrap().len();
    let nobody = Client::new(&farm.url);
    for id in [done.id, waiting.id] {
        for (method, path, body) in job_routes(id) {
            let what = format!("Bob: {method} {path}");
            call(&bob, method.clone(), &path, body.clone())
                .await
                .assert_error(403, "another user", &what);
            let what = format!("not logged in: {method} {path}");
            call(&nobody, method, &path, body)
                .await
                .assert_error(401, "not logged in", &what);
        }
    }
    for path in [routes::JOBS, routes::EVENTS, routes::AGENTS] {
        call(&nobody, Method::GET, path, None)
            .await
            .assert_error(401, "not logged in", path);
    }
    post_form(&nobody, Scene::tiny(1).form("sneaky"))
        .await
        .assert_error(401, "not logged in", "a submission without login");
    let after = [
        snapshot(&alice, done.id).await,
        snapshot(&alice, waiting.id).await,
    ];
    assert_eq!(after, before, "refused requests changed nothing");
    assert_eq!(
        farm.client.audit(1000).await.unwrap().len(),
        audit_before,
        "refused requests are not audited as actions"
    );
    assert_eq!(alice.jobs().await.unwrap().len(), 2, "no job was submitted");

    // The owner steers her own job; an admin sees, downloads and steers everyone's.
    alice
        .post_json(
            &with_id(routes::JOB_PRIORITY, waiting.id),
            &json!({ "priority": 7 }),
        )
        .await
        .unwrap();
    assert_eq!(alice.job(waiting.id).await.unwrap().priority, 7);
    let all: Vec<i64> = farm
        .client
        .jobs()
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert!(
        all.contains(&done.id) && all.contains(&waiting.id),
        "{all:?}"
    );
    let out = tempfile::tempdir().unwrap();
    let frame = out.path().join("f.png");
    farm.client
        .download(&routes::job_frame_file(done.id, "frame_00001.png"), &frame)
        .await
        .unwrap();
    image::open(&frame).expect("the admin downloads a decodable frame");
    farm.client
        .post_json(&with_id(routes::JOB_CANCEL, waiting.id), &json!({}))
        .await
        .unwrap();
    let cancelled = alice.job(waiting.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let audit = farm.client.audit(10).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "job.cancel"),
        "the admin's cancel is audited: {audit:?}"
    );

    // Deleting removes the job and its files from disk.
    let job_dir = farm.data().join("jobs").join(done.id.to_string());
    assert!(job_dir.join("video.mp4").exists(), "the video is stored");
    alice.delete(&routes::job(done.id)).await.unwrap();
    assert!(!job_dir.exists(), "{} is removed", job_dir.display());
    call(&alice, Method::GET, &routes::job(done.id), None)
        .await
        .assert_error(404, "no job", "a deleted job");
    let left: Vec<i64> = alice.jobs().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(left, vec![waiting.id]);
    farm.stop().await;
}
