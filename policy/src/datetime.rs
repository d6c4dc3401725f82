//! The TUF `expires` timestamp: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds;
//! and durations as people write them in configuration and on command
//! lines (`90d`, `1d12h`, [`parse_duration`]).
//!
//! `expires` is parsed strictly (as python-tuf does), so a value
//! re-serialises to the exact string that was signed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// A point in time in TUF's `expires` format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expires(OffsetDateTime);

impl Expires {
    /// Wraps a time, dropping sub-second precision (the format has none).
    pub fn new(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        Self(t.replace_nanosecond(0).unwrap_or(t))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn parse(s: &str) -> Result<Self, String> {
        PrimitiveDateTime::parse(s, FORMAT)
            .map(|p| Self(p.assume_utc()))
            .map_err(|e| format!("`{s}` is not a YYYY-MM-DDTHH:MM:SSZ time: {e}"))
    }

    /// The time as an `OffsetDateTime` (UTC).
    pub fn time(self) -> OffsetDateTime {
        self.0
    }

    /// True when `now` is at or past this time (TUF: expired when `now >= expires`).
    pub fn is_expired(self, now: OffsetDateTime) -> bool {
        now >= self.0
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(FORMAT) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.0.format(FORMAT).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses durations such as `90d`, `6h`, `30m`, `45s`, `2w` or `1d12h`.
pub fn parse_duration(text: &str) -> Result<time::Duration, String> {
    const EXPECTED: &str = "expected a duration like 6h, 1d or 90d (units s, m, h, d, w)";
    let mut total = time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(EXPECTED.into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(EXPECTED.into());
        }
        let (number, tail) = rest.split_at(digits);
        let n: i64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
        let mut chars = tail.chars();
        let seconds_per = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => return Err(EXPECTED.into()),
        };
        let part = n
            .checked_mul(seconds_per)
            .filter(|s| *s <= 100 * 365 * 86_400)
            .ok_or_else(|| "duration too long (at most 100 years)".to_owned())?;
        total = total
            .checked_add(time::Duration::seconds(part))
            .ok_or_else(|| "duration too long".to_owned())?;
        rest = chars.as_str();
    }
    if total <= time::Duration::ZERO {
        return Err("duration must be positive".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let e = Expires::parse("2030-01-02T03:04:05Z").unwrap();
        assert_eq!(e.to_string(), "2030-01-02T03:04:05Z");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            "\"2030-01-02T03:04:05Z\""
        );
    }

    #[test]
    fn refuses_fractions_and_offsets() {
        assert!(Expires::parse("2030-01-02T03:04:05.1Z").is_err());
        assert!(Expires::parse("2030-01-02T03:04:05+01:00").is_err());
        assert!(Expires::parse("2030-01-02").is_err());
    }

    #[test]
    fn expiry_is_inclusive() {
        let e = Expires::parse("2030-01-02T03:04:05Z").unwrap();
        assert!(e.is_expired(e.time()));
        assert!(!e.is_expired(e.time() - time::Duration::seconds(1)));
    }
}
