//! notifier: turns the customer events allocation publishes (`<p>.customer.event`) into emails
//! (`<p>.out.notify.email`) and SMS (`<p>.out.notify.sms`) for the gateways, rendered from templates in the
//! customer's language, several events of an order within a short window told in one message, each channel
//! only when the customer has an address for it and has not opted out, SMS held through the customer's
//! quiet hours. With `BO_SMTP_URL` it also delivers the emails over SMTP itself ([`smtp`]).
//!
//! The flow: [`Intake`] stores each event under its order and channel in the `<P>_NOTIFIER` bucket (acked
//! only once stored); [`flush`] sends what is due and records the events it told in `<P>_NOTIFIER_SENT`, so
//! a redelivered or replayed event never yields a second message.

pub mod coalesce;
pub mod config;
pub mod context;
pub mod defaults;
pub mod flush;
pub mod locale;
pub mod preferences;
pub mod quiet;
pub mod render;
pub mod shared;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod templates;

use backorder_runtime::vars::Var;
use std::sync::Arc;

use backorder_proto::v1::CustomerEvent;
use backorder_proto::v1::customer_event::Kind;
use backorder_runtime::Service;
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::subjects::StreamKind;
use futures::StreamExt as _;
use prost::Message as _;
use tracing::Instrument;

use crate::coalesce::Channel;
use crate::store::{Buckets, Pending};
use crate::templates::Templates;

pub use config::Config;

/// The environment variables this service reads besides [`backorder_runtime::vars::COMMON`].
pub const ENV: &[Var] = &[
    Var {
        name: "BO_NOTIFY_COALESCE_SECS",
        default: Some("60"),
        about: "the events of an order within this long of the first become one message; 0: at once",
        secret: false,
    },
    Var {
        name: "BO_SMS_QUIET_HOURS",
        default: Some("21:00-08:00"),
        about: "an SMS due in this span of the customer's local time is held until it ends; off",
        secret: false,
    },
    Var {
        name: "BO_DEFAULT_TIME_ZONE",
        default: Some("UTC"),
        about: "the time zone of customers without a valid one (IANA name)",
        secret: false,
    },
    Var {
        name: "BO_TEMPLATES_DIR",
        default: None,
        about: "a directory of <locale>/<kind>.<part>.j2 templates over the shipped ones",
        secret: false,
    },
    Var {
        name: "BO_SMTP_URL",
        default: None,
        about: "deliver emails over SMTP, e.g. smtp://127.0.0.1:25 or smtps://user:pass@host; unset: no SMTP",
        secret: true,
    },
    Var {
        name: "BO_SMTP_FROM",
        default: Some("backorder@localhost"),
        about: "the sender of emails over SMTP",
        secret: false,
    },
    Var {
        name: "BO_SMTP_TIMEOUT_SECS",
        default: Some("30"),
        about: "per SMTP command",
        secret: false,
    },
    Var {
        name: "BO_SMTP_REPLAY_FROM",
        default: None,
        about: "where a new notifier-smtp consumer starts: all, or an RFC 3339 time; unset: new emails",
        secret: false,
    },
];

/// Every environment variable the binary reads: the shared ones, then [`ENV`].
pub fn env_vars() -> Vec<Var> {
    backorder_runtime::vars::service_vars(SERVICE, ENV)
}

pub use shared::{SERVICE, Shared, opted_out};
/// The durable consumer of `<p>.in.customer.preferences`.
pub const PREFERENCES_CONSUMER: &str = backorder_runtime::topology::consumer::NOTIFIER_PREFERENCES;

