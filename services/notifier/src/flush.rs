//! Sends what is due: each pending entry (one order's events for one channel) once its coalescing window has
//! passed on the service's clock (and, for SMS, the customer's quiet hours have ended) becomes one message.
//! The message is decided first and recorded in the entry (`sending`: its id, the events it settles, the
//! rendered message), then published with its id as `Nats-Msg-Id`, then every event it tells is recorded as
//! sent, then its events leave the entry. Should publishing fail or the service stop in between, the next
//! pass publishes exactly that message under that id again (the stream drops a repeat within its duplicate
//! window), or finds its events recorded and only settles the entry. Events that arrive meanwhile never
//! change it; they wait for the next message.

use std::sync::Arc;
use std::time::Duration;

use backorder_proto::v1::{Customer, CustomerEvent, DeadLetter};
use backorder_runtime::Clock;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::StreamExt as _;
use prost::Message as _;
use tracing::Instrument;

use crate::coalesce::{self, Channel};
use crate::quiet::{self, QuietHours};
use crate::shared::{SERVICE, Shared, opted_out};
use crate::store::{self, Pending, Sending};

/// How often the flusher looks anyway, for entries another instance took (it sends its own when they fall
/// due, and this instance sends what it took).
const POLL: Duration = Duration::from_secs(5);
/// Entries sent at a time.
const CONCURRENCY: usize = 32;

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

