//! The window a KPI request asks for, checked, its defaults filled in.

use backorder_proto::v1::GetKpisRequest;
use backorder_runtime::limits::{self, Check};
use backorder_runtime::time::from_proto;
use chrono::{DateTime, Duration, Utc};

/// The window when a request names none: the 30 days before `to`.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;
/// The longest window a request may ask for: a year and a bit, enough for a year over year look.
pub const MAX_WINDOW_DAYS: i64 = 400;

/// The window `[from, to)` of the windowed figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The window a request asks for, its defaults filled in (`to`: now; `from`: 30 days before `to`), and its
/// filters checked; `Err` names every field that is wrong.
pub fn window(request: &GetKpisRequest, now: DateTime<Utc>) -> Result<Window, String> {
    let mut check = Check::new();
    check.optional_id("customer_id", &request.customer_id);
    check.optional_id("sku", &request.sku);
    // Some(None): not given; None: not a time (recorded in `check`).
    let mut at = |field: &str, ts: &Option<backorder_proto::Timestamp>| match ts {
        None => Some(None),
        Some(ts) => match from_proto(ts).filter(|at| limits::in_years(*at)) {
            Some(at) => Some(Some(at)),
            None => {
                let (first, last) = (limits::YEARS.start(), limits::YEARS.end());
                check.fail(
                    field,
                    format!(
                        "{}s {}ns is not a time in the years {first}..={last}",
                        ts.seconds, ts.nanos
                    ),
                );
                None
            }
        },
    };
    let (from, to) = (at("from", &request.from), at("to", &request.to));
    if let (Some(from), Some(to)) = (from, to) {
        let to = to.unwrap_or(now);
        let from = from.unwrap_or_else(|| limits::sub(to, Duration::days(DEFAULT_WINDOW_DAYS)));
        if from >= to {
            check.fail(
                "from",
                format!(
                    "{} is not before `to` ({}): the window [from, to) is empty",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            );
        } else if to - from > Duration::days(MAX_WINDOW_DAYS) {
            check.fail(
                "to",
                format!(
                    "the window {} .. {} is {} days long; at most {MAX_WINDOW_DAYS}",
                    from.to_rfc3339(),
                    to.to_rfc3339(),
                    (to - from).num_days()
                ),
            );
        }
        check.result()?;
        return Ok(Window { from, to });
    }
    Err(check.summary())
}

#[cfg(test)]
mod tests {
    use backorder_runtime::time::to_proto;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn request(from: Option<&str>, to: Option<&str>) -> GetKpisRequest {
        GetKpisRequest {
            from: from.map(|t| to_proto(at(t))),
            to: to.map(|t| to_proto(at(t))),
            ..Default::default()
        }
    }

    #[test]
    fn the_window_defaults_to_the_30_days_before_to_and_to_defaults_to_now() {
        let now = at("2026-12-20T10:00:00Z");
        assert_eq!(
            window(&request(None, None), now),
            Ok(Window {
                from: at("2026-11-20T10:00:00Z"),
                to: now
            })
        );
        assert_eq!(
            window(&request(None, Some("2026-12-01T00:00:00Z")), now),
            Ok(Window {
                from: at("2026-11-01T00:00:00Z"),
                to: at("2026-12-01T00:00:00Z")
            })
        );
        assert_eq!(
            window(&request(Some("2026-12-19T00:00:00Z"), None), now),
            Ok(Window {
                from: at("2026-12-19T00:00:00Z"),
                to: now
            })
        );
    }

    #[test]
    fn an_empty_reversed_or_overlong_window_and_bad_ids_are_refused_by_name() {
        let now = at("2026-12-20T10:00:00Z");
        let empty = window(&request(Some("2026-12-20T10:00:00Z"), None), now).unwrap_err();
        assert!(
            empty.starts_with("from: 2026-12-20T10:00:00+00:00 is not before `to`"),
            "{empty}"
        );
        let reversed = request(Some("2026-12-02T00:00:00Z"), Some("2026-12-01T00:00:00Z"));
        assert!(
            window(&reversed, now)
                .unwrap_err()
                .contains("is not before `to`")
        );
        // 2025-01-01 + 400 days = 2026-02-05: allowed; a day more is not.
        let year = request(Some("2025-01-01T00:00:00Z"), Some("2026-02-05T00:00:00Z"));
        assert!(window(&year, now).is_ok());
        let long = request(Some("2025-01-01T00:00:00Z"), Some("2026-02-06T00:00:00Z"));
        let error = window(&long, now).unwrap_err();
        assert!(
            error.starts_with("to: the window 2025-01-01T00:00:00+00:00 .. "),
            "{error}"
        );
        assert!(error.ends_with("is 401 days long; at most 400"), "{error}");
        let bad = GetKpisRequest {
            customer_id: " C1".into(),
            sku: "S".repeat(129),
            from: Some(backorder_proto::Timestamp {
                seconds: 0,
                nanos: -5,
            }),
            ..Default::default()
        };
        let error = window(&bad, now).unwrap_err();
        for field in ["customer_id: ", "sku: ", "from: "] {
            assert!(error.contains(field), "{field} in {error}");
        }
        assert!(error.contains("at most 128"), "{error}");
        let ancient = request(Some("1999-12-31T00:00:00Z"), None);
        assert!(
            window(&ancient, now)
                .unwrap_err()
                .contains("years 2000..=2199")
        );
    }
}
