//! How fast each PC renders one job: seconds per frame measured from each delivered frame,
//! updated as frames arrive (a moving average, so a PC that slows down is noticed within a few
//! frames), and a cautious guess for a PC that has not delivered one yet.

use std::collections::HashMap;

use super::AgentId;

/// Weight of the newest frame in the moving average.
const NEWEST: f64 = 0.3;

/// Seconds per frame by agent, for one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Speeds {
    by_agent: HashMap<AgentId, f64>,
}

impl Speeds {
    /// Records a frame `agent` rendered in `secs`.
    pub fn record(&mut self, agent: AgentId, secs: f64) {
        if !secs.is_finite() || secs < 0.0 {
            return;
        }
        self.by_agent
            .entry(agent)
            .and_modify(|s| *s += NEWEST * (secs - *s))
            .or_insert(secs);
    }

    /// `agent`'s seconds per frame, once it delivered a frame.
    pub fn of(&self, agent: AgentId) -> Option<f64> {
        self.by_agent.get(&agent).copied()
    }

    /// A guess for an agent not measured yet: the slowest agent measured so far, so its first
    /// chunk stays small; `None` before any frame.
    pub fn guess(&self) -> Option<f64> {
        self.by_agent.values().copied().reduce(f64::max)
    }

    /// Every measured agent with its seconds per frame.
    pub fn iter(&self) -> impl Iterator<Item = (AgentId, f64)> + '_ {
        self.by_agent.iter().map(|(&a, &s)| (a, s))
    }

    /// `agent`'s measured speed, else [`Speeds::guess`].
    pub fn of_or_guess(&self, agent: AgentId) -> Option<f64> {
        self.of(agent).or_else(|| self.guess())
    }
}
