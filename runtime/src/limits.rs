//! The bounds of every field a service takes from outside (documented in docs/contract.md, "Limits").
//!
//! A value out of bounds is refused where the message enters, by name: the field, the value (cut to
//! [`SHOWN`] characters) and the limit. Inside, the bounds make overflow impossible: a quantity of at most
//! 10^9 times lines of at most 1,000 stays far below `i64::MAX`, a date of 2000..2200 plus a lead time of at
//! most 3,650 days stays inside chrono's range. Date arithmetic is saturating all the same ([`add`]), so a bug
//! elsewhere costs a wrong date, never a panic.

use std::fmt;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// Ids (order, receipt, SKU, customer, PO ...), in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Free texts: reasons of cancellations and adjustments.
pub const MAX_TEXT_LEN: usize = 1_000;
/// RFC 5321's limit of a forward path.
pub const MAX_EMAIL_LEN: usize = 254;
/// Sales channel names ("web", "edi", ...).
pub const MAX_CHANNEL_LEN: usize = 64;
/// BCP 47 tags this long cover every registered language, script and region.
pub const MAX_LOCALE_LEN: usize = 35;
/// Units of one order line, receipt, adjustment, shipment line, PO line or reorder figure.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Lines of one order, unless `BO_MAX_ORDER_LINES` says otherwise.
pub const DEFAULT_MAX_LINES: usize = 1_000;
/// Replenishment lead times, in days (ten years).
pub const MAX_LEAD_TIME_DAYS: i32 = 3_650;
/// Order priorities: higher is served first.
pub const PRIORITIES: std::ops::RangeInclusive<i32> = -1_000_000..=1_000_000;
/// Years of every date a message carries (placed, received, shipped, expected).
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2199;
/// How much of a refused value an error shows.
pub const SHOWN: usize = 64;
/// How many violations a one-line summary names.
pub const SUMMARISED: usize = 16;

/// One field out of bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// As in the .proto, with the path: `lines[3].quantity`, `customer.email`.
    pub field: String,
    /// What is wrong, with the (cut) value and the limit.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The value as an error shows it: quoted, control characters escaped, cut to [`SHOWN`] characters.
pub fn shown(value: &str) -> String {
    let count = value.chars().count();
    if count <= SHOWN {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head:?}... ({count} characters)")
    }
}