pub struct Application {
    service: Service,
    events: backorder_runtime::jetstream::Messages,
    preferences: backorder_runtime::jetstream::Messages,
    smtp: Option<(Worker, backorder_runtime::jetstream::Messages, smtp::Smtp)>,
    shared: Arc<Shared>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Templates first: a broken one stops the service before it takes any event.
        let templates = Templates::load(config.templates_dir.as_deref())?;
        let common = &config.common;
        let service = Service::connect(common, SERVICE).await?;
        let events = service.consumer(StreamKind::Internal, SERVICE).await?;
        let preferences = service
            .consumer(StreamKind::Inbound, PREFERENCES_CONSUMER)
            .await?;
        let buckets = Buckets::open(&service.bus).await?;
        let smtp = match &config.smtp {
            None => None,
            Some(smtp_config) => {
                let adapter = smtp::Smtp::new(smtp_config, buckets.sent.clone())?;
                // Slow sends: few at a time, so none waits out its ack timer in the batch.
                let batch_size = common.batch_size.min(4);
                let messages =
                    smtp::consumer(&service.bus, smtp_config.replay_from, batch_size).await?;
                // The runtime's loop settles each email (and keeps the batch in hand alive while it is sent).
                let smtp_worker = Worker {
                    batch_size,
                    ..service.worker(smtp::SERVICE)
                };
                // Pulled a few at a time (see smtp::consumer): a consumer the loop cannot make again by itself;
                // a deleted one stops the service, and a restart makes it again.
                Some((smtp_worker, messages.into(), adapter))
            }
        };
        let shared = Arc::new(Shared {
            bus: service.bus.clone(),
            buckets,
            templates,
            config,
            stored: tokio::sync::Notify::new(),
            stored_keys: Default::default(),
            preferences: backorder_runtime::watched::Watched::new(store::PREFERENCES),
        });
        Ok(Self {
            service,
            events,
            preferences,
            smtp,
            shared,
        })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = &self.shared.config;
        tracing::info!(
            coalesce_secs = config.coalesce.as_secs(),
            quiet_hours = ?config.quiet_hours,
            smtp = config.smtp.is_some(),
            locales = ?self.shared.templates.locales().collect::<Vec<_>>(),
            "notifier settings"
        );
        let mut intake = Intake {
            shared: self.shared.clone(),
        };
        let mut preferences = PreferencesHandler {
            shared: self.shared.clone(),
        };
        let worker = self.service.worker(SERVICE);
        let (events, preference_messages) = (self.events, self.preferences);
        let (shared, smtp, clock) = (self.shared, self.smtp, self.service.clock.clone());
        self.service
            .run(shutdown, |shutdown| async move {
                let smtp = async {
                    match smtp {
                        Some((worker, messages, mut adapter)) => {
                            worker.run(messages, &mut adapter, shutdown.clone()).await
                        }
                        None => Ok(()),
                    }
                };
                let watch = async {
                    shared
                        .preferences
                        .watch(&shared.buckets.state, shutdown.clone())
                        .await;
                    anyhow::Ok(())
                };
                tokio::try_join!(
                    worker.run(events, &mut intake, shutdown.clone()),
                    worker.run(preference_messages, &mut preferences, shutdown.clone()),
                    flush::run(shared.clone(), clock, shutdown.clone()),
                    smtp,
                    watch,
                )?;
                Ok(())
            })
            .await
    }
}

/// Decodes a customer event and checks it has what every notification needs. Pure; the error is the reason
/// the event is parked.
pub fn read_event(bytes: &[u8]) -> Result<CustomerEvent, String> {
    let event =
        CustomerEvent::decode(bytes).map_err(|e| format!("cannot decode CustomerEvent: {e}"))?;
    let mut missing = Vec::new();
    if event.event_id.trim().is_empty() {
        missing
            .push("event_id is missing, so the notifications would have no stable id".to_string());
    }
    if event.order_id.trim().is_empty() {
        missing.push(
            "order_id is missing, so the customer could not tell which order it is about"
                .to_string(),
        );
    }
    if event.customer.is_none() {
        missing.push("customer is missing, so there is nobody to notify".to_string());
    }
    match Kind::try_from(event.kind) {
        Ok(Kind::Unspecified) => {
            missing.push("kind is KIND_UNSPECIFIED, so there is nothing to tell".to_string())
        }
        Ok(_) => {}
        Err(_) => missing.push(format!(
            "kind {} is not a known CustomerEvent.Kind",
            event.kind
        )),
    }
    if missing.is_empty() {
        Ok(event)
    } else {
        Err(missing.join("; "))
    }
}

