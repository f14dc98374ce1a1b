//! What the notifier keeps in JetStream key-value buckets:
//!
//! - `<P>_NOTIFIER`: `pending.<channel>.<order>`: the events of an order waiting for their message (JSON,
//!   see [`Pending`]); `pref.<customer>`: a customer's [`Preferences`](crate::preferences::Preferences).
//! - `<P>_NOTIFIER_SENT` (entries expire after 35 days): `event.<channel>.<event>`: the id of the message
//!   that told the event; `smtp.<message>`: an email the SMTP adapter handed to the server.
//!
//! Ids become keys as the first 32 hex digits of their SHA-256, so any id makes a valid key.

use std::time::Duration;

use async_nats::jetstream::kv;
use backorder_proto::v1::CustomerEvent;
use chrono::{DateTime, Utc};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::coalesce::Channel;

/// How long the record of a sent message is kept: longer than the streams keep events (30 days), so a replay
/// of anything still in a stream finds it.
pub const SENT_MAX_AGE: Duration = backorder_runtime::topology::NOTIFIER_SENT_MAX_AGE;

pub fn hash(id: &str) -> String {
    hex::encode(&Sha256::digest(id.as_bytes())[..16])
}

pub fn pending_key(channel: Channel, order_id: &str) -> String {
    format!("pending.{}.{}", channel.name(), hash(order_id))
}

/// The keys of customers' preferences, as a watch pattern.
pub const PREFERENCES: &str = "pref.>";

pub fn preferences_key(customer_id: &str) -> String {
    format!("pref.{}", hash(customer_id))
}

pub fn sent_key(channel: Channel, event_id: &str) -> String {
    format!("event.{}.{}", channel.name(), hash(event_id))
}

pub fn smtp_key(message_id: &str) -> String {
    format!("smtp.{}", hash(message_id))
}

/// The events of one order waiting for one channel's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub order_id: String,
    pub channel: Channel,
    /// When the first of them arrived (on the service's clock): the coalescing window starts then.
    pub first_at: DateTime<Utc>,
    /// The events, protobuf-encoded, as hex, in arrival order.
    pub events: Vec<String>,
    /// Their ids, in the same order.
    pub event_ids: Vec<String>,
    /// The trace context (`traceparent`, `tracestate`) of the newest event, which the message continues.
    #[serde(default)]
    pub trace: Vec<(String, String)>,
    /// The message decided for some of the events, recorded before it is first published; until it is
    /// recorded as sent, every pass publishes exactly it again. Events added meanwhile wait for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<Sending>,
}

/// A message on its way: decided once, from the events in the entry then, and never changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sending {
    /// Its `message_id` and `Nats-Msg-Id`.
    pub message_id: String,
    /// Every event it settles (those it tells, and those found told already or superseded): removed from the
    /// entry once it is sent.
    pub event_ids: Vec<String>,
    /// The events it tells, recorded as sent under `message_id` once it is published.
    pub told: Vec<String>,
    /// The rendered message (`EmailMessage` or `SmsMessage`), protobuf-encoded, as hex.
    pub payload: String,
    /// The trace context of the newest event it tells.
    #[serde(default)]
    pub trace: Vec<(String, String)>,
    pub decided_at: DateTime<Utc>,
}

impl Pending {
    pub fn new(order_id: &str, channel: Channel, first_at: DateTime<Utc>) -> Self {
        Self {
            order_id: order_id.to_string(),
            channel,
            first_at,
            events: Vec::new(),
            event_ids: Vec::new(),
            trace: Vec::new(),
            sending: None,
        }
    }

    /// Adds `event` unless it is there already; false when it was.
    pub fn add(&mut self, event: &CustomerEvent) -> bool {
        if self.event_ids.contains(&event.event_id) {
            return false;
        }
        self.events.push(hex::encode(event.encode_to_vec()));
        self.event_ids.push(event.event_id.clone());
        true
    }

