//! Weekly schedules: when an agent may render at all, e.g. `Mon-Fri 19:00-07:00; Sat-Sun`.
//!
//! A schedule is a list of entries separated by `;`. Each entry is a day or day range
//! (`Mon`, `Mon-Fri`, `Sat-Sun`, `daily`) and an optional time window `HH:MM-HH:MM` in local
//! time; without a window the whole day counts. A window that ends earlier than it starts runs
//! past midnight into the next day (`Mon-Fri 19:00-07:00` includes Saturday 06:59).

use std::fmt;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u32 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;

/// A weekly schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Allowed spans as minutes since Monday 00:00, half-open, possibly wrapping past the week.
    spans: Vec<(u32, u32)>,
    text: String,
}

/// A moment of the week in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekTime {
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
    /// 0..24.
    pub hour: u32,
    /// 0..60.
    pub minute: u32,
}

impl WeekTime {
    /// The current local time.
    pub fn now() -> WeekTime {
        // SAFETY: time(NULL) and localtime_r with valid pointers have no other preconditions.
        unsafe {
            let t = libc::time(std::ptr::null_mut());
            let mut tm: libc::tm = std::mem::zeroed();
            libc::localtime_r(&t, &mut tm);
            WeekTime {
                weekday: ((tm.tm_wday + 6) % 7) as u32,
                hour: tm.tm_hour as u32,
                minute: tm.tm_min as u32,
            }
        }
    }

    fn minute_of_week(self) -> u32 {
        self.weekday * MINUTES_PER_DAY + self.hour * 60 + self.minute
    }
}

fn parse_day(s: &str) -> Option<u32> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| lower.starts_with(d) && d.len() >= 3)
        .map(|p| p as u32)
}

fn parse_clock(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= MINUTES_PER_DAY).then_some(h * 60 + m)
}

impl Schedule {
    /// Parses a schedule; the error says which part is wrong and what is expected.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut spans = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let mut words = entry.split_whitespace();
            let days = words.next().unwrap_or_default();
            let window = words.next();
            if words.next().is_some() {
                return Err(format!("`{entry}`: expected `DAYS [HH:MM-HH:MM]`"));
            }
            let (first, last) = if days.eq_ignore_ascii_case("daily") || days == "*" {
                (0, 6)
            } else if let Some((a, b)) = days.split_once('-') {
                match (parse_day(a), parse_day(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(format!("`{days}` is not a day range like Mon-Fri")),
                }
            } else {
                match parse_day(days) {
                    Some(d) => (d, d),
                    None => return Err(format!("`{days}` is not a day (Mon, Tue, …, Sun, daily)")),
                }
            };
            let (start, end) = match window {
                None => (0, MINUTES_PER_DAY),
                Some(w) => {
                    let parsed = w
                        .split_once('-')
                        .and_then(|(a, b)| Some((parse_clock(a)?, parse_clock(b)?)));
                    match parsed {
                        Some((a, b)) if a != b => (a, if b < a { b + MINUTES_PER_DAY } else { b }),
                        _ => return Err(format!("`{w}` is not a time window like 19:00-07:00")),
                    }
                }
            };
            let mut day = first;
            loop {
                spans.push((day * MINUTES_PER_DAY + start, day * MINUTES_PER_DAY + end));
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        if spans.is_empty() {
            return Err("the schedule is empty; e.g. `Mon-Fri 19:00-07:00; Sat-Sun`".into());
        }
        Ok(Schedule {
            spans,
            text: text.trim().to_owned(),
        })
    }

    /// Whether `t` falls inside the schedule.
    pub fn allows(&self, t: WeekTime) -> bool {
        let m = t.minute_of_week();
        self.spans
            .iter()
            .any(|&(a, b)| (a <= m && m < b) || (b > MINUTES_PER_WEEK && m < b - MINUTES_PER_WEEK))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u32, hour: u32, minute: u32) -> WeekTime {
        WeekTime {
            weekday,
            hour,
            minute,
        }
    }

    #[test]
    fn nights_and_weekends() {
        let s = Schedule::parse("Mon-Fri 19:00-07:00; Sat-Sun").unwrap();
        assert!(!s.allows(at(0, 12, 0)), "Monday noon");
        assert!(s.allows(at(0, 19, 0)), "Monday evening");
        assert!(s.allows(at(1, 6, 59)), "Tuesday early morning");
        assert!(!s.allows(at(1, 7, 0)));
        assert!(
            s.allows(at(5, 6, 30)),
            "Saturday morning, from Friday night"
        );
        assert!(s.allows(at(5, 13, 0)) && s.allows(at(6, 23, 59)));
        assert!(
            !s.allows(at(0, 0, 30)),
            "Sunday's whole day ends at midnight"
        );
    }

    #[test]
    fn a_window_wrapping_past_sunday_reaches_monday() {
        let s = Schedule::parse("Sun 22:00-02:00").unwrap();
        assert!(s.allows(at(6, 23, 0)));
        assert!(s.allows(at(0, 1, 0)));
        assert!(!s.allows(at(0, 2, 0)));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert!(Schedule::parse("").unwrap_err().contains("empty"));
        assert!(Schedule::parse("Funday").unwrap_err().contains("Funday"));
        assert!(
            Schedule::parse("Mon 25:00-07:00")
                .unwrap_err()
                .contains("25:00")
        );
        assert!(Schedule::parse("Mon 19:00").unwrap_err().contains("19:00"));
        assert!(Schedule::parse("Mon-Xyz").unwrap_err().contains("Mon-Xyz"));
        assert!(Schedule::parse("Mon 1:00-2:00 extra").is_err());
        assert!(
            Schedule::parse("daily 00:00-24:00")
                .unwrap()
                .allows(at(3, 12, 0))
        );
    }
}
