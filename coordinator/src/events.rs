//! The event hub: numbers every farm change, keeps the most recent ones so a client can resume
//! after a dropped connection (`Last-Event-ID`), and broadcasts them to live subscribers. A
//! subscriber that cannot be given every event it missed gets a [`Delivery::Gap`] instead, and
//! re-fetches state; it never silently skips events.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::Stream;
use idlefarm_protocol::events::{Event, EventKind};
use tokio::sync::broadcast::{self, error::RecvError};

/// How many events the hub keeps for resuming clients unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Publishes farm changes to any number of subscribers.
pub struct EventHub {
    recent: Mutex<Recent>,
    live: broadcast::Sender<Event>,
    capacity: usize,
}

/// The ring buffer of recent events and the next id, changed only under the hub's lock.
struct Recent {
    next_id: u64,
    events: VecDeque<Event>,
}

/// What a subscriber receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The next event.
    Event(Event),
    /// Events were lost between the previous delivery and the next one: re-fetch state.
    Gap,
}

/// One subscriber's view of the hub: the events it missed, then live ones.
pub struct Subscription {
    backlog: VecDeque<Delivery>,
    live: broadcast::Receiver<Event>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EventHub {
    /// A hub that keeps the last `capacity` events (at least one) for resuming clients.
    pub fn new(capacity: usize) -> EventHub {
        // Ids start at the clock in milliseconds so a restarted coordinator never reuses the ids
        // of its previous run: a client resuming with an id from before the restart finds it
        // outside the buffer and gets a gap (unless the old run published more than one event
        // per millisecond of its life).
        Self::starting_at(capacity, u64::try_from(now_ms()).unwrap_or(0).max(1))
    }

    fn starting_at(capacity: usize, first_id: u64) -> EventHub {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(capacity);
        EventHub {
            recent: Mutex::new(Recent {
                next_id: first_id,
                events: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            }),
            live,
            capacity,
        }
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        // A panic while holding the lock cannot leave the ring half-updated (every step keeps it
        // valid), so a poisoned lock is still safe to use.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers and timestamps a change, keeps it for resuming clients and sends it to live
    /// subscribers. Returns its id.
    pub fn publish(&self, kind: EventKind) -> u64 {
        let mut recent = self.recent();
        let id = recent.next_id;
        recent.next_id += 1;
        let event = Event {
            id,
            at_ms: now_ms(),
            kind,
        };
        if recent.events.len() == self.capacity {
            recent.events.pop_front();
        }
        // Sent under the lock so live subscribers see events in id order, and a subscriber
        // joining concurrently gets each event exactly once: from the buffer or from the channel.
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(event.clone());
        }
        recent.events.push_back(event);
        id
    }

    /// The id of the latest event published, if any.
    pub fn last_id(&self) -> Option<u64> {
        self.recent().events.back().map(|e| e.id)
    }

    /// Subscribes. With `last_event_id`, the subscription first delivers every kept event after
    /// it, or a [`Delivery::Gap`] when events after it are no longer kept (or the id is not one
    /// this hub gave out); without, it delivers only events published from now on.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let recent = self.recent();
        let live = self.live.subscribe();
        let mut backlog = VecDeque::new();
        if let Some(last) = last_event_id {
            let next = recent.next_id;
            let oldest_kept = recent.events.front().map_or(next, |e| e.id);
            if last >= next || last.saturating_add(1) < oldest_kept {
                backlog.push_back(Delivery::Gap);
            } else {
                backlog.extend(
                    recent
                        .events
                        .iter()
                        .filter(|e| e.id > last)
                        .cloned()
                        .map(Delivery::Event),
                );
            }
        }
        Subscription { backlog, live }
    }
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(DEFAULT_CAPACITY)
    }
}