struct Intake {
    shared: Arc<Shared>,
}

impl Handler for Intake {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        // Events of one order are taken in order (they coalesce in arrival order); orders side by side.
        let mut orders: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, delivery) in batch.iter().enumerate() {
            let order = CustomerEvent::decode(delivery.payload.as_ref())
                .map(|e| e.order_id)
                .unwrap_or_default();
            orders.entry(order).or_default().push(i);
        }
        let this = &*self;
        let taken: Vec<Vec<(usize, Outcome)>> = futures::stream::iter(orders.into_values())
            .map(|indices| async move {
                let mut out = Vec::with_capacity(indices.len());
                for i in indices {
                    let delivery = &batch[i];
                    let span = tracing::info_span!(
                        "customer_event",
                        order_id = tracing::field::Empty,
                        event_id = tracing::field::Empty,
                        seq = delivery.stream_sequence
                    );
                    backorder_runtime::trace::follow(&span, &delivery.trace);
                    out.push((i, this.take(delivery).instrument(span).await));
                }
                out
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut outcomes = vec![Outcome::Done; batch.len()];
        for (i, outcome) in taken.into_iter().flatten() {
            outcomes[i] = outcome;
        }
        if outcomes.contains(&Outcome::Done) {
            self.shared.stored.notify_one();
        }
        outcomes
    }
}

impl Intake {
    async fn take(&self, delivery: &Delivery) -> Outcome {
        let event = match read_event(&delivery.payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(%reason, "customer event refused");
                return Outcome::Reject(reason);
            }
        };
        let span = tracing::Span::current();
        span.record("order_id", event.order_id.as_str());
        span.record("event_id", event.event_id.as_str());
        let customer = event.customer.clone().unwrap_or_default();
        let kind = Kind::try_from(event.kind).map_or("?", |k| k.as_str_name());
        for channel in Channel::ALL {
            if channel.address(&customer).is_none() {
                tracing::debug!(
                    channel = channel.name(),
                    kind,
                    "no address, channel skipped"
                );
                continue;
            }
            match self.store(&event, &delivery.trace, channel).await {
                Ok(what) => {
                    metrics::counter!("bo_notifier_events_total", "channel" => channel.name(), "outcome" => what)
                        .increment(1);
                    tracing::info!(channel = channel.name(), kind, what, "customer event taken");
                }
                Err(error) => return Outcome::Retry(format!("{error:#}")),
            }
        }
        Outcome::Done
    }

    /// Adds the event to its order's pending entry for `channel`; what became of it.
    async fn store(
        &self,
        event: &CustomerEvent,
        trace: &[(String, String)],
        channel: Channel,
    ) -> anyhow::Result<&'static str> {
        // Whether the event was told already, and whether the customer opted out, is asked when the entry is
        // sent (an opt-out may come during the window): here the event is only stored.
        let buckets = &self.shared.buckets;
        let key = store::pending_key(channel, &event.order_id);
        // Without a coalescing window a new entry is due as it is made: its message is decided now.
        if self.shared.config.coalesce.is_zero() {
            let now = self.shared.config.common.clock.now();
            let mut pending = Pending::new(&event.order_id, channel, now);
            pending.add(event);
            pending.trace = trace.to_vec();
            if flush::send_at_once(&self.shared, &key, pending, event.clone(), now).await? {
                return Ok("decided");
            }
        }
        // Another instance (or the flusher) may write the same key: compare and swap, and read again on a
        // conflict.
        for _ in 0..10 {
            let (value, revision) = store::read(&buckets.state, &key).await?;
            let mut pending = match value {
                Some(bytes) => Pending::decode(&bytes).unwrap_or_else(|error| {
                    tracing::warn!(%error, key, "unreadable pending entry replaced");
                    Pending::new(
                        &event.order_id,
                        channel,
                        self.shared.config.common.clock.now(),
                    )
                }),
                None => Pending::new(
                    &event.order_id,
                    channel,
                    self.shared.config.common.clock.now(),
                ),
            };
            if !pending.add(event) {
                return Ok("already_pending");
            }
            pending.trace = trace.to_vec();
            if store::write(&buckets.state, &key, pending.encode(), revision)
                .await?
                .is_some()
            {
                self.shared.note_stored(&key);
                return Ok("pending");
            }
        }
        anyhow::bail!("{key} kept changing while the event was added")
    }
}

