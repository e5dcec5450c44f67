//! Waking the lease requests that wait for work. On a campus, thousands of free PCs long-poll
//! at once; waking every one of them for a job of 120 frames would make thousands of requests
//! take the scheduler lock in turn only to find nothing left, while the PCs that did get frames
//! wait behind them. So queued frames wake a few waiting requests, and each woken request wakes
//! one more as soon as it has looked (whether it got a chunk or not), until as many wake-ups as
//! there were frames have gone round: a chain that ends when the frames could all be taken. A
//! request that could not take the queued frames (wrong renderer or tags, left to faster PCs)
//! passes its wake-up on without using one of those, but only once per waiting request each
//! time frames are queued, so the chain always ends. A change that may suit PCs which could not
//! take work before (a job resumed or raised, an agent's tags or mode) wakes every request.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Requests woken at once by newly queued frames; each passes the wake-up on.
const FAN_OUT: usize = 4;
/// The most wake-ups left to pass on at any time.
const MAX_RELAYS: usize = 100_000;

/// Where waiting lease requests wait for work.
#[derive(Debug, Default)]
pub(crate) struct WorkBell {
    notify: Notify,
    /// Wake-ups still to be passed on.
    relays: AtomicUsize,
    /// Wake-ups that requests which could not take the queued frames may still pass on.
    spare: AtomicUsize,
    /// Requests waiting now.
    waiters: AtomicUsize,
}

/// Counts a request as waiting while it lives.
pub(crate) struct Waiting<'a>(&'a WorkBell);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WorkBell {
    /// A future that completes when this request should look for work again; register it
    /// (`enable`) before looking, so no wake-up is missed.
    pub(crate) fn waiting(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Counts the caller as a waiting request until the guard is dropped.
    pub(crate) fn count_waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        Waiting(self)
    }

    /// `frames` frames were queued: wakes a few waiting requests and lets the chain of
    /// wake-ups run as long as there are frames.
    pub(crate) fn ring(&self, frames: usize) {
        if frames == 0 {
            return;
        }
        let first = frames.min(FAN_OUT);
        let more = frames - first;
        let _ = (self.relays).fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
            Some((r + more).min(MAX_RELAYS))
        });
        (self.spare).store(self.waiters.load(Ordering::Acquire), Ordering::Release);
        for _ in 0..first {
            self.notify.notify_one();
        }
    }

    /// Something changed that may let any waiting PC take work: wakes every waiting request.
    pub(crate) fn ring_all(&self) {
        self.notify.notify_waiters();
    }

    /// A woken request has looked for work: wakes the next one while wake-ups are left.
    /// `unfit`: it could not take the queued frames, so its wake-up did not count.
    pub(crate) fn pass_on(&self, unfit: bool) {
        let take = |left: &AtomicUsize| {
            left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .is_ok()
        };
        if (unfit && take(&self.spare)) || take(&self.relays) {
            self.notify.notify_one();
        }
    }

    /// Wake-ups still to be passed on.
    #[cfg(test)]
    fn relays(&self) -> usize {
        self.relays.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Starts `n` waiting requests; each counts its wake-up in `woken` and, when `relay`, passes
    /// it on once.
    async fn waiters(
        bell: &Arc<WorkBell>,
        n: usize,
        relay: bool,
    ) -> (Arc<AtomicUsize>, Vec<tokio::task::JoinHandle<()>>) {
        let woken = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (bell, woken) = (bell.clone(), woken.clone());
            let (ready, registered) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(async move {
                let _counted = bell.count_waiting();
                let wait = bell.waiting();
                tokio::pin!(wait);
                wait.as_mut().enable();
                ready.send(()).unwrap();
                wait.await;
                woken.fetch_add(1, Ordering::SeqCst);
                if relay {
                    bell.pass_on(false);
                }
            }));
            registered.await.unwrap();
        }
        (woken, tasks)
    }

    /// Lets woken tasks run until the count stops changing.
    async fn settle(woken: &AtomicUsize) -> usize {
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = woken.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    #[tokio::test]
    async fn queued_frames_wake_as_many_requests_as_there_are_frames_not_all() {
        let bell = Arc::new(WorkBell::default());
        let (woken, _tasks) = waiters(&bell, 50, true).await;
        bell.ring(10);
        assert_eq!(settle(&woken).await, 10);
        assert_eq!(bell.relays(), 0);
    }

    #[tokio::test]
    async fn without_passing_on_only_the_first_few_wake() {
        let bell = Arc::new(WorkBell::default());
        let (woken, _tasks) = waiters(&bell, 20, false).await;
        bell.ring(10);
        assert_eq!(settle(&woken).await, FAN_OUT);
        assert_eq!(bell.relays(), 10 - FAN_OUT);
    }

    #[tokio::test]
    async fn a_change_for_everyone_wakes_every_request_and_nothing_queued_wakes_none() {
        let bell = Arc::new(WorkBell::default());
        let (woken, _tasks) = waiters(&bell, 30, false).await;
        bell.ring(0);
        assert_eq!(settle(&woken).await, 0);
        bell.ring_all();
        assert_eq!(settle(&woken).await, 30);
    }

    #[tokio::test]
    async fn requests_that_cannot_take_the_frames_pass_them_on_once_each() {
        let bell = Arc::new(WorkBell::default());
        let woken = Arc::new(AtomicUsize::new(0));
        // Ten waiting requests that can never take the frame: each passes its wake-up on as
        // unfit and waits again, as a lease request does.
        for _ in 0..10 {
            let (bell, woken) = (bell.clone(), woken.clone());
            tokio::spawn(async move {
                loop {
                    let _counted = bell.count_waiting();
                    let wait = bell.waiting();
                    tokio::pin!(wait);
                    wait.as_mut().enable();
                    wait.await;
                    woken.fetch_add(1, Ordering::SeqCst);
                    bell.pass_on(true);
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        bell.ring(1);
        // The one wake-up goes round each waiting request about once, then the chain ends.
        let total = settle(&woken).await;
        assert!((10..=11).contains(&total), "{total} wake-ups");
    }
}
