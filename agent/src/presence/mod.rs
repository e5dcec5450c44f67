//! The presence seam: whether this PC may be used for rendering right now.
//!
//! The agent asks for work only while its [`Presence`] says [`Availability::Available`], and
//! watches it while a renderer runs so it can stop the renderer the moment a person needs the
//! PC. Real detection (logind sessions or, without logind, utmp, input idle time, CPU use, schedules) plugs in here; the
//! agent itself only ever sees the watch channel.

pub mod cadence;
pub mod cpu;
pub mod logind;
pub mod monitor;
pub mod mutter;
pub mod policy;
pub mod schedule;
pub mod tty;
pub mod utmp;
pub mod x11;

use futures::future::BoxFuture;
use idlefarm_protocol::PresenceState;
use tokio::sync::watch;

/// Whether the PC may be used for rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Nobody needs the PC: render.
    Available,
    /// The PC is busy or off limits, for the reason given (e.g. `UserPresent`).
    Unavailable(PresenceState),
}

/// A source of [`Availability`].
pub trait Presence: Send + Sync + 'static {
    /// Current availability; the agent consults it before asking for work and watches it while
    /// rendering.
    fn watch(&self) -> watch::Receiver<Availability>;

    /// Availability from a reading no older than the source's fast-poll interval, taking a
    /// new reading first when the last one is older. The lease loop asks it just before it
    /// takes work, so a person who touched the PC since the last slow poll gets no renderer.
    /// Sources that are never stale keep this default: the current value.
    fn confirm(&self) -> BoxFuture<'_, Availability> {
        let now = *self.watch().borrow();
        Box::pin(std::future::ready(now))
    }
}

/// A dedicated render node: always available.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAvailable;

impl Presence for AlwaysAvailable {
    fn watch(&self) -> watch::Receiver<Availability> {
        // The sender goes away at once: a closed channel keeps its last value for ever.
        watch::channel(Availability::Available).1
    }
}

/// A presence source driven by hand through a [`watch::Sender`] (tests, and callers that
/// compute availability themselves).
#[derive(Debug, Clone)]
pub struct ManualPresence {
    sender: watch::Sender<Availability>,
}

impl ManualPresence {
    /// Starts at `initial`; change it with [`ManualPresence::set`].
    pub fn new(initial: Availability) -> Self {
        ManualPresence {
            sender: watch::Sender::new(initial),
        }
    }

    /// Changes the availability every watcher sees.
    pub fn set(&self, availability: Availability) {
        self.sender.send_replace(availability);
    }

    /// The sender behind this source.
    pub fn sender(&self) -> &watch::Sender<Availability> {
        &self.sender
    }
}

impl Presence for ManualPresence {
    fn watch(&self) -> watch::Receiver<Availability> {
        self.sender.subscribe()
    }
}