struct PreferencesHandler {
    shared: Arc<Shared>,
}

impl Handler for PreferencesHandler {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "customer_preferences",
                customer_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.set(delivery).instrument(span).await);
        }
        outcomes
    }
}

impl PreferencesHandler {
    async fn set(&self, delivery: &Delivery) -> Outcome {
        let (customer_id, update) = match preferences::read(&delivery.payload) {
            Ok(read) => read,
            Err(reason) => {
                tracing::warn!(%reason, "customer preferences refused");
                return Outcome::Reject(reason);
            }
        };
        tracing::Span::current().record("customer_id", customer_id.as_str());
        let key = store::preferences_key(&customer_id);
        let state = &self.shared.buckets.state;
        for _ in 0..10 {
            let (value, revision) = match store::read(state, &key).await {
                Ok(read) => read,
                Err(error) => return Outcome::Retry(format!("{error:#}")),
            };
            let current = value.and_then(|b| serde_json::from_slice(&b).ok());
            let Some(next) = preferences::newest(current.as_ref(), update.clone()) else {
                tracing::info!("older than the preferences kept, nothing changes");
                return Outcome::Done;
            };
            let bytes: bytes::Bytes = serde_json::to_vec(&next).unwrap_or_default().into();
            match store::write(state, &key, bytes.clone(), revision).await {
                Ok(Some(revision)) => {
                    // What this instance reads next sees it at once, before the watch brings it.
                    self.shared.preferences.offer(
                        &key,
                        backorder_runtime::kv::Stored {
                            value: Some(bytes),
                            revision: Some(revision),
                        },
                    );
                    tracing::info!(
                        email_opt_out = next.email_opt_out,
                        sms_opt_out = next.sms_opt_out,
                        "customer preferences stored"
                    );
                    return Outcome::Done;
                }
                Ok(None) => continue,
                Err(error) => return Outcome::Retry(format!("{error:#}")),
            }
        }
        Outcome::Retry(format!("{key} kept changing"))
    }
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::Customer;

    fn event() -> CustomerEvent {
        CustomerEvent {
            event_id: "ev-1".into(),
            kind: Kind::Backordered as i32,
            order_id: "SO-1".into(),
            customer: Some(Customer {
                email: "buyer@example.com".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_event_is_read() {
        assert_eq!(read_event(&event().encode_to_vec()), Ok(event()));
    }

    #[test]
    fn events_that_cannot_be_told_are_refused_with_the_reason() {
        let refused = |change: fn(&mut CustomerEvent)| {
            let mut e = event();
            change(&mut e);
            read_event(&e.encode_to_vec()).unwrap_err()
        };
        assert!(refused(|e| e.event_id.clear()).starts_with("event_id is missing"));
        assert!(refused(|e| e.customer = None).starts_with("customer is missing"));
        assert!(refused(|e| e.order_id = " ".into()).starts_with("order_id is missing"));
        assert!(refused(|e| e.kind = Kind::Unspecified as i32).contains("KIND_UNSPECIFIED"));
        assert!(refused(|e| e.kind = 17).contains("kind 17 is not a known"));
        let all = refused(|e| *e = CustomerEvent::default());
        assert_eq!(all.split("; ").count(), 4, "{all}");
        assert!(
            read_event(b"\xff\xff")
                .unwrap_err()
                .starts_with("cannot decode CustomerEvent")
        );
    }
}
