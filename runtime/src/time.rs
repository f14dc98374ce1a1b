//! Conversions between protobuf timestamps and `chrono`.

use backorder_proto::Timestamp;
use chrono::{DateTime, TimeZone, Utc};

pub fn to_proto(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// `None` for a timestamp outside chrono's range or with invalid nanos.
pub fn from_proto(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    Utc.timestamp_opt(ts.seconds, nanos).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_nonsense() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 17, 5, 0).unwrap()
            + chrono::Duration::nanoseconds(7);
        assert_eq!(from_proto(&to_proto(at)), Some(at));
        assert_eq!(
            from_proto(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
        assert_eq!(
            from_proto(&Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
    }
}
