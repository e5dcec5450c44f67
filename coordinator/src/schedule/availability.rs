//! How long a PC is likely to stay free, from its presence history: labs run on timetables, so
//! what happened at this time of day on earlier days says whether a person usually sits down
//! within minutes (short chunks, little held up when they do) or the PC stays free all night
//! (long chunks, fewer requests and renderer starts).

use super::Millis;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// Longest free spell an estimate can report: a night.
pub const MAX_SPELL: Millis = 12 * HOUR;
/// Same time on this many earlier weeks is looked at first.
const WEEKS: i64 = 4;
/// Fewer same-weekday samples than this, and the earlier days of the last week count instead;
/// fewer than this of those, and there is no estimate.
const MIN_SAMPLES: usize = 2;
/// Which share of past spells the estimate must not exceed: a cautious quantile, because a
/// chunk too long for the spell holds frames up, while one too short only costs a request.
const QUANTILE: f64 = 0.25;

/// One change of a PC's availability: from `at`, it may render (`free`) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// When, in Unix milliseconds.
    pub at: Millis,
    /// Whether it may render from then on.
    pub free: bool,
}

/// How long the PC is likely to stay free from `now`, from `history` (oldest first): the
/// [`QUANTILE`] of the free spells that followed the same time of day on the same weekday of
/// earlier weeks (or, with too few of those, on each of the last seven days) on which it was
/// free at that time. `None` without such days to go on.
pub fn likely_free(history: &[Change], now: Millis) -> Option<Millis> {
    let first = history.first()?.at;
    let spell = |t: Millis| (t >= first).then(|| spell_at(history, t)).flatten();
    let weekly: Vec<Millis> = (1..=WEEKS)
        .filter_map(|w| spell(now - 7 * w * DAY))
        .collect();
    let mut samples = if weekly.len() >= MIN_SAMPLES {
        weekly
    } else {
        (1..=7).filter_map(|d| spell(now - d * DAY)).collect()
    };
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    samples.sort_unstable();
    let at = ((samples.len() - 1) as f64 * QUANTILE).round() as usize;
    Some(samples[at])
}

/// How long the PC stayed free from `t`, up to [`MAX_SPELL`]; `None` if it was not free.
fn spell_at(history: &[Change], t: Millis) -> Option<Millis> {
    let before = history.partition_point(|c| c.at <= t);
    if before == 0 || !history[before - 1].free {
        return None;
    }
    let end = (history[before..].iter())
        .find(|c| !c.free)
        .map_or(t + MAX_SPELL, |c| c.at);
    Some((end - t).min(MAX_SPELL))
}

/// How long a chunk should take, in seconds, on a PC likely free for `spell`: half of it (so a
/// person who comes back a little early still finds most of the chunk delivered), between a
/// quarter and fifteen times `default`, and at most a quarter of `job_left` (how long the job
/// would still take on every PC that works on it), so a short job is still spread over many
/// PCs. `default` without an estimate.
pub fn chunk_target(spell: Option<Millis>, job_left: Option<f64>, default: f64) -> f64 {
    let (shortest, longest) = (default / 4.0, default * 15.0);
    let wanted = match spell {
        Some(ms) => (ms as f64 / 1000.0 / 2.0).clamp(shortest, longest),
        None => default,
    };
    match job_left {
        Some(left) => wanted.min(left / 4.0).max(shortest),
        None => wanted,
    }
}