/// Collects every violation of one message, so the sender hears all of them at once.
#[derive(Debug, Default)]
pub struct Check {
    pub violations: Vec<Violation>,
}

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    /// A required id: not blank, at most [`MAX_ID_LEN`] bytes, no control characters or surrounding spaces.
    pub fn id(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(field, "is missing");
        } else {
            self.optional_id(field, value);
        }
    }

    /// An id that may be empty; when given, as [`id`](Self::id).
    pub fn optional_id(&mut self, field: &str, value: &str) {
        if value.len() > MAX_ID_LEN {
            self.fail(
                field,
                format!(
                    "{} is {} bytes long; at most {MAX_ID_LEN}",
                    shown(value),
                    value.len()
                ),
            );
        } else if value.chars().any(char::is_control) || value != value.trim() {
            self.fail(
                field,
                format!(
                    "{} has control characters or surrounding spaces",
                    shown(value)
                ),
            );
        }
    }

    /// A free text of at most `max` bytes (it may hold line breaks).
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.fail(
                field,
                format!(
                    "{} is {} bytes long; at most {max}",
                    shown(value),
                    value.len()
                ),
            );
        }
    }

    /// A count of units in `min..=MAX_QUANTITY` (`min` 1 for what must be positive, 0 where 0 means "all").
    pub fn quantity(&mut self, field: &str, value: i64, min: i64) {
        if value < min {
            let what = if min == 1 {
                "must be positive".to_string()
            } else {
                format!("must be {min} or more")
            };
            self.fail(field, format!("{what}, got {value}"));
        } else if value > MAX_QUANTITY {
            self.fail(field, format!("{value} is more than {MAX_QUANTITY}"));
        }
    }

    /// A signed change of units: not 0, at most [`MAX_QUANTITY`] either way.
    pub fn delta(&mut self, field: &str, value: i64) {
        if value == 0 {
            self.fail(field, "is 0");
        } else if value.unsigned_abs() > MAX_QUANTITY as u64 {
            self.fail(
                field,
                format!("{value} is more than {MAX_QUANTITY} units either way"),
            );
        }
    }

    /// A date inside [`YEARS`]; returns it when it is one.
    pub fn date(
        &mut self,
        field: &str,
        value: Option<&backorder_proto::Timestamp>,
    ) -> Option<DateTime<Utc>> {
        let ts = value?;
        match crate::time::from_proto(ts) {
            None => {
                self.fail(
                    field,
                    format!(
                        "is not a valid timestamp (seconds {}, nanos {})",
                        ts.seconds, ts.nanos
                    ),
                );
                None
            }
            Some(at) if !in_years(at) => {
                self.fail(
                    field,
                    format!(
                        "{} is outside the years {}..={}",
                        at.to_rfc3339(),
                        YEARS.start(),
                        YEARS.end()
                    ),
                );
                None
            }
            Some(at) => Some(at),
        }
    }

    pub fn lead_time_days(&mut self, field: &str, value: i32) {
        if !(0..=MAX_LEAD_TIME_DAYS).contains(&value) {
            self.fail(
                field,
                format!("{value} days is outside 0..={MAX_LEAD_TIME_DAYS}"),
            );
        }
    }

    pub fn priority(&mut self, field: &str, value: i32) {
        if !PRIORITIES.contains(&value) {
            self.fail(
                field,
                format!(
                    "{value} is outside {}..={}",
                    PRIORITIES.start(),
                    PRIORITIES.end()
                ),
            );
        }
    }

    /// An e-mail address, when given.
    pub fn email(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        if value.len() > MAX_EMAIL_LEN {
            self.fail(
                field,
                format!(
                    "{} is {} bytes long; at most {MAX_EMAIL_LEN}",
                    shown(value),
                    value.len()
                ),
            );
        } else if !is_email(value) {
            self.fail(field, format!("{} is not an email address", shown(value)));
        }
    }

    /// A phone number in E.164 form, when given.
    pub fn phone(&mut self, field: &str, value: &str) {
        if !value.is_empty() && !is_e164(value) {
            self.fail(
                field,
                format!(
                    "{} is not a phone number in E.164 form (+ and 8 to 15 digits)",
                    shown(value)
                ),
            );
        }
    }

    /// A BCP 47 language tag, when given.
    pub fn locale(&mut self, field: &str, value: &str) {
        if !value.is_empty() && !is_bcp47(value) {
            self.fail(
                field,
                format!(
                    "{} is not a BCP 47 language tag such as \"de\" or \"en-GB\" (at most {MAX_LOCALE_LEN} characters)",
                    shown(value)
                ),
            );
        }
    }

    /// An IANA time zone, when given.
    pub fn time_zone(&mut self, field: &str, value: &str) {
        if !value.is_empty() && value.parse::<chrono_tz::Tz>().is_err() {
            self.fail(
                field,
                format!(
                    "{} is not an IANA time zone such as \"Europe/Berlin\"",
                    shown(value)
                ),
            );
        }
    }

    /// A short name ([`MAX_CHANNEL_LEN`]), when given.
    pub fn name(&mut self, field: &str, value: &str) {
        if value.len() > MAX_CHANNEL_LEN {
            self.fail(
                field,
                format!(
                    "{} is {} bytes long; at most {MAX_CHANNEL_LEN}",
                    shown(value),
                    value.len()
                ),
            );
        } else if value.chars().any(char::is_control) {
            self.fail(field, format!("{} has control characters", shown(value)));
        }
    }

    /// The violations in one line, for logs, dead letters and `RequestRefused.reason`: the first
    /// [`SUMMARISED`] and how many more, so a message of a thousand bad lines gets a reason of a few KB.
    pub fn summary(&self) -> String {
        let mut summary = self
            .violations
            .iter()
            .take(SUMMARISED)
            .map(Violation::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let more = self.violations.len().saturating_sub(SUMMARISED);
        if more > 0 {
            summary.push_str(&format!("; and {more} more"));
        }
        summary
    }

    /// `Err(summary)` when anything failed.
    pub fn result(self) -> Result<(), String> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self.summary())
        }
    }
}

pub fn in_years(at: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    YEARS.contains(&at.year())
}

/// `at + by`, saturating at chrono's ends: bounded inputs never get there, and a date is no reason to panic.
pub fn add(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(if by < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// `at - by`, saturating.
pub fn sub(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    // TimeDelta is symmetric (MIN == -MAX): negation cannot overflow.
    add(at, -by)
}

/// `days` whole days as a duration, saturating (any `i64` is fine).
pub fn days(days: i64) -> TimeDelta {
    TimeDelta::try_days(days).unwrap_or(if days < 0 {
        TimeDelta::MIN
    } else {
        TimeDelta::MAX
    })
}

/// The first instant of a year, for the date window.
pub fn start_of_year(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub fn is_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain))
        if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            && !domain.contains('@') && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
}

pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The syntax of a BCP 47 tag (RFC 5646): a language of 2-3 (or 5-8) letters, then subtags of 1-8 letters or
/// digits separated by `-` (`_` is accepted, as many systems write it). Not checked against the registry.
pub fn is_bcp47(s: &str) -> bool {
    if s.len() > MAX_LOCALE_LEN {
        return false;
    }
    let mut parts = s.split(['-', '_']);
    let language = parts.next().unwrap_or_default();
    let language_ok = matches!(language.len(), 2 | 3 | 5..=8)
        && language.bytes().all(|b| b.is_ascii_alphabetic());
    language_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_names_field_value_and_limit() {
        let mut check = Check::new();
        check.id("order_id", &"x".repeat(200));
        check.quantity("lines[0].quantity", MAX_QUANTITY + 1, 1);
        check.quantity("quantity", 0, 1);
        check.lead_time_days("lead_time_days", i32::MAX);
        check.priority("priority", i32::MIN);
        check.delta("delta", i64::MIN);
        check.email("customer.email", "nobody");
        check.phone("customer.phone", "+0049");
        check.locale("customer.locale", "not a locale");
        check.time_zone("customer.time_zone", "Mars/Olympus");
        check.name("channel", &"c".repeat(65));
        check.text("reason", &"r".repeat(1001), MAX_TEXT_LEN);
        let fields: Vec<&str> = check.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "order_id",
                "lines[0].quantity",
                "quantity",
                "lead_time_days",
                "priority",
                "delta",
                "customer.email",
                "customer.phone",
                "customer.locale",
                "customer.time_zone",
                "channel",
                "reason"
            ]
        );
        let summary = check.summary();
        assert!(
            summary.contains("is 200 bytes long; at most 128"),
            "{summary}"
        );
        assert!(
            summary.contains("(200 characters)"),
            "the value is cut: {summary}"
        );
        assert!(
            summary.contains("2147483647 days is outside 0..=3650"),
            "{summary}"
        );
        assert!(
            summary.contains("1000000001 is more than 1000000000"),
            "{summary}"
        );
    }

    #[test]
    fn a_summary_names_the_first_violations_and_counts_the_rest() {
        let mut check = Check::new();
        for i in 0..1_000 {
            check.quantity(&format!("lines[{i}].quantity"), 0, 1);
        }
        let summary = check.summary();
        assert!(
            summary.starts_with("lines[0].quantity: must be positive, got 0; "),
            "{summary}"
        );
        assert!(summary.contains("lines[15].quantity"), "{summary}");
        assert!(!summary.contains("lines[16].quantity"), "{summary}");
        assert!(summary.ends_with("; and 984 more"), "{summary}");
        assert!(summary.len() < 1_000, "{} bytes", summary.len());
    }

    #[test]
    fn good_values_pass() {
        let mut check = Check::new();
        check.id("order_id", "SO-1");
        check.optional_id("po_id", "");
        check.quantity("quantity", MAX_QUANTITY, 1);
        check.quantity("quantity", 0, 0);
        check.delta("delta", -MAX_QUANTITY);
        check.lead_time_days("lead_time_days", MAX_LEAD_TIME_DAYS);
        check.email("email", "a@b.co");
        check.email("email", "");
        check.phone("phone", "+4915112345678");
        for locale in ["en", "de-DE", "zh-Hant-TW", "pt_BR", "sr-Latn-RS"] {
            check.locale("locale", locale);
        }
        check.time_zone("time_zone", "Europe/Berlin");
        check.time_zone("time_zone", "UTC");
        check.name("channel", "b2b-portal");
        assert_eq!(check.violations, []);
    }

    #[test]
    fn dates_outside_the_window_are_refused() {
        let mut check = Check::new();
        let far = backorder_proto::Timestamp {
            seconds: 253_402_300_800, // 9999-12-31 and a day
            nanos: 0,
        };
        assert_eq!(check.date("expected_at", Some(&far)), None);
        let bad = backorder_proto::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(check.date("placed_at", Some(&bad)), None);
        let ok = crate::time::to_proto(start_of_year(2026));
        assert_eq!(
            check.date("placed_at", Some(&ok)),
            Some(start_of_year(2026))
        );
        assert_eq!(check.date("placed_at", None), None);
        assert_eq!(check.violations.len(), 2);
        assert!(check.summary().contains("outside the years 2000..=2199"));
    }

    #[test]
    fn date_arithmetic_saturates() {
        let max = DateTime::<Utc>::MAX_UTC;
        assert_eq!(add(max, days(1)), max);
        assert_eq!(add(start_of_year(2026), days(i64::MAX)), max);
        assert_eq!(
            sub(DateTime::<Utc>::MIN_UTC, days(1)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(add(start_of_year(2026), days(365)), start_of_year(2027));
    }

    #[test]
    fn shown_cuts_long_values_on_character_boundaries() {
        let long = "ä".repeat(100);
        let s = shown(&long);
        assert!(s.ends_with("... (100 characters)"), "{s}");
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
    }

    proptest::proptest! {
        /// No string makes a check panic, and a refusal always names its field.
        #[test]
        fn any_string_gets_an_answer(s in ".{0,300}") {
            let mut check = Check::new();
            check.id("f", &s);
            check.email("f", &s);
            check.phone("f", &s);
            check.locale("f", &s);
            check.time_zone("f", &s);
            check.name("f", &s);
            for v in &check.violations {
                proptest::prop_assert_eq!(&v.field, "f");
            }
        }
    }
}
