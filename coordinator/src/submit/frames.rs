//! The `frames` form field: which frames of a scene a job renders (`1-250`, `1-250:2`, `17`).

use std::fmt;

/// Blender's largest frame number (`MAXFRAME`); POV-Ray frames are kept to the same bounds.
pub const MAX_FRAME_NUMBER: i64 = 1_048_574;

/// Why a job's frames must not be negative, for messages: agents pass frame numbers on the
/// renderers' command lines, where Blender reads `-s -5` as "5 before the end", and frame file
/// names (`frame_00007.png`) have no sign.
pub const NEGATIVE_FRAMES: &str =
    "negative frame numbers cannot be rendered; idlefarm renders frames 0 and up";

/// The accepted forms, for error messages.
const FORMS: &str = "use START-END, START-END:STEP or a single frame, e.g. 1-250, 1-250:2 or 17";

/// A frame range as the submitter wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRange {
    /// First frame (inclusive).
    pub start: i64,
    /// Last frame (inclusive).
    pub end: i64,
    /// The step after `:`, when given.
    pub step: Option<i64>,
}

impl FrameRange {
    /// Parses `A-B`, `A-B:STEP` or `A`, tolerating whitespace. Negative frames are recognised
    /// (`-10--1`) to be refused with [`NEGATIVE_FRAMES`]. The error says what is wrong and
    /// which forms are accepted.
    pub fn parse(text: &str) -> Result<FrameRange, String> {
        let malformed = || format!("frames \"{}\" is not a frame range; {FORMS}", text.trim());
        let trimmed = text.trim();
        let (range, step) = match trimmed.split_once(':') {
            Some((range, step)) => (range.trim(), Some(step.trim())),
            None => (trimmed, None),
        };
        let number = |s: &str| s.trim().parse::<i64>().ok();

        let (start, end) = if let Some(frame) = number(range) {
            if step.is_some() {
                return Err(malformed());
            }
            (frame, frame)
        } else {
            // The separator is the first '-' that is not the sign of the first number.
            let from = usize::from(range.starts_with('-'));
            let at = range[from..].find('-').ok_or_else(malformed)? + from;
            let start = number(&range[..at]).ok_or_else(malformed)?;
            let end = number(&range[at + 1..]).ok_or_else(malformed)?;
            (start, end)
        };
        let step = match step {
            None => None,
            Some(step) => {
                let step = number(step).ok_or_else(malformed)?;
                if step < 1 {
                    return Err(format!("the frame step must be at least 1, not {step}"));
                }
                Some(step)
            }
        };
        for frame in [start, end] {
            if frame.unsigned_abs() > MAX_FRAME_NUMBER.unsigned_abs() {
                return Err(format!(
                    "frame {frame} is out of bounds; frames go from -{MAX_FRAME_NUMBER} to {MAX_FRAME_NUMBER}"
                ));
            }
        }
        if start < 0 || end < 0 {
            return Err(format!("frames \"{trimmed}\": {NEGATIVE_FRAMES}"));
        }
        if end < start {
            return Err(format!("frame range {start}-{end} ends before it starts"));
        }
        Ok(FrameRange { start, end, step })
    }

    /// Whether every frame of the range lies within `first..=last`.
    pub fn within(&self, first: i64, last: i64) -> bool {
        first <= self.start && self.end <= last
    }
}

impl fmt::Display for FrameRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)?;
        if let Some(step) = self.step {
            write!(f, ":{step}")?;
        }
        Ok(())
    }
}

/// How many frames `start..=end` with `step` holds, or `None` when the count does not fit an
/// `i64` (only possible for numbers outside [`MAX_FRAME_NUMBER`], which nothing should accept).
pub fn frame_count(start: i64, end: i64, step: i64) -> Option<i64> {
    if end < start {
        return Some(0);
    }
    end.checked_sub(start)?
        .checked_div(step.max(1))?
        .checked_add(1)
}

/// Most frames one list may name (re-rendering chosen frames).
pub const MAX_LISTED_FRAMES: usize = 100_000;

