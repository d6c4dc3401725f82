//! Durations in the configuration and on the command line: `90d`, `6h`,
//! `30m`, `45s`, `2w` or `1d12h`.

use time::Duration;

/// Parses durations such as `90d`, `6h`, `30m`, `45s`, `2w` or `1d12h`
/// ([`keyshare_policy::datetime::parse_duration`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    keyshare_policy::datetime::parse_duration(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
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
}
