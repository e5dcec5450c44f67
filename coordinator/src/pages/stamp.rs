//! Times as pages show them: unix seconds as an ISO 8601 `datetime` for `<time>` elements (which
//! `ago.js` keeps reading "5 min ago") and as a plain UTC date and time for people.

/// One moment, in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `2026-11-22T10:00:00Z`.
    pub iso: String,
    /// `2026-11-22 10:00 UTC`.
    pub text: String,
}

impl Stamp {
    /// The moment `unix` seconds after 1970 began.
    pub fn at(unix: i64) -> Stamp {
        let (y, mo, d) = civil_date(unix.div_euclid(86_400));
        let secs = unix.rem_euclid(86_400);
        let (h, mi, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        Stamp {
            iso: format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
            text: format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC"),
        }
    }
}

/// (year, month, day) of a day counted from 1970-01-01: Howard Hinnant's days-to-civil.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_as_utc() {
        assert_eq!(Stamp::at(0).iso, "1970-01-01T00:00:00Z");
        assert_eq!(Stamp::at(951_782_400).text, "2000-02-29 00:00 UTC");
        let s = Stamp::at(1_700_000_007);
        assert_eq!(s.iso, "2023-11-14T22:13:27Z");
        assert_eq!(s.text, "2023-11-14 22:13 UTC");
    }
}
