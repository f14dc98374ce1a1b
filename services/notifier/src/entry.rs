//! A pending entry of the notifier's bucket: when it is due, and how its told events leave it (or it is
//! parked when it cannot become a message).

use std::time::Duration;

use backorder_proto::v1::{Customer, CustomerEvent, DeadLetter};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::coalesce::Channel;
use crate::quiet::{self, QuietHours};
use crate::shared::{SERVICE, Shared};
use crate::store::{self, Pending};

/// When an entry is due: its window after the first event, and for SMS not inside the customer's quiet
/// hours (in their `time_zone`, else `default_zone`). Pure.
pub fn due_at(
    pending: &Pending,
    customer: &Customer,
    window: Duration,
    quiet_hours: Option<QuietHours>,
    default_zone: Tz,
) -> DateTime<Utc> {
    // Saturating: a window of any length (BO_NOTIFY_COALESCE_SECS is a u64) is no reason to panic.
    let due = backorder_runtime::limits::add(
        pending.first_at,
        chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX),
    );
    match (pending.channel, quiet_hours) {
        (Channel::Sms, Some(quiet)) => {
            quiet.release(due, quiet::time_zone(&customer.time_zone, default_zone))
        }
        _ => due,
    }
}

/// When `pending` is due for the customer of its newest event, under the service's settings.
pub(crate) fn due(shared: &Shared, pending: &Pending, newest: &CustomerEvent) -> DateTime<Utc> {
    let config = &shared.config;
    let customer = newest.customer.clone().unwrap_or_default();
    due_at(
        pending,
        &customer,
        config.coalesce,
        config.quiet_hours,
        config.default_time_zone,
    )
}

/// The span an entry's message is decided and sent in.
pub(crate) fn notify_span(pending: &Pending) -> tracing::Span {
    tracing::info_span!(
        "notify",
        order_id = %pending.order_id,
        channel = pending.channel.name(),
        message_id = tracing::field::Empty
    )
}

/// Removes the events `handled` of an entry stored under `revision`; an entry not stored yet (`None`: one
/// decided as its event was taken) has nothing to remove.
pub(crate) async fn settle(
    shared: &Shared,
    key: &str,
    revision: Option<u64>,
    handled: &[String],
) -> anyhow::Result<()> {
    match revision {
        Some(_) => remove(shared, key, Some(handled)).await,
        None => Ok(()),
    }
}

/// Removes `handled` events from the entry (all of them with `None`), deleting it when none are left.
/// Events added meanwhile stay, with a window of their own from now.
pub(crate) async fn remove(
    shared: &Shared,
    key: &str,
    handled: Option<&[String]>,
) -> anyhow::Result<()> {
    remove_from(shared, key, handled, None).await
}

/// [`remove`], starting from `known` (the entry and its revision, as this pass last wrote it) instead of a
/// read; a change meanwhile fails the write, and the entry is read again.
pub(crate) async fn remove_from(
    shared: &Shared,
    key: &str,
    handled: Option<&[String]>,
    mut known: Option<(Pending, u64)>,
) -> anyhow::Result<()> {
    let state = &shared.buckets.state;
    for _ in 0..10 {
        let (entry, revision) = match known.take() {
            Some((pending, revision)) => (Ok(pending), Some(revision)),
            None => {
                let (value, revision) = store::read(state, key).await?;
                let Some(bytes) = value else {
                    return Ok(());
                };
                (Pending::decode(&bytes), revision)
            }
        };
        let left =
            match (handled, entry) {
                (Some(handled), Ok(mut pending)) => {
                    pending.retain(|id| !handled.iter().any(|h| h == id));
                    // The message in flight for these events is settled with them.
                    if pending.sending.as_ref().is_some_and(|s| {
                        s.event_ids.iter().all(|id| handled.iter().any(|h| h == id))
                    }) {
                        pending.sending = None;
                    }
                    (!pending.event_ids.is_empty()).then_some(pending)
                }
                _ => None,
            };
        let written = match left {
            None => state
                .delete_expect_revision(key, revision)
                .await
                .map_err(|e| e.to_string()),
            Some(mut pending) => {
                pending.first_at = shared.config.common.clock.now();
                match store::write(state, key, pending.encode(), revision).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("a newer revision".into()),
                    Err(error) => Err(format!("{error:#}")),
                }
            }
        };
        match written {
            Ok(()) => return Ok(()),
            Err(error) => tracing::debug!(%error, key, "entry changed meanwhile, reading again"),
        }
    }
    anyhow::bail!("{key} kept changing while sent events were removed")
}

