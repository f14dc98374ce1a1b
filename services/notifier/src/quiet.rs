//! Quiet hours for SMS: a text due while the customer sleeps (in their time zone) waits until the quiet hours
//! end. Pure, no I/O.

use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily span of local time, `start` inclusive, `end` exclusive; it may wrap midnight (`21:00-08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// `BO_SMS_QUIET_HOURS`: `HH:MM-HH:MM`, or `off` (also an empty span such as `08:00-08:00`).
pub fn parse(text: &str) -> Result<Option<QuietHours>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| "expected HH:MM-HH:MM (e.g. 21:00-08:00) or off".to_string())?;
    let time = |t: &str| {
        NaiveTime::parse_from_str(t.trim(), "%H:%M")
            .map_err(|e| format!("{t:?} is not a time like 21:00: {e}"))
    };
    let (start, end) = (time(start)?, time(end)?);
    Ok((start != end).then_some(QuietHours { start, end }))
}

/// The customer's time zone: `name` (IANA, e.g. `Europe/Berlin`) when it is one, else `default`.
pub fn time_zone(name: &str, default: Tz) -> Tz {
    name.trim().parse().unwrap_or(default)
}

impl QuietHours {
    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `at` when it is outside quiet hours in `tz`, else the moment they end.
    pub fn release(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        // Near chrono's ends the local time may not exist (it panics); no text is due then anyway.
        if !backorder_runtime::limits::in_years(at) {
            return at;
        }
        let local = at.with_timezone(&tz);
        if !self.contains(local.time()) {
            return at;
        }
        let mut date = local.date_naive();
        if local.time() >= self.end {
            // After the start, before midnight: the quiet hours end tomorrow.
            date = date.succ_opt().unwrap_or(date);
        }
        let mut end = date.and_time(self.end);
        // The end may fall into a gap a clock change leaves: the first local time after it counts.
        for _ in 0..4 {
            match tz.from_local_datetime(&end) {
                LocalResult::Single(t) => return t.with_timezone(&Utc).max(at),
                LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc).max(at),
                LocalResult::None => end += Duration::minutes(30),
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parsing() {
        let q = parse("21:00-08:00").unwrap().unwrap();
        assert_eq!(q.start, NaiveTime::from_hms_opt(21, 0, 0).unwrap());
        assert_eq!(parse("off").unwrap(), None);
        assert_eq!(parse("08:00-08:00").unwrap(), None);
        assert!(parse("21-8").is_err());
        assert!(parse("nights").is_err());
        assert!(parse("25:00-08:00").is_err());
    }

    #[test]
    fn a_text_due_at_night_waits_for_the_morning_in_the_customers_zone() {
        let q = parse("21:00-08:00").unwrap().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 22:30 in Berlin (winter, UTC+1): held until 08:00 Berlin the next day.
        assert_eq!(
            q.release(at("2026-01-10T21:30:00Z"), berlin),
            at("2026-01-11T07:00:00Z")
        );
        // 03:00 in Berlin: until 08:00 the same day.
        assert_eq!(
            q.release(at("2026-01-10T02:00:00Z"), berlin),
            at("2026-01-10T07:00:00Z")
        );
        // 12:00 in Berlin: at once.
        assert_eq!(
            q.release(at("2026-01-10T11:00:00Z"), berlin),
            at("2026-01-10T11:00:00Z")
        );
        // 21:30 UTC is 13:30 in Los Angeles: at once.
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(
            q.release(at("2026-01-10T21:30:00Z"), la),
            at("2026-01-10T21:30:00Z")
        );
        // Quiet hours within one day.
        let q = parse("12:00-14:00").unwrap().unwrap();
        assert_eq!(
            q.release(at("2026-01-10T12:30:00Z"), Tz::UTC),
            at("2026-01-10T14:00:00Z")
        );
        assert_eq!(
            q.release(at("2026-01-10T14:00:00Z"), Tz::UTC),
            at("2026-01-10T14:00:00Z")
        );
    }

    #[test]
    fn an_end_inside_a_clock_change_gap_moves_past_it() {
        // Berlin skips 02:00-03:00 on 2026-03-29.
        let q = parse("22:00-02:30").unwrap().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let released = q.release(at("2026-03-28T23:00:00Z"), berlin);
        assert_eq!(released, at("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn time_zones_fall_back_to_the_default() {
        assert_eq!(
            time_zone("Europe/Vienna", Tz::UTC),
            chrono_tz::Europe::Vienna
        );
        assert_eq!(
            time_zone("", chrono_tz::Europe::Berlin),
            chrono_tz::Europe::Berlin
        );
        assert_eq!(time_zone("Mars/Base", Tz::UTC), Tz::UTC);
    }

    proptest::proptest! {
        /// Any instant chrono holds, in zones at both ends of the offsets: an answer, never a panic.
        #[test]
        fn any_instant_gets_a_release(
            secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            zone in proptest::sample::select(vec!["Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin", "UTC"]),
            start in 0u32..1440,
            end in 0u32..1440,
        ) {
            let Some(q) = parse(&format!("{:02}:{:02}-{:02}:{:02}", start / 60, start % 60, end / 60, end % 60)).unwrap() else {
                return Ok(());
            };
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            proptest::prop_assert!(q.release(t, zone.parse().unwrap()) >= t);
        }
    }

    #[test]
    fn the_ends_of_time_get_a_release() {
        let q = parse("00:00-23:59").unwrap().unwrap();
        for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
            let zone: Tz = zone.parse().unwrap();
            for t in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
                assert!(q.release(t, zone) >= t);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn a_release_is_never_earlier_and_never_quiet(secs in 0i64..4_000_000_000, start in 0u32..1440, end in 0u32..1440) {
            let Some(q) = parse(&format!("{:02}:{:02}-{:02}:{:02}", start / 60, start % 60, end / 60, end % 60)).unwrap() else {
                return Ok(());
            };
            let berlin: Tz = "Europe/Berlin".parse().unwrap();
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let released = q.release(t, berlin);
            proptest::prop_assert!(released >= t);
            proptest::prop_assert!(released - t <= Duration::hours(25));
            if released != t {
                proptest::prop_assert!(!q.contains(released.with_timezone(&berlin).time()) || released.with_timezone(&berlin).time() == q.end);
            }
        }
    }
}
