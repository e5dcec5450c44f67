//! What the dashboard reads besides job and agent lists: the live event stream (SSE) and the
//! thumbnails made when frames are stored.

use std::collections::BTreeSet;
use std::time::Duration;

use idlefarm_coordinator::client::Client;
use idlefarm_protocol::JobState;
use idlefarm_protocol::accounts::Role;
use idlefarm_protocol::events::{Event, EventKind};
use idlefarm_protocol::routes;

use super::{JOB_LIMIT, SOON, Scene, add_agent, submit};
use crate::common::{Farm, assert_complete, wait_for_job};

/// One Server-Sent Events message: its `event:` name, `id:` and `data:`.
#[derive(Debug, Default)]
struct Message {
    name: String,
    id: Option<String>,
    data: String,
}

/// Reads SSE messages from a streaming response, a chunk at a time.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// The next complete message; `None` when the stream ends.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message::default();
                for line in block.lines() {
                    // `: keep-alive` comments and empty lines carry nothing.
                    let Some((field, value)) = line.split_once(':') else {
                        continue;
                    };
                    let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                    match field {
                        "event" => message.name = value,
                        "id" => message.id = Some(value),
                        "data" => message.data.push_str(&value),
                        _ => {}
                    }
                }
                if !message.name.is_empty() || !message.data.is_empty() {
                    return Some(message);
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("the stream reads")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_stream_tells_of_every_frame_done() {
    let mut farm = Farm::start(|_| {}).await;
    let token = farm
        .client
        .token()
        .expect("the admin has a token")
        .to_owned();
    let response = reqwest::Client::new()
        .get(farm.client.url(routes::EVENTS))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut stream = Sse {
        response,
        buffer: String::new(),
    };

    add_agent(&mut farm, "a");
    let job = submit(&farm.client, "watched", &Scene::tiny(4)).await;
    let mut done = BTreeSet::new();
    let mut last_id = 0;
    let mut job_done = false;
    let read = async {
        while !(job_done && done.len() == 4) {
            let message = stream.next().await.expect("the stream stays open");
            assert_ne!(message.name, "reset", "no event was lost");
            let event: Event = serde_json::from_str(&message.data)
                .unwrap_or_else(|e| panic!("{message:?} holds an event: {e}"));
            assert_eq!(message.name, event.kind.name());
            assert_eq!(message.id, Some(event.id.to_string()));
            assert!(event.id > last_id, "event ids increase");
            last_id = event.id;
            match event.kind {
                EventKind::FrameChanged {
                    job: j,
                    frame,
                    state,
                    agent,
                    ..
                } if j == job.id && state == "done" => {
                    assert!(agent.is_some(), "a done frame names its agent");
                    assert!(done.insert(frame), "frame {frame} reported done twice");
                }
                EventKind::JobChanged { job: j, state, .. } if j == job.id => {
                    job_done = state == JobState::Done;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(JOB_LIMIT, read)
        .await
        .expect("every frame's event arrives");
    assert_eq!(done, (1..=4).collect());
    let job = wait_for_job(&farm.client, job.id, Duration::from_secs(10)).await;
    assert_complete(&farm, &job).await;
    drop(stream);
    farm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn done_frames_have_small_jpeg_thumbnails() {
    let mut farm = Farm::start(|_| {}).await;
    add_agent(&mut farm, "a");
    // One frame size wider than a thumbnail, one narrower.
    let wide = Scene {
        width: 400,
        height: 200,
        ..Scene::tiny(2)
    };
    let wide = submit(&farm.client, "wide", &wide).await;
    let narrow = submit(&farm.client, "narrow", &Scene::tiny(2)).await;
    for (job, size) in [(wide.id, (320, 160)), (narrow.id, (48, 36))] {
        let job = wait_for_job(&farm.client, job, JOB_LIMIT).await;
        assert_complete(&farm, &job).await;
        let out = tempfile::tempdir().unwrap();
        for frame in job.settings.frames() {
            let dest = out.path().join(format!("{frame}.jpg"));
            farm.client
                .download(&routes::job_frame_thumbnail(job.id, frame), &dest)
                .await
                .unwrap();
            let bytes = std::fs::read(&dest).unwrap();
            let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
                .expect("the thumbnail is a JPEG");
            assert!(img.width() <= 320);
            assert_eq!(
                (img.width(), img.height()),
                size,
                "job {} frame {frame}",
                job.id
            );
        }
    }
    farm.stop().await;
}

/// Opens the event stream as `client`.
async fn open_stream(client: &Client) -> Sse {
    let response = reqwest::Client::new()
        .get(client.url(routes::EVENTS))
        .bearer_auth(client.token().expect("a logged-in client"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Sse {
        response,
        buffer: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submitter_hears_of_her_own_jobs_only_and_of_their_deletion() {
    let farm = Farm::start(|_| {}).await;
    let alice = farm.client_as("alice", Role::Submitter).await;
    let mut stream = open_stream(&alice).await;
    // Nobody renders here; the admin's job is published first, so were it visible to Alice it
    // would reach her stream before anything about her own job.
    let theirs = submit(&farm.client, "admins", &Scene::tiny(1)).await;
    let mine = submit(&alice, "alices", &Scene::tiny(1)).await;
    alice.delete(&routes::job(mine.id)).await.unwrap();

    let mut seen = Vec::new();
    let read = async {
        loop {
            let message = stream.next().await.expect("the stream stays open");
            let event: Event = serde_json::from_str(&message.data)
                .unwrap_or_else(|e| panic!("{message:?} holds an event: {e}"));
            if let Some(owner) = event.kind.owner() {
                assert_eq!(owner, mine.owner_id, "Alice sees only her own: {event:?}");
            }
            seen.push(event.kind.name());
            if let EventKind::JobDeleted { job, .. } = event.kind {
                assert_eq!(job, mine.id);
                return;
            }
        }
    };
    tokio::time::timeout(SOON, read)
        .await
        .expect("the deletion of her job reaches Alice");
    assert!(seen.contains(&"job-changed"), "{seen:?}");
    assert_ne!(theirs.owner_id, mine.owner_id);

    // A coordinator shutting down ends open streams instead of waiting for their clients.
    tokio::time::timeout(SOON, farm.stop())
        .await
        .expect("the coordinator stops while an event stream is open");
    let after = tokio::time::timeout(SOON, stream.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "the stream ends at shutdown: {after:?}"
    );
}
