//! What a customer does not want to receive, per channel, set by `CustomerPreferences` on
//! `<p>.in.customer.preferences` and kept in the notifier's key-value bucket. The newest `updated_at` wins.
//! Pure, no I/O.

use backorder_proto::v1::CustomerPreferences;
use backorder_runtime::limits::Check;
use chrono::{DateTime, Utc};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::coalesce::Channel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub email_opt_out: bool,
    pub sms_opt_out: bool,
    pub updated_at: DateTime<Utc>,
}

impl Preferences {
    pub fn opted_out(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email_opt_out,
            Channel::Sms => self.sms_opt_out,
        }
    }
}

/// Decodes and checks a `CustomerPreferences`: a customer id within the bounds of every id, and the time it
/// was set, inside the years of [`limits`](backorder_runtime::limits), so updates can be ordered.
pub fn read(bytes: &[u8]) -> Result<(String, Preferences), String> {
    let message = CustomerPreferences::decode(bytes)
        .map_err(|e| format!("cannot decode CustomerPreferences: {e}"))?;
    let mut check = Check::new();
    check.id("customer_id", &message.customer_id);
    if message.updated_at.is_none() {
        check.fail(
            "updated_at",
            "is missing, so the update cannot be ordered against others",
        );
    }
    let updated_at = check.date("updated_at", message.updated_at.as_ref());
    match (check.result(), updated_at) {
        (Ok(()), Some(updated_at)) => Ok((
            message.customer_id,
            Preferences {
                email_opt_out: message.email_opt_out,
                sms_opt_out: message.sms_opt_out,
                updated_at,
            },
        )),
        (Err(reason), _) => Err(reason),
        (Ok(()), None) => Err("updated_at: is missing".into()),
    }
}

/// The preferences to keep: `update` unless what is kept is as new or newer.
pub fn newest(current: Option<&Preferences>, update: Preferences) -> Option<Preferences> {
    match current {
        Some(current) if current.updated_at >= update.updated_at => None,
        _ => Some(update),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn prefs(email: bool, sms: bool, day: u32) -> Preferences {
        Preferences {
            email_opt_out: email,
            sms_opt_out: sms,
            updated_at: Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn the_newest_update_wins() {
        assert_eq!(
            newest(None, prefs(true, false, 2)),
            Some(prefs(true, false, 2))
        );
        assert_eq!(
            newest(Some(&prefs(true, false, 2)), prefs(false, false, 1)),
            None
        );
        assert_eq!(
            newest(Some(&prefs(true, false, 2)), prefs(false, true, 2)),
            None
        );
        assert_eq!(
            newest(Some(&prefs(true, false, 2)), prefs(false, true, 3)),
            Some(prefs(false, true, 3))
        );
        assert!(prefs(true, false, 1).opted_out(Channel::Email));
        assert!(!prefs(true, false, 1).opted_out(Channel::Sms));
    }

    #[test]
    fn unusable_updates_are_refused_with_the_reason() {
        let message = CustomerPreferences {
            customer_id: "C-1".into(),
            email_opt_out: true,
            sms_opt_out: false,
            updated_at: Some(backorder_runtime::time::to_proto(
                prefs(true, false, 1).updated_at,
            )),
        };
        assert_eq!(
            read(&message.encode_to_vec()),
            Ok(("C-1".into(), prefs(true, false, 1)))
        );
        let error = read(&CustomerPreferences::default().encode_to_vec()).unwrap_err();
        assert!(
            error.contains("customer_id: is missing") && error.contains("updated_at: is missing"),
            "{error}"
        );
        assert!(read(b"\xff").unwrap_err().starts_with("cannot decode"));
    }

    #[test]
    fn out_of_bounds_updates_are_refused_naming_field_value_and_limit() {
        let good = CustomerPreferences {
            customer_id: "C-1".into(),
            updated_at: Some(backorder_runtime::time::to_proto(
                prefs(true, false, 1).updated_at,
            )),
            ..Default::default()
        };
        let refused = |change: fn(&mut CustomerPreferences)| {
            let mut m = good.clone();
            change(&mut m);
            read(&m.encode_to_vec()).unwrap_err()
        };
        let error = refused(|m| m.customer_id = "C".repeat(300));
        assert!(
            error.starts_with("customer_id: ") && error.contains("is 300 bytes long; at most 128"),
            "{error}"
        );
        assert!(error.len() < 200, "the value is cut: {error}");
        let error = refused(|m| m.customer_id = "C-1\n".into());
        assert!(
            error.contains("customer_id: \"C-1\\n\" has control characters"),
            "{error}"
        );
        // Year 9999: a valid timestamp, but no update is from then, and it would win over every later one.
        let error = refused(|m| m.updated_at.as_mut().unwrap().seconds = 253_402_214_400);
        assert!(
            error
                .contains("updated_at: 9999-12-31T00:00:00+00:00 is outside the years 2000..=2199"),
            "{error}"
        );
        let error = refused(|m| m.updated_at.as_mut().unwrap().nanos = -1);
        assert!(
            error.contains("updated_at: is not a valid timestamp"),
            "{error}"
        );
    }
}
