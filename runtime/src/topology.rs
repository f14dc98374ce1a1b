//! Everything a prefix has on the JetStream server, as data: its streams, its key-value buckets and the
//! durable consumers of each role. Provisioning (`backorder-provision streams`, or a service started with
//! `BO_PROVISION=true`) creates them from here; the services open their consumers from here; the NATS
//! permissions (`permissions`) are derived from here. One list, so the three cannot disagree.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};

use crate::subjects::{StreamKind, Subjects};

/// A durable pull consumer: who owns it, on which stream, for which subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The role (and NATS user) that pulls from it.
    pub role: &'static str,
    pub stream: StreamKind,
    /// The durable name, unique per stream.
    pub name: &'static str,
    pub filters: Vec<String>,
    /// At most this many messages out at once across every instance; 1 keeps stream order.
    pub max_ack_pending: i64,
    /// Delivered to one instance at a time (a pinned-client priority group, [`PINNED_GROUP`]): in stream
    /// order, many messages in flight, and no other instance handling any of them meanwhile.
    pub pinned: bool,
}

/// The priority group a [`ConsumerSpec::pinned`] consumer's instances pull in.
pub const PINNED_GROUP: &str = "active";

/// The durable consumers' names.
pub mod consumer {
    pub const ORDER_INTAKE: &str = "order-intake";
    pub const ALLOCATION: &str = "allocation";
    pub const REPLENISHMENT_TRIGGER: &str = "replenishment-trigger";
    pub const REPLENISHMENT_POLICIES: &str = "replenishment-trigger-policies";
    pub const NOTIFIER: &str = "notifier";
    pub const NOTIFIER_PREFERENCES: &str = "notifier-preferences";
    /// The notifier's SMTP adapter on the outbound stream (for `<p>.out.notify.email`), only when SMTP is
    /// configured: the notifier makes it itself, with the start position `BO_SMTP_REPLAY_FROM` asks for.
    pub const NOTIFIER_SMTP: &str = "notifier-smtp";
}

/// Every durable consumer of a prefix.
pub fn consumers(s: &Subjects) -> Vec<ConsumerSpec> {
    use consumer::*;
    let spec = |role, stream, name, filters, max_ack_pending| ConsumerSpec {
        role,
        stream,
        name,
        filters,
        max_ack_pending,
        pinned: false,
    };
    vec![
        spec(
            "order-intake",
            StreamKind::Inbound,
            ORDER_INTAKE,
            vec![s.order_placed()],
            10_000,
        ),
        spec(
            "allocation",
            StreamKind::Internal,
            ALLOCATION,
            vec![s.order_accepted()],
            10_000,
        ),
        spec(
            "allocation",
            StreamKind::Inbound,
            ALLOCATION,
            vec![
                s.stock_received(),
                s.stock_adjusted(),
                s.shipment_confirmed(),
                s.order_cancel(),
                s.sku_upserted(),
                s.supply_updated(),
                s.delay_answer(),
                s.order_priority(),
            ],
            10_000,
        ),
        // One instance at a time, in stream order: a SKU's reports and the ticks that send its requests must
        // not overtake each other. The pinned instance takes them in batches.
        ConsumerSpec {
            pinned: true,
            ..spec(
                "replenishment-trigger",
                StreamKind::Internal,
                REPLENISHMENT_TRIGGER,
                vec![s.reorder_needed(), s.replenishment_tick()],
                1_024,
            )
        },
        spec(
            "replenishment-trigger",
            StreamKind::Inbound,
            REPLENISHMENT_POLICIES,
            vec![s.sku_upserted()],
            10_000,
        ),
        spec(
            "notifier",
            StreamKind::Internal,
            NOTIFIER,
            vec![s.customer_event()],
            10_000,
        ),
        spec(
            "notifier",
            StreamKind::Inbound,
            NOTIFIER_PREFERENCES,
            vec![s.customer_preferences()],
            10_000,
        ),
    ]
}

/// The consumer `name` on `stream`; a name not in [`consumers`] is a programming error.
pub fn consumer_spec(s: &Subjects, stream: StreamKind, name: &str) -> ConsumerSpec {
    consumers(s)
        .into_iter()
        .find(|c| c.stream == stream && c.name == name)
        .unwrap_or_else(|| panic!("no consumer {name} on the {stream:?} stream in the topology"))
}

/// A key-value bucket and who keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    pub role: &'static str,
    pub name: String,
    pub description: &'static str,
    /// Zero: entries never expire.
    pub max_age: Duration,
}

/// How long the notifier remembers what it sent, so a replayed event is not sent again.
pub const NOTIFIER_SENT_MAX_AGE: Duration = Duration::from_secs(35 * 24 * 3600);

/// Every key-value bucket of a prefix.
pub fn buckets(s: &Subjects) -> Vec<BucketSpec> {
    vec![
        BucketSpec {
            role: "replenishment-trigger",
            name: s.replenishment_bucket(),
            description: "replenishment-trigger: requests per SKU and supplier, sent requests, SKU policies",
            max_age: Duration::ZERO,
        },
        BucketSpec {
            role: "notifier",
            name: s.notifier_bucket(),
            description: "notifier: events waiting for their message, customer preferences",
            max_age: Duration::ZERO,
        },
        BucketSpec {
            role: "notifier",
            name: s.notifier_sent_bucket(),
            description: "notifier: messages sent per event, so a replay does not send again",
            max_age: NOTIFIER_SENT_MAX_AGE,
        },
    ]
}

impl BucketSpec {
    pub fn config(&self, replicas: usize) -> kv::Config {
        kv::Config {
            bucket: self.name.clone(),
            description: self.description.to_string(),
            history: 1,
            max_age: self.max_age,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        }
    }
}

/// The stream of `kind` for a prefix, with `replicas` copies.
pub fn stream_config(s: &Subjects, kind: StreamKind, replicas: usize) -> stream::Config {
    stream::Config {
        name: s.stream(kind),
        subjects: s.stream_subjects(kind),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_age: Duration::from_secs(30 * 24 * 3600),
        // Long enough to cover a publisher's retries after a reconnect.
        duplicate_window: Duration::from_secs(10 * 60),
        // Control messages are states (the clock reads ...): only the latest matters.
        max_messages_per_subject: if kind == StreamKind::Control { 1 } else { 0 },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_unique_per_stream_and_filters_stay_in_their_stream() {
        let s = Subjects::new("bo").unwrap();
        let all = consumers(&s);
        for (i, a) in all.iter().enumerate() {
            assert!(
                !all[i + 1..]
                    .iter()
                    .any(|b| b.stream == a.stream && b.name == a.name),
                "{} twice on {:?}",
                a.name,
                a.stream
            );
            let captured = s.stream_subjects(a.stream);
            for filter in &a.filters {
                let inside = captured.iter().any(|c| {
                    c == filter || c.strip_suffix('>').is_some_and(|p| filter.starts_with(p))
                });
                assert!(
                    inside,
                    "{filter} of {} is not in the {:?} stream",
                    a.name, a.stream
                );
            }
        }
    }

    #[test]
    fn every_bucket_of_the_prefix_is_kept_by_someone() {
        let s = Subjects::new("bo").unwrap();
        let names: Vec<String> = buckets(&s).into_iter().map(|b| b.name).collect();
        assert_eq!(names, s.buckets());
    }
}
