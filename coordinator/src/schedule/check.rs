//! Frame checks: whether a received frame looks like what a broken PC produces, and what to
//! do when a second (or third) PC renders the same frame.
//!
//! A frame counts only once it looks right. It is held for a second opinion from another PC
//! when it is a single colour while most of its done neighbours are not, when its file is many
//! times larger or smaller than every neighbour's, when the renderer printed a known fatal
//! message although it exited successfully, or when it is in the `--verify` sample. The second
//! render settles it: if the two agree (PSNR at least [`AGREE_DB`]), the frame is accepted —
//! some shots really are black — and a PC whose render disagreed with the accepted one is
//! blamed. Two renders that disagree with neither clearly right ask for a third; after
//! [`MAX_OPINIONS`] renders the newest is kept and nobody is blamed.
//!
//! Pure: the caller measures images ([`Look`], PSNR) and passes the numbers in.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AgentId, LeaseId, Millis};

/// Two renders of one frame agree when their PSNR is at least this (decibels). A black or
/// wrongly lit frame against the real one scores 5–20 dB, a missing tile about 20 dB; the same
/// scene rendered by the same renderer on two PCs scores far above 40 (usually identical).
pub const AGREE_DB: f64 = 35.0;

/// At most this many renders of one frame are compared; then the newest is kept.
pub const MAX_OPINIONS: usize = 3;

/// A file size this many times larger or smaller than every neighbour's is suspicious.
pub const SIZE_FACTOR: u64 = 4;

/// How many done neighbours on each side a frame is compared with.
pub const NEIGHBOURS_PER_SIDE: usize = 2;

/// How long a held frame waits for another PC before the PC that rendered it may try again
/// (a one-PC farm, or a lab where every other PC is busy).
pub const WAIT_FOR_OTHERS_MS: Millis = 10 * 60 * 1000;

/// What the farm measured of a stored frame, to compare it with its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Look {
    /// The one colour of every pixel (8-bit RGB), when the whole frame is a single colour.
    pub flat: Option<[u8; 3]>,
    /// The stored file's size in bytes.
    pub bytes: u64,
}

/// Why a frame waits for another PC's render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suspicion {
    /// A single colour while most of its done neighbours are not.
    Flat {
        /// The colour.
        colour: [u8; 3],
        /// The neighbours that are not a single colour.
        neighbours: Vec<i64>,
    },
    /// Its file is more than [`SIZE_FACTOR`] times larger or smaller than every neighbour's.
    Size {
        /// Its size.
        bytes: u64,
        /// The neighbours and their sizes.
        neighbours: Vec<(i64, u64)>,
    },
    /// The renderer printed a known fatal message, although it exited successfully.
    RendererError {
        /// The line.
        line: String,
    },
    /// The frame is in the `--verify` sample: every such frame is rendered on two PCs.
    Sample,
}

impl Suspicion {
    /// Whether the frame itself looked wrong (not merely sampled).
    pub fn looked_wrong(&self) -> bool {
        !matches!(self, Suspicion::Sample)
    }
}

impl fmt::Display for Suspicion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Suspicion::Flat {
                colour: [r, g, b],
                neighbours,
            } => write!(
                f,
                "a single colour (rgb {r}, {g}, {b}) while frame(s) {} are not",
                join(neighbours.iter())
            ),
            Suspicion::Size { bytes, neighbours } => write!(
                f,
                "{bytes} bytes, more than {SIZE_FACTOR}× off from frame(s) {}",
                join(neighbours.iter().map(|(n, b)| format!("{n} ({b} bytes)")))
            ),
            Suspicion::RendererError { line } => {
                write!(f, "the renderer printed {line:?} but exited successfully")
            }
            Suspicion::Sample => f.write_str("in the --verify sample"),
        }
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether a newly received frame must wait for a second opinion: `neighbours` are the nearest
/// done frames on each side (frame number and look), `renderer_error` a fatal line the agent
/// saw in the renderer's output.
pub fn suspicion(
    look: &Look,
    neighbours: &[(i64, Look)],
    renderer_error: Option<&str>,
) -> Option<Suspicion> {
    if let Some(line) = renderer_error {
        return Some(Suspicion::RendererError {
            line: line.to_owned(),
        });
    }
    if let Some(colour) = look.flat {
        let varied: Vec<i64> = (neighbours.iter())
            .filter(|(_, n)| n.flat.is_none())
            .map(|&(frame, _)| frame)
            .collect();
        // Most, not some: at the edge of a fade to black half the neighbours are black too.
        if varied.len() * 2 > neighbours.len() {
            return Some(Suspicion::Flat {
                colour,
                neighbours: varied,
            });
        }
    }
    let far = |other: u64| {
        let (small, large) = (look.bytes.min(other).max(1), look.bytes.max(other));
        large > small.saturating_mul(SIZE_FACTOR)
    };
    if neighbours.len() >= 2 && neighbours.iter().all(|(_, n)| far(n.bytes)) {
        return Some(Suspicion::Size {
            bytes: look.bytes,
            neighbours: neighbours.iter().map(|&(f, n)| (f, n.bytes)).collect(),
        });
    }
    None
}

/// Whether frame `frame` of job `job` is in a `percent` sample (0–100), the same on every call.
pub fn sampled(job: i64, frame: i64, percent: f64) -> bool {
    if percent <= 0.0 {
        return false;
    }
    // SplitMix64 of the pair: evenly spread, and stable across restarts and versions.
    let mut z = (job as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(frame as u64)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 10_000) < (percent * 100.0).round() as u64
}