    pub fn decode_events(&self) -> Result<Vec<CustomerEvent>, String> {
        self.events
            .iter()
            .map(|h| {
                let bytes = hex::decode(h).map_err(|e| e.to_string())?;
                CustomerEvent::decode(bytes.as_slice()).map_err(|e| e.to_string())
            })
            .collect()
    }

    /// Keeps only the events `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let (events, ids): (Vec<_>, Vec<_>) = self
            .events
            .drain(..)
            .zip(self.event_ids.drain(..))
            .filter(|(_, id)| keep(id))
            .unzip();
        self.events = events;
        self.event_ids = ids;
    }

    pub fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Channel::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown channel {name:?}")))
    }
}

/// The two buckets, created if missing.
#[derive(Clone)]
pub struct Buckets {
    pub state: kv::Store,
    pub sent: kv::Store,
}

impl Buckets {
    pub async fn open(bus: &backorder_runtime::jetstream::Bus) -> anyhow::Result<Self> {
        let (state, sent) = (
            bus.subjects.notifier_bucket(),
            bus.subjects.notifier_sent_bucket(),
        );
        let spec = |name: &str| {
            backorder_runtime::topology::buckets(&bus.subjects)
                .into_iter()
                .find(|b| b.name == name)
                .expect("the topology lists the notifier's buckets")
        };
        Ok(Self {
            state: bus.key_value(&spec(&state)).await?,
            sent: bus.key_value(&spec(&sent)).await?,
        })
    }
}

/// The value under `key` with its revision; `None` when absent or deleted (then the revision to write
/// against, if the key ever existed).
pub async fn read(
    store: &kv::Store,
    key: &str,
) -> anyhow::Result<(Option<bytes::Bytes>, Option<u64>)> {
    let stored = backorder_runtime::kv::read(store, key).await?;
    Ok((stored.value, stored.revision))
}

/// Writes `value` under `key` only if it is still at `revision` (`None`: never written); the new revision,
/// or `Ok(None)` when someone wrote in between.
pub async fn write(
    store: &kv::Store,
    key: &str,
    value: bytes::Bytes,
    revision: Option<u64>,
) -> anyhow::Result<Option<u64>> {
    Ok(backorder_runtime::kv::write(store, key, value, revision).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_entries_round_trip_and_ignore_repeats() {
        let event = CustomerEvent {
            event_id: "e1".into(),
            order_id: "SO 1/ü".into(),
            ..Default::default()
        };
        let mut pending = Pending::new("SO 1/ü", Channel::Sms, DateTime::UNIX_EPOCH);
        assert!(pending.add(&event));
        assert!(!pending.add(&event));
        let back = Pending::decode(&pending.encode()).unwrap();
        assert_eq!(back, pending);
        assert_eq!(back.decode_events().unwrap(), vec![event]);
        let key = pending_key(Channel::Sms, "SO 1/ü");
        assert!(
            key.starts_with("pending.sms.") && key.len() == "pending.sms.".len() + 32,
            "{key}"
        );
        let mut two = pending.clone();
        two.add(&CustomerEvent {
            event_id: "e2".into(),
            ..Default::default()
        });
        two.retain(|id| id != "e1");
        assert_eq!(two.event_ids, ["e2"]);
        assert_eq!(two.events.len(), 1);
    }

    #[test]
    fn a_decided_message_round_trips_and_entries_of_the_last_release_still_read() {
        let mut pending = Pending::new("SO-1", Channel::Email, DateTime::UNIX_EPOCH);
        pending.sending = Some(Sending {
            message_id: "email/e1".into(),
            event_ids: vec!["e0".into(), "e1".into()],
            told: vec!["e1".into()],
            payload: "0a01".into(),
            trace: vec![],
            decided_at: DateTime::UNIX_EPOCH,
        });
        assert_eq!(Pending::decode(&pending.encode()).unwrap(), pending);
        let old = r#"{"order_id":"SO-1","channel":"sms","first_at":"2026-01-10T10:00:00Z","events":[],"event_ids":[]}"#;
        assert_eq!(Pending::decode(old.as_bytes()).unwrap().sending, None);
    }
}
