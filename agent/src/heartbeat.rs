//! The heartbeat: tells the coordinator every few seconds that the agent is alive, what its PC
//! is doing and which leases it works on (which renews them), and abandons leases the
//! coordinator revokes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use idlefarm_protocol::{HeartbeatRequest, PresenceState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientError, trouble_reaching};
use crate::presence::Availability;
use crate::status::StatusHub;

/// Longest wait between heartbeats while the coordinator cannot be reached.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The lease being worked on, as the heartbeat sees it.
#[derive(Debug, Clone)]
pub struct ActiveLease {
    /// The lease's id.
    pub id: i64,
    /// Ends the lease's work (render, download, uploads).
    pub stop: CancellationToken,
    /// Marks that the coordinator revoked the lease: nothing is reported for it.
    pub revoked: CancellationToken,
    /// Whether the renderer is stopped for a person.
    pub suspended: watch::Receiver<bool>,
}

/// What the agent is doing, shared by the lease loop and the heartbeat: the leases being
/// worked on (more than one when chunks run in parallel).
#[derive(Debug, Default)]
pub struct Status {
    current: Mutex<Vec<ActiveLease>>,
}

impl Status {
    /// Records a lease being worked on.
    pub fn add(&self, lease: ActiveLease) {
        self.leases().push(lease);
    }

    /// Forgets lease `id` (its work is over).
    pub fn remove(&self, id: i64) {
        self.leases().retain(|l| l.id != id);
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Vec<ActiveLease>> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The presence to report and the leases being worked on.
    pub fn report(&self, availability: Availability) -> (PresenceState, Vec<i64>) {
        let leases = self.leases();
        let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
        if leases.is_empty() {
            return match availability {
                Availability::Available => (PresenceState::Idle, ids),
                Availability::Unavailable(state) => (state, ids),
            };
        }
        // Every renderer stops for a person at once; one stopped is enough to say so.
        if leases.iter().any(|l| *l.suspended.borrow()) {
            (PresenceState::Suspended, ids)
        } else {
            (PresenceState::Rendering, ids)
        }
    }

    /// Abandons lease `id` if it is worked on: its renderer is killed, nothing reported.
    pub fn revoke(&self, id: i64) {
        if let Some(lease) = self.leases().iter().find(|l| l.id == id) {
            tracing::warn!(
                lease = id,
                "the coordinator revoked the lease: abandoning it"
            );
            lease.revoked.cancel();
            lease.stop.cancel();
        }
    }
}

/// Sends heartbeats until `shutdown`; fails only when the coordinator rejects the agent. Tells
/// `hub` (for `idlefarm-agent status`) while the coordinator cannot be reached.
pub async fn run(
    client: Arc<Client>,
    status: Arc<Status>,
    presence: watch::Receiver<Availability>,
    interval: Duration,
    hub: StatusHub,
    shutdown: CancellationToken,
) -> Result<(), ClientError> {
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        let availability = *presence.borrow();
        let (presence_state, leases) = status.report(availability);
        let request = HeartbeatRequest {
            presence: presence_state,
            leases,
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            result = client.heartbeat(&request) => result,
        };
        match result {
            Ok(response) => {
                hub.set_coordinator_problem(None);
                delay = interval;
                for id in response.revoked {
                    status.revoke(id);
                }
            }
            Err(ClientError::Unauthorized) => return Err(ClientError::Unauthorized),
            Err(err) => {
                delay = (delay * 2).clamp(interval.min(MAX_BACKOFF), MAX_BACKOFF.max(interval));
                let problem = trouble_reaching(client.base(), &err, delay);
                tracing::warn!("heartbeat: {problem}");
                hub.set_coordinator_problem(Some(problem));
            }
        }
    }
}
