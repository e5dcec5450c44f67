//! The agent's own metrics in the Prometheus text format: leases by how they ended, frames
//! uploaded, renders stopped for a person and yielded, presence transitions, and the yield
//! latency (from the presence reading that found the PC in use to the renderer's SIGSTOP).
//! The status hub owns them and answers a [`METRICS_REQUEST`] on the status socket with them;
//! `idlefarm-agent status --metrics` prints them. The agent opens no port for them: the socket
//! is local, and the exposition can be fed to node_exporter's textfile collector.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use idlefarm_protocol::{LeaseOutcome, PresenceState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::status::{StatusEvent, read_line};

/// The line a client writes on the status socket to get the metrics.
pub const METRICS_REQUEST: &str = "metrics";

/// A label with one bounded value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Label {
    state: &'static str,
}

/// How a lease ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Every metric of one agent.
pub struct AgentMetrics {
    registry: Registry,
    leases: Family<Outcome, Counter>,
    frames: Counter,
    suspensions: Counter,
    yields: Counter,
    transitions: Family<Label, Counter>,
    yield_latency: Histogram,
    /// When a reading last found the PC newly in use, until a stopped renderer consumes it.
    unavailable_since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics::new()
    }
}

impl AgentMetrics {
    /// Every metric at zero.
    pub fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("idlefarm_agent");
        let leases: Family<Outcome, Counter> = Family::default();
        let frames = Counter::default();
        let suspensions = Counter::default();
        let yields = Counter::default();
        let transitions: Family<Label, Counter> = Family::default();
        // 100 µs to about 3 s.
        let yield_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        registry.register(
            "leases",
            "Leases by how they ended: complete, yield, failed or declined",
            leases.clone(),
        );
        registry.register("frames", "Frames rendered and uploaded", frames.clone());
        registry.register(
            "suspensions",
            "Renders stopped (SIGSTOP) because a person needed the PC",
            suspensions.clone(),
        );
        registry.register(
            "yields",
            "Renders ended and given back because the person stayed",
            yields.clone(),
        );
        registry.register(
            "presence_transitions",
            "Changes of the presence verdict, by the state entered",
            transitions.clone(),
        );
        registry.register(
            "yield_latency_seconds",
            "From the presence reading that found the PC in use to the renderer's SIGSTOP",
            yield_latency.clone(),
        );
        for outcome in ["complete", "yield", "failed", "declined"] {
            let _ = leases.get_or_create(&Outcome { outcome });
        }
        AgentMetrics {
            registry,
            leases,
            frames,
            suspensions,
            yields,
            transitions,
            yield_latency,
            unavailable_since: Mutex::new(None),
        }
    }

    /// A lease ended with `outcome`.
    pub fn lease_ended(&self, outcome: LeaseOutcome) {
        let outcome = match outcome {
            LeaseOutcome::Complete => "complete",
            LeaseOutcome::Yield => "yield",
            LeaseOutcome::Failed => "failed",
            LeaseOutcome::Declined => "declined",
        };
        self.leases.get_or_create(&Outcome { outcome }).inc();
    }

    /// A frame was uploaded.
    pub fn frame_uploaded(&self) {
        self.frames.inc();
    }

    /// The presence verdict changed to `state` (from a reading taken at `read_at`); call it
    /// before the new verdict is published, so a renderer stopped for it finds the reading.
    pub fn presence_changed(&self, state: PresenceState, read_at: Instant) {
        self.transitions
            .get_or_create(&Label {
                state: state.as_str(),
            })
            .inc();
        let mut since = self.since();
        *since = match state {
            PresenceState::Idle | PresenceState::Rendering => None,
            _ => Some(read_at),
        };
    }

    /// A renderer was stopped for a person at `at`: counts it, and its latency when a reading
    /// of the PC in use is waiting for it.
    pub fn renderer_stopped(&self, at: Instant) {
        self.suspensions.inc();
        if let Some(read_at) = self.since().take() {
            self.yield_latency
                .observe(at.saturating_duration_since(read_at).as_secs_f64());
        }
    }

    /// A render was ended and given back because the person stayed.
    pub fn yielded(&self) {
        self.yields.inc();
    }

    /// The exposition (OpenMetrics text, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // One value, replaced whole: a panicked holder cannot leave it half-written.
        self.unavailable_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Asks the agent serving the status socket at `path` for its metrics (for
/// `idlefarm-agent status --metrics`).
pub async fn read_metrics(path: &Path) -> io::Result<String> {
    let read = async {
        let stream = UnixStream::connect(path).await?;
        let (reader, mut writer) = stream.into_split();
        writer
            .write_all(format!("{METRICS_REQUEST}\n").as_bytes())
            .await?;
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        // The snapshot and replayed events come first; an agent too old to know the request
        // never answers, and the timeout says so.
        while read_line(&mut reader, &mut line).await?.is_some() {
            if let Ok(StatusEvent::Metrics { text }) = serde_json::from_slice(&line) {
                return Ok(text);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the agent closed the status socket without its metrics",
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the agent at {} did not send its metrics (is it older than this command?)",
                    path.display()
                ),
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_measures_from_the_reading_that_found_the_pc_in_use() {
        let m = AgentMetrics::new();
        let read = Instant::now();
        m.presence_changed(PresenceState::UserPresent, read);
        m.renderer_stopped(read + Duration::from_millis(3));
        // A second stop (after a resume) without a new reading measures nothing.
        m.renderer_stopped(read + Duration::from_secs(9));
        assert_eq!(m.suspensions.get(), 2);
        let text = m.render();
        assert!(
            text.contains("idlefarm_agent_yield_latency_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("idlefarm_agent_yield_latency_seconds_sum 0.003"),
            "{text}"
        );
        assert!(
            text.contains("idlefarm_agent_presence_transitions_total{state=\"user-present\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn a_return_to_idle_forgets_the_reading() {
        let m = AgentMetrics::new();
        let read = Instant::now();
        m.presence_changed(PresenceState::UserPresent, read);
        m.presence_changed(PresenceState::Idle, read);
        m.renderer_stopped(read);
        assert!(
            m.render()
                .contains("idlefarm_agent_yield_latency_seconds_count 0")
        );
        m.lease_ended(LeaseOutcome::Yield);
        m.yielded();
        m.frame_uploaded();
        let text = m.render();
        for line in [
            "idlefarm_agent_leases_total{outcome=\"yield\"} 1",
            "idlefarm_agent_leases_total{outcome=\"complete\"} 0",
            "idlefarm_agent_yields_total 1",
            "idlefarm_agent_frames_total 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[tokio::test]
    async fn the_status_socket_answers_a_metrics_request_to_that_client_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.sock");
        let hub = crate::status::StatusHub::new();
        let server = hub.serve(&path).unwrap();
        hub.frame_rendered(4);
        hub.publish(StatusEvent::Yielded);
        let text = read_metrics(&path).await.unwrap();
        assert!(text.contains("idlefarm_agent_frames_total 1"), "{text}");
        assert!(text.contains("idlefarm_agent_yields_total 1"), "{text}");

        // Anything else a client says is ignored; an endless line closes the connection.
        let stream = UnixStream::connect(&path).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        read_line(&mut reader, &mut line).await.unwrap().unwrap();
        writer.write_all(b"metrix\nstatus please\n").await.unwrap();
        hub.publish(StatusEvent::Resumed);
        read_line(&mut reader, &mut line).await.unwrap().unwrap();
        let event: StatusEvent = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            event,
            StatusEvent::Resumed,
            "no metrics for a wrong request"
        );
        writer.write_all(&[b'x'; 4096]).await.unwrap();
        // Closed: the end of the stream, or a reset for the bytes it never read.
        let after = read_line(&mut reader, &mut line).await;
        assert!(!matches!(after, Ok(Some(()))), "still open: {after:?}");
        server.abort();
    }
}
