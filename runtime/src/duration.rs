//! Durations as people type them on the command line and in config files: `500ms`, `2s`, `5m`,
//! `1h`, `7d`. A number without a unit is refused (only `0` needs none): `--idle-after 5` could
//! mean seconds or minutes, and guessing wrong renders on a PC 5 seconds after its person
//! stopped typing.

use std::time::Duration;

/// Why a text is not a duration; the message names the text and shows what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The number is followed by something that is not a unit.
    #[error("unknown unit `{unit}` in `{text}`: use ms, s, m, h or d (e.g. 500ms, 2s, 5m, 1h, 7d)")]
    UnknownUnit {
        /// What followed the number.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// There is no number (or a malformed one) before the unit.
    #[error("`{0}` is not a duration: use e.g. 500ms, 2s, 5m, 1h or 7d")]
    NotANumber(String),
    /// A number other than 0 without a unit.
    #[error("`{0}` has no unit: write e.g. {0}s or {0}m (units: ms, s, m, h, d)")]
    NoUnit(String),
    /// The number is too large for a duration.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// Parses `500ms`, `2s`, `5m`, `1h`, `7d` (fractions allowed: `1.5s`) or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            });
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_owned()))?;
    if unit.is_empty() && value != 0.0 {
        return Err(DurationError::NoUnit(text.to_owned()));
    }
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| DurationError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0.5d"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.0"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_number_without_a_unit_is_refused_with_the_units_to_choose() {
        for bare in ["5", "60", "1.5"] {
            let err = parse_duration(bare).unwrap_err();
            assert_eq!(err, DurationError::NoUnit(bare.to_owned()));
            let message = err.to_string();
            assert!(
                message.contains(&format!("`{bare}` has no unit"))
                    && message.contains(&format!("{bare}s or {bare}m")),
                "{message}"
            );
        }
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "s",
            "d",
            "5x",
            "-5s",
            "5 minutes",
            "1e3",
            "1.2.3s",
            "2w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_text_and_the_units() {
        let err = parse_duration("2w").unwrap_err().to_string();
        assert!(
            err.contains("`w`") && err.contains("`2w`") && err.contains("7d"),
            "{err}"
        );
        let err = parse_duration("soon").unwrap_err();
        assert!(matches!(err, DurationError::UnknownUnit { .. }), "{err:?}");
        let err = parse_duration("1e400").unwrap_err();
        assert!(matches!(err, DurationError::UnknownUnit { .. }), "{err:?}");
        let huge = format!("{}d", "9".repeat(30));
        assert_eq!(
            parse_duration(&huge),
            Err(DurationError::OutOfRange(huge.clone()))
        );
        assert_eq!(
            parse_duration(".s"),
            Err(DurationError::NotANumber(".s".to_owned()))
        );
    }
}