/// Parks an entry that cannot become a message in `<p>.dlq.notifier`, with the reason.
pub(crate) async fn park(
    shared: &Shared,
    key: &str,
    bytes: &[u8],
    error: &str,
) -> anyhow::Result<()> {
    tracing::error!(key, error, "pending entry parked in the dead-letter stream");
    metrics::counter!("bo_dead_letters_total", "service" => SERVICE).increment(1);
    let letter = DeadLetter {
        service: SERVICE.to_string(),
        subject: key.to_string(),
        stream: format!("KV_{}", shared.bus.subjects.notifier_bucket()),
        stream_sequence: 0,
        payload: bytes.to_vec(),
        error: error.to_string(),
        deliveries: 1,
        failed_at: Some(backorder_runtime::time::to_proto(Utc::now())),
        message_id: String::new(),
    };
    let id = format!("{}/pending/{}", SERVICE, store::hash(&hex::encode(bytes)));
    shared
        .bus
        .publish(shared.bus.subjects.dead_letter(SERVICE), &id, &letter)
        .await
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
    fn a_window_beyond_the_calendar_saturates_instead_of_panicking() {
        let quiet = quiet::parse("21:00-08:00").unwrap();
        let customer = Customer {
            time_zone: "Pacific/Kiritimati".into(),
            ..Default::default()
        };
        let window = Duration::from_secs(u64::MAX);
        for channel in Channel::ALL {
            for first_at in [at("2026-01-10T21:59:30Z"), DateTime::<Utc>::MAX_UTC] {
                let pending = Pending::new("SO-1", channel, first_at);
                let due = due_at(&pending, &customer, window, quiet, Tz::UTC);
                assert_eq!(due, DateTime::<Utc>::MAX_UTC, "{channel:?}");
            }
            let pending = Pending::new("SO-1", channel, DateTime::<Utc>::MIN_UTC);
            let due = due_at(&pending, &customer, Duration::ZERO, quiet, Tz::UTC);
            assert!(due >= DateTime::<Utc>::MIN_UTC);
        }
    }

    #[test]
    fn due_after_the_window_and_sms_not_at_night() {
        let quiet = quiet::parse("21:00-08:00").unwrap();
        let customer = Customer {
            time_zone: "Europe/Berlin".into(),
            ..Default::default()
        };
        let email = Pending::new("SO-1", Channel::Email, at("2026-01-10T21:59:30Z"));
        let window = Duration::from_secs(60);
        assert_eq!(
            due_at(&email, &customer, window, quiet, Tz::UTC),
            at("2026-01-10T22:00:30Z")
        );
        let sms = Pending {
            channel: Channel::Sms,
            ..email.clone()
        };
        assert_eq!(
            due_at(&sms, &customer, window, quiet, Tz::UTC),
            at("2026-01-11T07:00:00Z")
        );
        assert_eq!(
            due_at(&sms, &customer, window, None, Tz::UTC),
            at("2026-01-10T22:00:30Z")
        );
        // Without a zone of their own, the default one: 22:00 UTC is 14:00 in Los Angeles.
        let nowhere = Customer::default();
        assert_eq!(
            due_at(
                &sms,
                &nowhere,
                window,
                quiet,
                chrono_tz::America::Los_Angeles
            ),
            at("2026-01-10T22:00:30Z")
        );
    }
}
