//! The TUF `expires` timestamp: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds;
//! RFC 3339 times as the trust documents, the admin API, the store and
//! messages write them ([`rfc3339`], [`parse_rfc3339`]); and durations as
//! people write them in configuration and on command lines (`90d`,
//! `1d12h`, `90` seconds where a flag allows it: [`parse_duration`],
//! [`parse_duration_as`]).
//!
//! `expires` is parsed strictly (as python-tuf does), so a value
//! re-serialises to the exact string that was signed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
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

/// RFC 3339 text of a time (`2030-01-01T00:00:00Z` for a UTC time), for
/// documents, JSON answers and messages. A time RFC 3339 cannot express
/// (a year past 9999) is written in `time`'s own form instead of failing.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Parses an RFC 3339 time; the error says what is expected and shows at
/// most 64 characters of the input, not the parser's internals.
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        format!("`{shown}` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z")
    })
}

/// A time that travels as RFC 3339 text (the admin API's requests):
/// parsed with [`parse_rfc3339`], whose message is the refusal, and
/// written with [`rfc3339`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rfc3339Time(pub OffsetDateTime);

impl Rfc3339Time {
    /// The time.
    pub fn time(self) -> OffsetDateTime {
        self.0
    }
}

impl Serialize for Rfc3339Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for Rfc3339Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_rfc3339(&text)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// How a duration may be written: the units it may use and whether a bare
/// number counts as seconds. [`parse_duration`] takes
/// [`DurationSyntax::UNITS`]; command-line flags take the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSyntax {
    /// A number without a unit is seconds (`90`).
    pub bare_seconds: bool,
    /// The units allowed, from `s`, `m`, `h`, `d` and `w`.
    pub units: &'static str,
    /// What the error says is expected.
    pub expected: &'static str,
}

impl DurationSyntax {
    /// Configuration and flags such as `--valid-for`: `90d`, `6h`, `1d12h`;
    /// every number has a unit.
    pub const UNITS: Self = Self {
        bare_seconds: false,
        units: "smhdw",
        expected: "expected a duration like 6h, 1d or 90d (units s, m, h, d, w)",
    };
    /// Command-line flags that also take a number of seconds: `90`, `30m`,
    /// `90d`, `1d12h`.
    pub const SECONDS_OR_UNITS: Self = Self {
        bare_seconds: true,
        units: "smhdw",
        expected: "expected a duration: seconds, or with a unit (45s, 30m, 12h, 90d, 2w, 1d12h)",
    };
    /// Short lifetimes (a CI key's): seconds, or with a unit up to hours:
    /// `90`, `90s`, `5m`, `1h`, `1h30m`.
    pub const SECONDS_TO_HOURS: Self = Self {
        bare_seconds: true,
        units: "smh",
        expected: "expected a duration: seconds, or with a unit up to hours (90s, 5m, 1h, 1h30m)",
    };
}

/// Parses durations such as `90d`, `6h`, `30m`, `45s`, `2w` or `1d12h`
/// ([`DurationSyntax::UNITS`]).
pub fn parse_duration(text: &str) -> Result<time::Duration, String> {
    parse_duration_as(text, DurationSyntax::UNITS)
}

/// Parses a duration written as `syntax` allows: numbers each followed by
/// a unit (`s`, `m`, `h`, `d`, `w`), added up (`1d12h`), or one bare
/// number of seconds where allowed. Surrounding spaces are ignored. It
/// must be more than zero and no part over 100 years.
pub fn parse_duration_as(text: &str, syntax: DurationSyntax) -> Result<time::Duration, String> {
    let expected = || syntax.expected.to_owned();
    let mut total = time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let bare = syntax.bare_seconds && rest.bytes().all(|b| b.is_ascii_digit());
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let (number, tail) = rest.split_at(digits);
        let n: i64 = number.parse().map_err(|_| expected())?;
        let mut chars = tail.chars();
        let unit = if bare { Some('s') } else { chars.next() };
        let seconds_per = match unit.filter(|u| syntax.units.contains(*u)) {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 604_800,
            _ => return Err(expected()),
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
        return Err("expected a duration longer than zero".into());
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
    fn rfc3339_round_trips_and_bad_text_is_named_but_cut_short() {
        let t = parse_rfc3339("2030-01-02T03:04:05Z").unwrap();
        assert_eq!(rfc3339(t), "2030-01-02T03:04:05Z");
        let offset = parse_rfc3339("2030-01-02T04:04:05+01:00").unwrap();
        assert_eq!(offset, t);
        assert_eq!(
            parse_rfc3339("tomorrow"),
            Err("`tomorrow` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z".into())
        );
        let long = "x".repeat(10_000);
        let message = parse_rfc3339(&long).unwrap_err();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn durations() {
        use time::Duration;
        assert_eq!(parse_duration("1d").unwrap(), Duration::days(1));
        assert_eq!(parse_duration("6h").unwrap(), Duration::hours(6));
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("2w").unwrap(), Duration::weeks(2));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("45s").unwrap(), Duration::seconds(45));
        for bad in ["", "1", "d", "1x", "0d", "-1d", "1.5d", "99999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_durations_also_take_seconds_and_keep_their_units() {
        use time::Duration;
        let cli = DurationSyntax::SECONDS_OR_UNITS;
        let ttl = DurationSyntax::SECONDS_TO_HOURS;
        for syntax in [cli, ttl] {
            assert_eq!(parse_duration_as("90", syntax), Ok(Duration::seconds(90)));
            assert_eq!(parse_duration_as("5m", syntax), Ok(Duration::minutes(5)));
            assert_eq!(
                parse_duration_as("1h30m", syntax),
                Ok(Duration::minutes(90))
            );
            for bad in ["", "0", "m", "1x", "-1", "1.5h", "5y", "90 s"] {
                let e = parse_duration_as(bad, syntax).unwrap_err();
                assert!(e.starts_with("expected a duration"), "{bad}: {e}");
            }
        }
        assert_eq!(parse_duration_as("90d", cli), Ok(Duration::days(90)));
        assert_eq!(parse_duration_as("2w", cli), Ok(Duration::weeks(2)));
        assert_eq!(parse_duration_as("5d", ttl), Err(ttl.expected.to_owned()));
        assert_eq!(parse_duration_as("1w", ttl), Err(ttl.expected.to_owned()));
        assert_eq!(
            parse_duration_as("5y", cli),
            Err(
                "expected a duration: seconds, or with a unit (45s, 30m, 12h, 90d, 2w, 1d12h)"
                    .into()
            )
        );
        assert_eq!(
            parse_duration("0d"),
            Err("expected a duration longer than zero".into())
        );
        assert!(parse_duration_as("99999999999999", cli).is_err());
    }

    #[test]
    fn rfc3339_on_the_wire_refuses_with_the_parsers_message() {
        let t: Rfc3339Time = serde_json::from_str("\"2030-01-02T03:04:05Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2030-01-02T03:04:05Z\""
        );
        let e = serde_json::from_str::<Rfc3339Time>("\"soon\"").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("`soon` is not an RFC 3339 time: expected e.g. 2030-01-01T00:00:00Z"));
    }

    #[test]
    fn expiry_is_inclusive() {
        let e = Expires::parse("2030-01-02T03:04:05Z").unwrap();
        assert!(e.is_expired(e.time()));
        assert!(!e.is_expired(e.time() - time::Duration::seconds(1)));
    }
}