/// Runs passes until `shutdown`: after each, waits for the next entry to fall due, a new event, or [`POLL`].
///
/// Which entries a pass visits: after new events, the entries this instance just stored them in; else (at
/// start, when an entry falls due, every [`POLL`], after a failed pass) every entry in the bucket, which
/// finds those stored before a restart or by another instance. Listing every entry after each batch of
/// events made the work of a burst grow with the square of its size.
pub async fn run(
    shared: Arc<Shared>,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut every_entry = true;
    let mut next: Option<DateTime<Utc>> = None;
    loop {
        let keys = (!every_entry).then(|| shared.take_stored());
        let whole = keys.is_none();
        let failed = match pass(&shared, clock.now(), keys).await {
            Ok(due) if whole => {
                next = due;
                false
            }
            // Entries this pass did not visit keep the due time the last whole pass found.
            Ok(due) => {
                next = earliest(next, due);
                false
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "flush pass failed, trying again"
                );
                // Tried again on the next wake (an event, or POLL), not at once: a failing bucket must not
                // be asked in a tight loop.
                next = None;
                true
            }
        };
        let due = async {
            match next {
                Some(at) => clock.until(at).await,
                None => futures::future::pending().await,
            }
        };
        let new_events = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = shared.stored.notified() => true,
            _ = due => false,
            _ = tokio::time::sleep(POLL) => false,
        };
        every_entry = failed || !new_events;
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sends the entries under `keys` (`None`: every pending entry) that are due at `now`; the earliest time an
/// entry left waiting falls due.
pub async fn pass(
    shared: &Shared,
    now: DateTime<Utc>,
    keys: Option<Vec<String>>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let pending_keys = match keys {
        Some(keys) => keys,
        None => pending_keys(shared).await?,
    };
    // Entries are independent (one order and channel each): several are sent at a time.
    let results: Vec<anyhow::Result<Option<DateTime<Utc>>>> = futures::stream::iter(pending_keys)
        .map(|key| async move { visit(shared, &key, now).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut next: Option<DateTime<Utc>> = None;
    for result in results {
        next = earliest(next, result?);
    }
    Ok(next)
}

/// The key of every pending entry in the bucket.
async fn pending_keys(shared: &Shared) -> anyhow::Result<Vec<String>> {
    let mut keys = match shared.buckets.state.keys().await {
        Ok(keys) => keys.boxed(),
        Err(error) => anyhow::bail!("listing pending entries: {error}"),
    };
    let mut pending_keys = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key?;
        if key.starts_with("pending.") {
            pending_keys.push(key);
        }
    }
    Ok(pending_keys)
}

/// Sends the entry under `key` if it is due at `now`; else when it falls due.
async fn visit(
    shared: &Shared,
    key: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let state = &shared.buckets.state;
    let (Some(bytes), revision) = store::read(state, key).await? else {
        return Ok(None);
    };
    let (pending, events) =
        match Pending::decode(&bytes).and_then(|p| p.decode_events().map(|events| (p, events))) {
            Ok(read) => read,
            Err(error) => {
                park(
                    shared,
                    key,
                    &bytes,
                    &format!("unreadable pending entry: {error}"),
                )
                .await?;
                remove(shared, key, None).await?;
                return Ok(None);
            }
        };
    let span = tracing::info_span!(
        "notify",
        order_id = %pending.order_id,
        channel = pending.channel.name(),
        message_id = tracing::field::Empty
    );
    // A message decided already goes out as decided, now (it was due when it was decided).
    if let Some(sending) = &pending.sending {
        backorder_runtime::trace::follow(&span, &sending.trace);
        deliver(shared, key, pending.channel, sending, None)
            .instrument(span)
            .await?;
        return Ok(None);
    }
    let Some(newest) = events.last() else {
        remove(shared, key, None).await?;
        return Ok(None);
    };
    let customer = newest.customer.clone().unwrap_or_default();
    let config = &shared.config;
    let due = due_at(
        &pending,
        &customer,
        config.coalesce,
        config.quiet_hours,
        config.default_time_zone,
    );
    if due > now {
        return Ok(Some(due));
    }
    // The message continues the trace of the (newest) event it tells.
    backorder_runtime::trace::follow(&span, &pending.trace);
    async {
        if let Decided::Send(pending, sending, revision) =
            decide(shared, key, &bytes, revision, pending, events).await?
        {
            let channel = pending.channel;
            deliver(shared, key, channel, &sending, Some((*pending, revision))).await?;
        }
        anyhow::Ok(())
    }
    .instrument(span)
    .await?;
    Ok(None)
}

/// Sends the message of a new entry as its first event is taken, when the entry is due at once (no
/// coalescing window, and for SMS not inside the customer's quiet hours): the entry is created with its
/// message decided, then the message is published and the entry settled, as a pass would. Saves a pass's
/// read of the entry and the separate write of the event into it. False when an entry exists already under
/// `key` (it takes the event as usual) or the entry is not due yet; should anything fail once the entry is
/// written, a pass finds the message decided in it and sends it.
pub(crate) async fn send_at_once(
    shared: &Shared,
    key: &str,
    pending: Pending,
    event: CustomerEvent,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let config = &shared.config;
    let customer = event.customer.clone().unwrap_or_default();
    let due = due_at(
        &pending,
        &customer,
        config.coalesce,
        config.quiet_hours,
        config.default_time_zone,
    );
    if due > now {
        return Ok(false);
    }
    let span = tracing::info_span!(
        "notify",
        order_id = %pending.order_id,
        channel = pending.channel.name(),
        message_id = tracing::field::Empty
    );
    let bytes = pending.encode();
    async {
        match decide(shared, key, &bytes, None, pending, vec![event]).await? {
            Decided::Changed => Ok(false),
            Decided::Nothing => Ok(true),
            Decided::Send(pending, sending, revision) => {
                let channel = pending.channel;
                let sent =
                    deliver(shared, key, channel, &sending, Some((*pending, revision))).await;
                if sent.is_err() {
                    // Decided and stored: the next pass sends it.
                    shared.note_stored(key);
                }
                sent.map(|()| true)
            }
        }
    }
    .instrument(span)
    .await
}

/// What [`decide`] did with a due entry.
enum Decided {
    /// The message is recorded in the entry, under the entry's new revision: publish it.
    Send(Box<Pending>, Sending, u64),
    /// Nothing is to be sent; the entry is settled.
    Nothing,
    /// The entry changed meanwhile (or, for a new one, exists already): nothing was written.
    Changed,
}

/// Decides the message of a due entry and records it in the entry (compare-and-swap on `revision`; `None`
/// creates it) before anything is published. When the entry changed meanwhile, the next pass decides again.
async fn decide(
    shared: &Shared,
    key: &str,
    bytes: &[u8],
    revision: Option<u64>,
    mut pending: Pending,
    events: Vec<CustomerEvent>,
) -> anyhow::Result<Decided> {
    let channel = pending.channel;
    let buckets = &shared.buckets;
    // Events a previous message told already (a replay, or one settled before its entry was) are not told
    // again.
    let mut fresh = Vec::with_capacity(events.len());
    for event in events {
        let (sent, _) =
            store::read(&buckets.sent, &store::sent_key(channel, &event.event_id)).await?;
        if sent.is_none() {
            fresh.push(event);
        }
    }
    let handled = pending.event_ids.clone();
    let outcome = |what: &'static str| {
        metrics::counter!("bo_notifier_messages_total", "channel" => channel.name(), "outcome" => what)
            .increment(1);
    };
    let Some(newest) = fresh.last() else {
        tracing::info!("told already (a redelivery or replay), nothing sent");
        outcome("already_sent");
        settle(shared, key, revision, &handled).await?;
        return Ok(Decided::Nothing);
    };
    let customer_id = newest
        .customer
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    if opted_out(shared, &customer_id, channel).await? {
        tracing::info!("customer opted out of this channel, nothing sent");
        outcome("opted_out");
        settle(shared, key, revision, &handled).await?;
        return Ok(Decided::Nothing);
    }
    let Some(notice) = coalesce::coalesce(&fresh) else {
        tracing::info!(
            events = fresh.len(),
            "superseded before it was sent, nothing sent"
        );
        outcome("superseded");
        settle(shared, key, revision, &handled).await?;
        return Ok(Decided::Nothing);
    };
    let rendered = match channel {
        Channel::Email => crate::render::email(&shared.templates, &notice)
            .map(|m| m.map(|m| (m.message_id.clone(), m.encode_to_vec()))),
        Channel::Sms => crate::render::sms(&shared.templates, &notice)
            .map(|m| m.map(|m| (m.message_id.clone(), m.encode_to_vec()))),
    };
    let (message_id, payload) = match rendered {
        Ok(Some(message)) => message,
        Ok(None) => {
            tracing::info!("no address for this channel any more, nothing sent");
            settle(shared, key, revision, &handled).await?;
            return Ok(Decided::Nothing);
        }
        Err(error) => {
            park(shared, key, bytes, &error.to_string()).await?;
            outcome("failed");
            settle(shared, key, revision, &handled).await?;
            return Ok(Decided::Nothing);
        }
    };
    let sending = Sending {
        message_id,
        event_ids: handled,
        told: notice.event_ids.clone(),
        payload: hex::encode(payload),
        trace: pending.trace.clone(),
        decided_at: shared.config.common.clock.now(),
    };
    pending.sending = Some(sending.clone());
    let Some(revision) = store::write(&buckets.state, key, pending.encode(), revision).await?
    else {
        tracing::debug!(
            key,
            "entry changed while its message was decided, deciding again"
        );
        return Ok(Decided::Changed);
    };
    tracing::info!(
        message_id = sending.message_id,
        kind = notice.kind().as_str_name(),
        events = notice.event_ids.len(),
        lines = notice.lines.len(),
        "message decided"
    );
    Ok(Decided::Send(Box::new(pending), sending, revision))
}

