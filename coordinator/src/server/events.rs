//! The live event stream as Server-Sent Events: one SSE message per [`Event`] the caller may
//! see, a `reset` message when events were lost (the page re-fetches its state), and a comment
//! line now and then so proxies do not close a quiet stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use idlefarm_protocol::events::{Event, RESET_EVENT};
use tokio_util::sync::CancellationToken;

use crate::events::{Delivery, EventHub};

/// How often a quiet stream gets a keep-alive comment unless told otherwise.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// Text of the keep-alive comment (`: keep-alive`).
pub const KEEPALIVE_COMMENT: &str = "keep-alive";

/// The SSE response for one client: events after `last_event_id` (or a reset), then live ones,
/// keeping only those `visible` accepts, until `closing` is cancelled.
///
/// The stream borrows nothing from `hub`: it lives as long as the client stays connected, or
/// until `closing` (the server shutting down, which would otherwise wait for every client).
pub fn sse<V>(
    hub: &EventHub,
    last_event_id: Option<u64>,
    visible: V,
    keepalive: Duration,
    closing: CancellationToken,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>> + use<V>>
where
    V: Fn(&Event) -> bool + Send + 'static,
{
    let stream = hub
        .subscribe(last_event_id)
        .into_stream()
        .take_until(closing.cancelled_owned())
        .filter_map(move |delivery| {
            let message = match delivery {
                Delivery::Event(event) if visible(&event) => message(&event),
                Delivery::Event(_) => None,
                // No id: a client reconnecting before the next event resumes from its old id,
                // gets another reset and so still re-fetches.
                Delivery::Gap => Some(sse::Event::default().event(RESET_EVENT).data("{}")),
            };
            futures::future::ready(message.map(Ok))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(keepalive).text(KEEPALIVE_COMMENT))
}

fn message(event: &Event) -> Option<sse::Event> {
    match serde_json::to_string(event) {
        Ok(json) => Some(
            sse::Event::default()
                .id(event.id.to_string())
                .event(event.kind.name())
                .data(json),
        ),
        Err(err) => {
            // Not reachable with the protocol's types; skipping beats ending everyone's stream.
            tracing::error!(id = event.id, "cannot serialize event: {err}");
            None
        }
    }
}

/// The `Last-Event-ID` a reconnecting client sends. A malformed value is treated as absent: the
/// client then gets live events only, as on a first connection.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Router;
    use axum::routing::get;
    use idlefarm_protocol::events::EventKind;
    use idlefarm_protocol::{FrameCounts, JobState, PresenceState};

    use super::*;

    /// Serves `sse` at `/events` on 127.0.0.1:0; the server ends with the test's runtime.
    async fn serve(hub: Arc<EventHub>, visible: fn(&Event) -> bool, keepalive: Duration) -> String {
        let app = Router::new().route(
            "/events",
            get(move |headers: HeaderMap| async move {
                sse(
                    &hub,
                    last_event_id(&headers),
                    visible,
                    keepalive,
                    CancellationToken::new(),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/events")
    }

    /// One SSE message as the client sees it.
    #[derive(Debug, Default)]
    struct Message {
        id: Option<String>,
        event: Option<String>,
        data: Option<String>,
        comment: Option<String>,
    }

    struct Reader {
        body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
        buf: String,
    }

    impl Reader {
        async fn open(url: &str, last_event_id: Option<&str>) -> Reader {
            let mut req = reqwest::Client::new().get(url);
            if let Some(id) = last_event_id {
                req = req.header("Last-Event-ID", id);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(ctype.starts_with("text/event-stream"), "{ctype}");
            Reader {
                body: Box::pin(resp.bytes_stream()),
                buf: String::new(),
            }
        }

        async fn next(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(5), self.read())
                .await
                .expect("an SSE message within 5 s")
        }

        async fn read(&mut self) -> Message {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    return parse(&block);
                }
                let chunk = self.body.next().await.expect("stream open").unwrap();
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        }

        /// Asserts nothing arrives for a while (keep-alives aside).
        async fn quiet(&mut self) {
            let got = tokio::time::timeout(Duration::from_millis(300), self.read()).await;
            if let Ok(m) = got {
                assert!(m.comment.is_some(), "unexpected message {m:?}");
            }
        }
    }

    fn parse(block: &str) -> Message {
        let mut m = Message::default();
        for line in block.lines().filter(|l| !l.is_empty()) {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "" => m.comment = Some(value),
                "id" => m.id = Some(value),
                "event" => m.event = Some(value),
                "data" => m.data = Some(value),
                other => panic!("unknown SSE field {other:?} in {block:?}"),
            }
        }
        m
    }

    /// The event a message carries, checked against its id and name lines.
    fn event_of(m: &Message) -> Event {
        let event: Event = serde_json::from_str(m.data.as_deref().unwrap()).unwrap();
        assert_eq!(m.id.as_deref(), Some(event.id.to_string().as_str()));
        assert_eq!(m.event.as_deref(), Some(event.kind.name()));
        event
    }

    fn everything(_: &Event) -> bool {
        true
    }

    fn job(job: i64, owner: i64) -> EventKind {
        EventKind::JobChanged {
            job,
            owner: Some(owner),
            state: JobState::Rendering,
            frames: FrameCounts {
                queued: 3,
                ..FrameCounts::default()
            },
        }
    }

    #[tokio::test]
    async fn each_event_arrives_with_its_id_name_and_json() {
        let hub = Arc::new(EventHub::new(64));
        let url = serve(hub.clone(), everything, DEFAULT_KEEPALIVE).await;
        let mut reader = Reader::open(&url, None).await;
        let kinds = vec![
            job(1, 5),
            EventKind::FrameChanged {
                job: 1,
                owner: Some(5),
                frame: 7,
                state: "done".into(),
                agent: Some(3),
            },
            EventKind::Presence {
                agent: 3,
                state: PresenceState::UserPresent,
            },
            EventKind::AgentChanged { agent: 3 },
        ];
        let ids: Vec<u64> = kinds.iter().map(|k| hub.publish(k.clone())).collect();
        for (kind, id) in kinds.into_iter().zip(ids) {
            let m = reader.next().await;
            let event = event_of(&m);
            assert_eq!(event.id, id);
            assert_eq!(event.kind, kind);
        }
    }

    #[tokio::test]
    async fn events_the_caller_may_not_see_are_skipped() {
        fn owner_one_and_farm(e: &Event) -> bool {
            matches!(e.kind.owner(), None | Some(Some(1)))
        }
        let hub = Arc::new(EventHub::new(64));
        let url = serve(hub.clone(), owner_one_and_farm, DEFAULT_KEEPALIVE).await;
        let mut reader = Reader::open(&url, None).await;
        hub.publish(job(10, 2));
        let mine = hub.publish(job(11, 1));
        hub.publish(job(12, 2));
        let farm = hub.publish(EventKind::AgentChanged { agent: 4 });
        assert_eq!(event_of(&reader.next().await).id, mine);
        assert_eq!(event_of(&reader.next().await).id, farm);
        reader.quiet().await;
    }

    #[tokio::test]
    async fn last_event_id_resumes_after_that_event() {
        let hub = Arc::new(EventHub::new(64));
        let url = serve(hub.clone(), everything, DEFAULT_KEEPALIVE).await;
        let ids: Vec<u64> = (1..=3).map(|n| hub.publish(job(n, 1))).collect();
        let mut reader = Reader::open(&url, Some(&ids[0].to_string())).await;
        assert_eq!(event_of(&reader.next().await).id, ids[1]);
        assert_eq!(event_of(&reader.next().await).id, ids[2]);
        let live = hub.publish(job(4, 1));
        assert_eq!(event_of(&reader.next().await).id, live);
    }

    #[tokio::test]
    async fn a_malformed_last_event_id_is_ignored() {
        let hub = Arc::new(EventHub::new(64));
        let url = serve(hub.clone(), everything, DEFAULT_KEEPALIVE).await;
        hub.publish(job(1, 1));
        let mut reader = Reader::open(&url, Some("not-a-number")).await;
        let live = hub.publish(job(2, 1));
        assert_eq!(event_of(&reader.next().await).id, live);
    }

    #[tokio::test]
    async fn an_id_older_than_the_buffer_gets_a_reset_then_live_events() {
        let hub = Arc::new(EventHub::new(2));
        let url = serve(hub.clone(), everything, DEFAULT_KEEPALIVE).await;
        let ids: Vec<u64> = (1..=5).map(|n| hub.publish(job(n, 1))).collect();
        let mut reader = Reader::open(&url, Some(&ids[0].to_string())).await;
        let reset = reader.next().await;
        assert_eq!(reset.event.as_deref(), Some(RESET_EVENT));
        assert_eq!(reset.data.as_deref(), Some("{}"));
        assert_eq!(reset.id, None);
        let live = hub.publish(job(6, 1));
        assert_eq!(event_of(&reader.next().await).id, live);
    }

    #[tokio::test]
    async fn a_quiet_stream_gets_keep_alive_comments() {
        let hub = Arc::new(EventHub::new(8));
        let url = serve(hub.clone(), everything, Duration::from_millis(100)).await;
        let mut reader = Reader::open(&url, None).await;
        for _ in 0..2 {
            let m = reader.next().await;
            assert_eq!(m.comment.as_deref(), Some(KEEPALIVE_COMMENT), "{m:?}");
            assert!(m.event.is_none() && m.data.is_none());
        }
        let id = hub.publish(job(1, 1));
        // A keep-alive may slip in before the event.
        let mut m = reader.next().await;
        while m.comment.is_some() {
            m = reader.next().await;
        }
        assert_eq!(event_of(&m).id, id);
    }

    #[test]
    fn last_event_id_reads_the_header_and_ignores_junk() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("last-event-id", v.parse().unwrap());
            last_event_id(&h)
        };
        assert_eq!(with("42"), Some(42));
        assert_eq!(with(" 42 "), Some(42));
        assert_eq!(with("-1"), None);
        assert_eq!(with("4x"), None);
        assert_eq!(with(""), None);
        assert_eq!(last_event_id(&HeaderMap::new()), None);
    }
}