impl Subscription {
    /// The next delivery; `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        if let Some(d) = self.backlog.pop_front() {
            return Some(d);
        }
        match self.live.recv().await {
            Ok(event) => Some(Delivery::Event(event)),
            // The channel dropped events this subscriber had not read; it goes on with the
            // oldest one still held.
            Err(RecvError::Lagged(_)) => Some(Delivery::Gap),
            Err(RecvError::Closed) => None,
        }
    }

    /// The subscription as a stream of deliveries.
    pub fn into_stream(self) -> impl Stream<Item = Delivery> + Send + 'static {
        futures::stream::unfold(self, |mut sub| async move {
            let d = sub.next().await?;
            Some((d, sub))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    fn agent(n: i64) -> EventKind {
        EventKind::AgentChanged { agent: n }
    }

    fn agent_of(d: &Delivery) -> Option<i64> {
        match d {
            Delivery::Event(Event {
                kind: EventKind::AgentChanged { agent },
                ..
            }) => Some(*agent),
            _ => None,
        }
    }

    async fn next(sub: &mut Subscription) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a delivery within 5 s")
            .expect("hub alive")
    }

    #[tokio::test]
    async fn ids_increase_and_live_subscribers_get_every_event_in_order() {
        let hub = EventHub::new(16);
        let mut sub = hub.subscribe(None);
        let ids: Vec<u64> = (0..5).map(|n| hub.publish(agent(n))).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
        assert_eq!(hub.last_id(), ids.last().copied());
        for (n, id) in ids.iter().enumerate() {
            match next(&mut sub).await {
                Delivery::Event(e) => {
                    assert_eq!(e.id, *id);
                    assert_eq!(e.kind, agent(n as i64));
                    assert!(e.at_ms > 0);
                }
                Delivery::Gap => panic!("unexpected gap"),
            }
        }
    }

    #[tokio::test]
    async fn resuming_replays_the_kept_events_after_the_id_then_goes_live() {
        let hub = EventHub::new(16);
        let ids: Vec<u64> = (0..4).map(|n| hub.publish(agent(n))).collect();
        let mut sub = hub.subscribe(Some(ids[1]));
        hub.publish(agent(4));
        let got: Vec<_> = [
            next(&mut sub).await,
            next(&mut sub).await,
            next(&mut sub).await,
        ]
        .iter()
        .map(agent_of)
        .collect();
        assert_eq!(got, vec![Some(2), Some(3), Some(4)]);

        let mut up_to_date = hub.subscribe(hub.last_id());
        let id = hub.publish(agent(5));
        assert!(matches!(next(&mut up_to_date).await, Delivery::Event(e) if e.id == id));
    }

    #[tokio::test]
    async fn an_id_older_than_the_buffer_or_unknown_is_a_gap() {
        let hub = EventHub::new(3);
        let ids: Vec<u64> = (0..5).map(|n| hub.publish(agent(n))).collect();
        // ids[1] is gone, so the event after ids[0] is lost.
        let mut old = hub.subscribe(Some(ids[0]));
        assert_eq!(next(&mut old).await, Delivery::Gap);
        // ids[1] is the last one dropped: everything after it is still kept.
        let mut edge = hub.subscribe(Some(ids[1]));
        assert_eq!(agent_of(&next(&mut edge).await), Some(2));
        // An id from the future (a previous run of the coordinator) cannot be trusted.
        let mut future = hub.subscribe(Some(ids[4] + 100));
        assert_eq!(next(&mut future).await, Delivery::Gap);
        // After the gap the subscription is live.
        hub.publish(agent(9));
        assert_eq!(agent_of(&next(&mut old).await), Some(9));
    }

    #[tokio::test]
    async fn a_resume_from_before_the_first_event_on_an_empty_hub_is_a_gap() {
        let hub = EventHub::new(8);
        let mut sub = hub.subscribe(Some(1));
        assert_eq!(next(&mut sub).await, Delivery::Gap);
    }

    #[tokio::test]
    async fn a_slow_subscriber_gets_a_gap_then_the_newest_events() {
        let hub = EventHub::new(4);
        let mut slow = hub.subscribe(None);
        for n in 0..20 {
            hub.publish(agent(n));
        }
        assert_eq!(next(&mut slow).await, Delivery::Gap);
        let rest = [next(&mut slow).await, next(&mut slow).await];
        assert!(rest.iter().all(|d| agent_of(d).is_some_and(|a| a >= 16)));
    }

    #[tokio::test]
    async fn events_published_while_subscribing_arrive_exactly_once() {
        let hub = Arc::new(EventHub::new(100_000));
        let publisher = {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || {
                for n in 0..20_000 {
                    hub.publish(agent(n));
                }
            })
        };
        let mut subs = Vec::new();
        while subs.len() < 50 {
            // Resume from whatever was last published when we look: the subscription must
            // continue with exactly the next id.
            let last = hub.last_id();
            subs.push((last, hub.subscribe(last)));
            tokio::task::yield_now().await;
        }
        publisher.await.unwrap();
        let final_id = hub.last_id().unwrap();
        for (last, sub) in subs {
            let Some(last) = last else { continue };
            let ids: Vec<u64> = sub
                .into_stream()
                .take((final_id - last) as usize)
                .map(|d| match d {
                    Delivery::Event(e) => e.id,
                    Delivery::Gap => panic!("gap with a buffer big enough for everything"),
                })
                .collect()
                .await;
            let expected: Vec<u64> = (last + 1..=final_id).collect();
            assert_eq!(ids, expected);
        }
    }

    #[tokio::test]
    async fn a_dropped_hub_ends_the_subscription() {
        let hub = EventHub::new(4);
        let mut sub = hub.subscribe(None);
        drop(hub);
        assert_eq!(sub.next().await, None);
    }

    #[test]
    fn publishing_with_nobody_listening_keeps_only_the_buffer() {
        let hub = EventHub::starting_at(3, 1);
        for n in 0..10 {
            hub.publish(agent(n));
        }
        assert_eq!(hub.last_id(), Some(10));
        let kept: Vec<u64> = hub.recent().events.iter().map(|e| e.id).collect();
        assert_eq!(kept, vec![8, 9, 10]);
    }
}
