//! What an operator types: durations (`7d`, `12h`, `90m`, `1d12h`) and instants (`2026-11-23` or RFC 3339).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// One or more `<number><unit>` with units w, d, h, m, s: `7d`, `12h`, `90m`, `1d12h`, `30s`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let wrong =
        || format!("{text:?} is not a duration like 7d, 12h, 90m or 1d12h (units w, d, h, m, s)");
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = UNITS
            .iter()
            .find(|(u, _)| *u == c.to_ascii_lowercase())
            .map(|(_, secs)| *secs)
            .ok_or_else(wrong)?;
        let number: u64 = digits.parse().map_err(|_| wrong())?;
        seconds = number
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        digits.clear();
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(wrong());
    }
    Ok(Duration::from_secs(seconds))
}

/// `YYYY-MM-DD` (the start of that day, UTC) or an RFC 3339 instant (`2026-11-23T17:05:00Z`, `...+01:00`).
pub fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            format!("{text:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-11-23T17:05:00Z)")
        })
}

/// `std` to protobuf; a duration beyond protobuf's range is capped (no filter needs 290 billion years).
pub fn to_proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: duration.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations_in_the_units_an_operator_uses() {
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(duration("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(
            duration("1d12h"),
            Ok(Duration::from_secs(86_400 + 12 * 3_600))
        );
        assert_eq!(duration("0d"), Ok(Duration::ZERO));
        assert_eq!(duration("7D"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn a_duration_without_a_unit_or_with_a_strange_one_is_refused_by_name() {
        for bad in ["", "7", "d", "7x", "-7d", "7.5d", "7 d", "1d2"] {
            let error = duration(bad).unwrap_err();
            assert!(
                error.contains("is not a duration like 7d"),
                "{bad}: {error}"
            );
        }
        assert!(
            duration("99999999999999999999w")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            duration("999999999999999w")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn a_day_is_its_start_in_utc_and_rfc_3339_keeps_its_offset() {
        assert_eq!(
            instant("2026-11-23"),
            Ok(Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap())
        );
        assert_eq!(
            instant("2026-11-23T17:05:00Z"),
            Ok(Utc.with_ymd_and_hms(2026, 11, 23, 17, 5, 0).unwrap())
        );
        assert_eq!(
            instant("2026-11-23T17:05:00+01:00"),
            Ok(Utc.with_ymd_and_hms(2026, 11, 23, 16, 5, 0).unwrap())
        );
        for bad in [
            "23.11.2026",
            "2026-13-01",
            "2026-11-23 17:05",
            "yesterday",
            "",
        ] {
            assert!(instant(bad).unwrap_err().contains("is not a date"), "{bad}");
        }
    }

    #[test]
    fn durations_become_protobuf_durations() {
        assert_eq!(
            to_proto_duration(Duration::from_millis(1_500)),
            prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(to_proto_duration(Duration::MAX).seconds, i64::MAX);
    }
}