/// One PC's render of a frame under check, kept beside the frames until the check ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Who rendered it.
    pub agent: AgentId,
    /// The lease it came with.
    pub lease: LeaseId,
    /// Its file name in the job's frames folder.
    pub file: String,
    /// What it looked like.
    pub look: Look,
    /// Whether it looked wrong on its own (flat, size, renderer error).
    pub looked_wrong: bool,
}

/// A frame waiting for another PC's render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Why it is checked.
    pub reason: Suspicion,
    /// When the first render was held.
    pub since: Millis,
    /// The renders so far, oldest first, each from a different PC.
    pub candidates: Vec<Candidate>,
}

impl Check {
    /// Whether `agent` rendered one of the candidates.
    pub fn rendered_by(&self, agent: AgentId) -> bool {
        self.candidates.iter().any(|c| c.agent == agent)
    }

    /// Whether `agent` may render the frame again at `now`: not when it already did, unless the
    /// frame has waited [`WAIT_FOR_OTHERS_MS`] or no other PC is there to ask.
    pub fn open_to(&self, agent: AgentId, now: Millis, alone: bool) -> bool {
        alone || !self.rendered_by(agent) || now - self.since >= WAIT_FOR_OTHERS_MS
    }
}

/// A PC whose render of a frame disagreed with the one kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Blame {
    /// The PC.
    pub agent: AgentId,
    /// The lease its render came with.
    pub lease: LeaseId,
    /// What happened, for the job's failure list.
    pub message: String,
}

/// What to do with a render of a frame that is under check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep the new render; blame the PCs listed.
    AcceptNew {
        /// PCs whose renders disagreed with it.
        blame: Vec<Blame>,
        /// Why the check ended this way, for the frame's detail.
        note: String,
    },
    /// Keep an earlier render (index into [`Check::candidates`]); blame the PCs listed (the new
    /// render's PC among them).
    KeepCandidate {
        /// Which candidate.
        index: usize,
        /// PCs whose renders disagreed with it.
        blame: Vec<Blame>,
        /// Why, for the frame's detail.
        note: String,
    },
    /// Hold the new render as another candidate and ask one more PC.
    AskAnother,
}

/// The new render of a frame under `check`, from `agent` (lease `lease`): `looked_wrong` is
/// whether it looks wrong on its own, `psnr[i]` its PSNR against `check.candidates[i]`;
/// `name` names a PC for the notes and messages.
pub fn settle(
    frame: i64,
    check: &Check,
    (agent, lease): (AgentId, LeaseId),
    looked_wrong: bool,
    psnr: &[f64],
    name: &dyn Fn(AgentId) -> String,
) -> Verdict {
    let candidates = &check.candidates;
    let fmt_db = |db: f64| {
        if db.is_finite() {
            format!("{db:.1} dB")
        } else {
            "identical".to_owned()
        }
    };
    let blame_candidate = |c: &Candidate, db: Option<f64>, kept_by: AgentId| Blame {
        agent: c.agent,
        lease: c.lease,
        message: format!(
            "frame {frame} rendered here differed from the render kept ({}{}); it was held as {}",
            name(kept_by),
            db.map(|db| format!(", PSNR {}", fmt_db(db)))
                .unwrap_or_default(),
            check.reason
        ),
    };
    if check.rendered_by(agent) {
        return Verdict::AcceptNew {
            blame: Vec::new(),
            note: "rendered again on the same PC: no other PC was free to check it".into(),
        };
    }
    if let Some(best) = (0..candidates.len().min(psnr.len()))
        .filter(|&i| psnr[i] >= AGREE_DB)
        .max_by(|&a, &b| psnr[a].total_cmp(&psnr[b]))
    {
        let blame = (candidates.iter().zip(psnr))
            .filter(|&(_, &db)| db < AGREE_DB)
            .map(|(c, &db)| blame_candidate(c, Some(db), agent))
            .collect();
        return Verdict::AcceptNew {
            blame,
            note: format!(
                "confirmed by {} (PSNR {})",
                name(candidates[best].agent),
                fmt_db(psnr[best])
            ),
        };
    }
    // Nobody agrees. A render that looks right beats renders that look wrong.
    let right: Vec<usize> = (0..candidates.len())
        .filter(|&i| !candidates[i].looked_wrong)
        .collect();
    let db_of = |i: usize| psnr.get(i).copied();
    if !looked_wrong && right.is_empty() {
        let blame = (0..candidates.len())
            .map(|i| blame_candidate(&candidates[i], db_of(i), agent))
            .collect();
        return Verdict::AcceptNew {
            blame,
            note: format!("the render(s) before looked wrong: {}", check.reason),
        };
    }
    if looked_wrong && right.len() == 1 {
        let index = right[0];
        let kept = &candidates[index];
        let mut blame: Vec<Blame> = (0..candidates.len())
            .filter(|&i| i != index)
            .map(|i| blame_candidate(&candidates[i], None, kept.agent))
            .collect();
        blame.push(Blame {
            agent,
            lease,
            message: format!(
                "frame {frame} rendered here looked wrong and differed from {}'s render{}",
                name(kept.agent),
                db_of(index)
                    .map(|db| format!(" (PSNR {})", fmt_db(db)))
                    .unwrap_or_default()
            ),
        });
        return Verdict::KeepCandidate {
            index,
            blame,
            note: format!(
                "{}'s render kept; a later one looked wrong",
                name(kept.agent)
            ),
        };
    }
    if candidates.len() + 1 >= MAX_OPINIONS {
        return Verdict::AcceptNew {
            blame: Vec::new(),
            note: format!("{MAX_OPINIONS} PCs rendered it differently; the newest render kept"),
        };
    }
    Verdict::AskAnother
}

#[cfg(test)]
mod tests;
