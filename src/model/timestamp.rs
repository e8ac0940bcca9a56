//! [`Timestamp`]: an instant with nanosecond precision, in the RFC 3339 text form SpiceDB
//! uses for relationship expirations (`2026-12-01T00:00:00Z`).
//!
//! Ours rather than a date crate's: parsing and printing RFC 3339 in UTC takes the civil
//! date conversion below, and a small `Copy` pair of integers is all the store and the
//! engine need. The range is the one RFC 3339's four-digit years can write,
//! `0001-01-01T00:00:00Z` to `9999-12-31T23:59:59.999999999Z`.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::ModelError;

const SECONDS_PER_DAY: i64 = 86_400;
/// Unix seconds of `0001-01-01T00:00:00Z`.
const MIN_SECONDS: i64 = -62_135_596_800;
/// Unix seconds of `9999-12-31T23:59:59Z`.
const MAX_SECONDS: i64 = 253_402_300_799;

/// An instant: seconds and nanoseconds since the Unix epoch, in UTC. Ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    seconds: i64,
    /// INVARIANT: below 1,000,000,000.
    nanos: u32,
}

impl Timestamp {
    /// The instant `seconds` and `nanos` after the Unix epoch; an error outside the
    /// years 0001 to 9999 or with `nanos` of a second or more.
    pub fn from_unix(seconds: i64, nanos: u32) -> Result<Self, ModelError> {
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || nanos >= 1_000_000_000 {
            return Err(ModelError::Timestamp(format!("{seconds}s {nanos}ns")));
        }
        Ok(Self { seconds, nanos })
    }

    /// The current time of the system clock (clamped to the representable range).
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// `time` as a timestamp, clamped to the representable range.
    pub fn from_system_time(time: SystemTime) -> Self {
        let (seconds, nanos) = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => (
                i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                after.subsec_nanos(),
            ),
            Err(before) => {
                let before = before.duration();
                let seconds = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                match before.subsec_nanos() {
                    0 => (-seconds, 0),
                    nanos => (-seconds - 1, 1_000_000_000 - nanos),
                }
            }
        };
        if seconds < MIN_SECONDS {
            Self {
                seconds: MIN_SECONDS,
                nanos: 0,
            }
        } else if seconds > MAX_SECONDS {
            Self {
                seconds: MAX_SECONDS,
                nanos: 999_999_999,
            }
        } else {
            Self { seconds, nanos }
        }
    }

    /// Whole seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(self) -> i64 {
        self.seconds
    }

    /// The nanoseconds past [`Timestamp::unix_seconds`], below 1,000,000,000.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }
}

impl FromStr for Timestamp {
    type Err = ModelError;

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t` and `z` may be lowercase.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_rfc3339(input.as_bytes()).ok_or_else(|| ModelError::Timestamp(input.to_string()))
    }
}

impl fmt::Display for Timestamp {
    /// UTC with a `Z`, and a fraction only when there is one, without trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds.div_euclid(SECONDS_PER_DAY);
        let secs_of_day = self.seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        )?;
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// Reads exactly `n` ASCII digits at `at`.
fn digits(bytes: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = bytes.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn parse_rfc3339(bytes: &[u8]) -> Option<Timestamp> {
    let year = digits(bytes, 0, 4)?;
    let month = digits(bytes, 5, 2)?;
    let day = digits(bytes, 8, 2)?;
    let hour = digits(bytes, 11, 2)?;
    let minute = digits(bytes, 14, 2)?;
    let second = digits(bytes, 17, 2)?;
    let separators_ok = bytes.get(4) == Some(&b'-')
        && bytes.get(7) == Some(&b'-')
        && matches!(bytes.get(10), Some(b'T' | b't'))
        && bytes.get(13) == Some(&b':')
        && bytes.get(16) == Some(&b':');
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos: u32 = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let n_digits = at - start;
        if n_digits == 0 || n_digits > 9 {
            return None;
        }
        let value = u32::try_from(digits(bytes, start, n_digits)?).ok()?;
        // INVARIANT: n_digits <= 9, so the factor is at most 10^8 and the product < 10^9.
        nanos = value * 10u32.pow(9 - n_digits as u32);
    }
    let offset = match bytes.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if bytes.len() == at + 6 && bytes[at + 3] == b':' => {
            let hours = digits(bytes, at + 1, 2)?;
            let minutes = digits(bytes, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset;
    Timestamp::from_unix(seconds, nanos).ok()
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn known_instants() {
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_seconds(), 0);
        assert_eq!(ts("2026-12-01T00:00:00Z").unix_seconds(), 1_796_083_200);
        assert_eq!(ts("0001-01-01T00:00:00Z").unix_seconds(), MIN_SECONDS);
        assert_eq!(ts("9999-12-31T23:59:59Z").unix_seconds(), MAX_SECONDS);
        assert_eq!(ts("1969-12-31T23:59:59.5Z").unix_seconds(), -1);
        assert_eq!(ts("1969-12-31T23:59:59.5Z").subsec_nanos(), 500_000_000);
        assert_eq!(ts("2000-02-29T12:00:00+02:00"), ts("2000-02-29T10:00:00Z"));
        assert_eq!(ts("2000-03-01t00:30:00-01:00"), ts("2000-03-01T01:30:00z"));
    }

    #[test]
    fn printing_is_canonical_utc() {
        for (input, printed) in [
            ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
            ("2026-12-01T00:00:00.120Z", "2026-12-01T00:00:00.12Z"),
            (
                "2026-12-01T00:00:00.000000001Z",
                "2026-12-01T00:00:00.000000001Z",
            ),
            ("2026-12-01T01:00:00+01:00", "2026-12-01T00:00:00Z"),
            ("2323-01-02T13:14:15Z", "2323-01-02T13:14:15Z"),
            ("1900-02-28T23:59:59Z", "1900-02-28T23:59:59Z"),
        ] {
            assert_eq!(ts(input).to_string(), printed, "{input}");
        }
    }

    #[test]
    fn malformed_or_out_of_range_is_refused() {
        for input in [
            "",
            "2026-12-01",
            "2026-12-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:60:00Z",
            "2026-12-01T00:00:60Z",
            "2026-12-01T00:00:00.Z",
            "2026-12-01T00:00:00.1234567890Z",
            "2026-12-01T00:00:00+2400",
            "2026-12-01T00:00:00+24:00",
            "2026-12-01 00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "0000-12-31T23:59:59Z",
            "2026-12-01T00:00:00Zx",
            "+2026-12-01T00:00:00Z",
        ] {
            assert!(input.parse::<Timestamp>().is_err(), "{input}");
        }
        assert!(Timestamp::from_unix(MAX_SECONDS + 1, 0).is_err());
        assert!(Timestamp::from_unix(0, 1_000_000_000).is_err());
    }

    #[test]
    fn civil_conversion_roundtrips_over_the_whole_range() {
        let mut days = MIN_SECONDS / SECONDS_PER_DAY;
        while days <= MAX_SECONDS / SECONDS_PER_DAY {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            days += 97;
        }
    }
}
