//! One due entry's message: decided and recorded in the entry before anything is published (`decide`),
//! then published under its id and settled (`deliver`); see `flush.rs` for when, and for what a
//! failure in between leads to. [`send_at_once`] does both as an event is taken, when its new entry is due at
//! once.

use backorder_proto::v1::CustomerEvent;
use chrono::{DateTime, Utc};
use prost::Message as _;
use tracing::Instrument;

use crate::coalesce::{self, Channel};
use crate::entry::{due, notify_span, park, remove, remove_from, settle};
use crate::shared::{Shared, opted_out};
use crate::store::{self, Pending, Sending};

/// Sends the entry under `key` if it is due at `now`; else when it falls due.
pub(crate) async fn visit(
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
    let span = notify_span(&pending);
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
    let due = due(shared, &pending, newest);
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
    if due(shared, &pending, &event) > now {
        return Ok(false);
    }
    let span = notify_span(&pending);
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
    let handled = pending.event_ids.clone();
    let Some(Composed {
        notice,
        message_id,
        payload,
    }) = compose(shared, key, bytes, pending.channel, events).await?
    else {
        settle(shared, key, revision, &handled).await?;
        return Ok(Decided::Nothing);
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
    let Some(revision) =
        store::write(&shared.buckets.state, key, pending.encode(), revision).await?
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

/// The message [`compose`] made of a due entry's events, not yet recorded anywhere.
struct Composed {
    notice: coalesce::Notice,
    message_id: String,
    payload: Vec<u8>,
}

/// The message to send of a due entry's events on `channel`; `None` (logged and counted, and parked when it
/// cannot be rendered) when nothing is to be sent, and the caller settles the entry.
async fn compose(
    shared: &Shared,
    key: &str,
    bytes: &[u8],
    channel: Channel,
    events: Vec<CustomerEvent>,
) -> anyhow::Result<Option<Composed>> {
    let fresh = untold(shared, channel, events).await?;
    let outcome = |what: &'static str| {
        metrics::counter!("bo_notifier_messages_total", "channel" => channel.name(), "outcome" => what)
            .increment(1);
    };
    let Some(newest) = fresh.last() else {
        tracing::info!("told already (a redelivery or replay), nothing sent");
        outcome("already_sent");
        return Ok(None);
    };
    let customer_id = newest
        .customer
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    if opted_out(shared, &customer_id, channel).await? {
        tracing::info!("customer opted out of this channel, nothing sent");
        outcome("opted_out");
        return Ok(None);
    }
    let Some(notice) = coalesce::coalesce(&fresh) else {
        tracing::info!(
            events = fresh.len(),
            "superseded before it was sent, nothing sent"
        );
        outcome("superseded");
        return Ok(None);
    };
    match render(shared, channel, &notice) {
        Ok(Some((message_id, payload))) => Ok(Some(Composed {
            notice,
            message_id,
            payload,
        })),
        Ok(None) => {
            tracing::info!("no address for this channel any more, nothing sent");
            Ok(None)
        }
        Err(error) => {
            park(shared, key, bytes, &error.to_string()).await?;
            outcome("failed");
            Ok(None)
        }
    }
}

/// The events no earlier message told (a replay, or one settled before its entry was, is not told again).
async fn untold(
    shared: &Shared,
    channel: Channel,
    events: Vec<CustomerEvent>,
) -> anyhow::Result<Vec<CustomerEvent>> {
    let mut fresh = Vec::with_capacity(events.len());
    for event in events {
        let key = store::sent_key(channel, &event.event_id);
        let (sent, _) = store::read(&shared.buckets.sent, &key).await?;
        if sent.is_none() {
            fresh.push(event);
        }
    }
    Ok(fresh)
}

/// The message of `notice` on `channel`: its id and encoded payload; `None` without an address for it.
fn render(
    shared: &Shared,
    channel: Channel,
    notice: &coalesce::Notice,
) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    Ok(match channel {
        Channel::Email => crate::render::email(&shared.templates, notice)?
            .map(|m| (m.message_id.clone(), m.encode_to_vec())),
        Channel::Sms => crate::render::sms(&shared.templates, notice)?
            .map(|m| (m.message_id.clone(), m.encode_to_vec())),
    })
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