/// Publishes a decided message under its id (again, after a failure or a restart: the stream drops a
/// repeat within its duplicate window), records the events it told, and settles them in the entry.
/// `decided`: the entry as [`decide`] just wrote it, and its revision. A message found decided in its entry
/// (a restart, a failure) whose events are all recorded under its id already is not published again; one
/// decided just now told only events `decide` found unrecorded.
async fn deliver(
    shared: &Shared,
    key: &str,
    channel: Channel,
    sending: &Sending,
    decided: Option<(Pending, u64)>,
) -> anyhow::Result<()> {
    let buckets = &shared.buckets;
    tracing::Span::current().record("message_id", sending.message_id.as_str());
    let mut recorded = decided.is_none();
    if recorded {
        for event_id in &sending.told {
            let (value, _) =
                store::read(&buckets.sent, &store::sent_key(channel, event_id)).await?;
            recorded &= value.as_deref() == Some(sending.message_id.as_bytes());
        }
    }
    if recorded {
        tracing::info!("recorded as sent already, not published again");
    } else {
        let payload = hex::decode(&sending.payload)
            .map_err(|e| anyhow::anyhow!("the decided message in {key} is not hex: {e}"))?;
        let subjects = &shared.bus.subjects;
        let subject = match channel {
            Channel::Email => subjects.notify_email(),
            Channel::Sms => subjects.notify_sms(),
        };
        shared
            .bus
            .publish_bytes(subject, &sending.message_id, payload.into())
            .await?;
        for event_id in &sending.told {
            buckets
                .sent
                .put(
                    store::sent_key(channel, event_id),
                    sending.message_id.clone().into(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("recording {event_id} as sent: {e}"))?;
        }
        metrics::counter!("bo_notifier_messages_total", "channel" => channel.name(), "outcome" => "sent")
            .increment(1);
        tracing::info!(events = sending.told.len(), "message published");
    }
    remove_from(shared, key, Some(&sending.event_ids), decided).await
}

/// Removes the events `handled` of an entry stored under `revision`; an entry not stored yet (`None`: one
/// decided as its event was taken) has nothing to remove.
async fn settle(
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
async fn remove(shared: &Shared, key: &str, handled: Option<&[String]>) -> anyhow::Result<()> {
    remove_from(shared, key, handled, None).await
}

/// [`remove`], starting from `known` (the entry and its revision, as this pass last wrote it) instead of a
/// read; a change meanwhile fails the write, and the entry is read again.
async fn remove_from(
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
async fn park(shared: &Shared, key: &str, bytes: &[u8], error: &str) -> anyhow::Result<()> {
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