/// Parses a list of frames and ranges, `7,12-15`, into frame numbers in order without
/// duplicates. Every item is a single frame or a `START-END` range (no step).
pub fn parse_frame_list(text: &str) -> Result<Vec<i64>, String> {
    let mut out: Vec<i64> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "frames \"{text}\" has an empty item; write e.g. 7,12-15"
            ));
        }
        let range = FrameRange::parse(item)
            .map_err(|e| format!("{e} (in the list \"{}\")", text.trim()))?;
        if range.step.is_some() {
            return Err(format!(
                "\"{item}\": a frame list takes frames and ranges without a step, e.g. 7,12-15"
            ));
        }
        if range.end < range.start {
            return Err(format!("\"{item}\": the range ends before it starts"));
        }
        if out.len() as i64 + (range.end - range.start + 1) > MAX_LISTED_FRAMES as i64 {
            return Err(format!(
                "a frame list names at most {MAX_LISTED_FRAMES} frames"
            ));
        }
        out.extend(range.start..=range.end);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(*f));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, step: Option<i64>) -> FrameRange {
        FrameRange { start, end, step }
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(FrameRange::parse("1-250"), Ok(range(1, 250, None)));
        assert_eq!(FrameRange::parse("1-250:2"), Ok(range(1, 250, Some(2))));
        assert_eq!(FrameRange::parse("17"), Ok(range(17, 17, None)));
    }

    #[test]
    fn tolerates_whitespace() {
        assert_eq!(
            FrameRange::parse("  1 - 250 : 3 "),
            Ok(range(1, 250, Some(3)))
        );
        assert_eq!(FrameRange::parse("\t42\n"), Ok(range(42, 42, None)));
    }

    #[test]
    fn refuses_negative_frames_saying_why() {
        for text in ["-10--1", "-5-5", "-3", " -5 "] {
            let err = FrameRange::parse(text).unwrap_err();
            assert!(err.ends_with(NEGATIVE_FRAMES), "{text:?}: {err}");
        }
        assert_eq!(FrameRange::parse("0-3"), Ok(range(0, 3, None)));
        assert!(parse_frame_list("1,-2").is_err());
    }

    #[test]
    fn rejects_malformed_text_with_the_accepted_forms() {
        for text in [
            "", "abc", "1-", "-", "1-2-3", "1..5", "1-5:", "1-5:x", "7:2", "1,2,3", "1.5-3",
        ] {
            let err = FrameRange::parse(text).unwrap_err();
            assert!(err.contains("START-END:STEP"), "{text:?}: {err}");
        }
    }

    #[test]
    fn rejects_backwards_ranges_and_bad_steps() {
        assert!(
            FrameRange::parse("10-1")
                .unwrap_err()
                .contains("ends before it starts")
        );
        assert!(
            FrameRange::parse("1-10:0")
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            FrameRange::parse("1-10:-2")
                .unwrap_err()
                .contains("at least 1")
        );
        for text in [
            "1-99999999",
            "-9223372036854775808",
            "-9223372036854775808-0",
        ] {
            assert!(
                FrameRange::parse(text)
                    .unwrap_err()
                    .contains("out of bounds"),
                "{text}"
            );
        }
    }

    #[test]
    fn checks_containment_and_counts_frames() {
        let r = range(1, 400, None);
        assert!(!r.within(1, 250));
        assert!(range(10, 20, None).within(1, 250));
        assert_eq!(r.to_string(), "1-400");
        assert_eq!(range(1, 9, Some(2)).to_string(), "1-9:2");
        assert_eq!(frame_count(1, 10, 3), Some(4));
        assert_eq!(frame_count(5, 5, 1), Some(1));
        assert_eq!(frame_count(9, 5, 1), Some(0));
        assert_eq!(frame_count(i64::MIN, 0, 1), None);
        assert_eq!(frame_count(i64::MIN, i64::MAX, 2), None);
        assert_eq!(frame_count(0, i64::MAX, 1), None);
    }

    #[test]
    fn frame_lists_take_frames_and_ranges() {
        assert_eq!(parse_frame_list("7,12-15"), Ok(vec![7, 12, 13, 14, 15]));
        assert_eq!(parse_frame_list(" 3 , 3,1-2"), Ok(vec![3, 1, 2]));
        assert!(parse_frame_list("").is_err());
        assert!(parse_frame_list("1,,2").is_err());
        assert!(parse_frame_list("1-10:2").is_err());
        assert!(parse_frame_list("five").is_err());
        assert!(parse_frame_list("9-3").is_err());
        assert!(parse_frame_list("1-1000000").is_err());
    }
}
