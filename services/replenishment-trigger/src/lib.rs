//! replenishment-trigger: reads the shortages allocation reports (`<p>.reorder.needed`) and asks purchasing
//! for what is not requested yet (`<p>.out.purchase.request`), remembering per SKU what it asked for in the
//! key-value bucket `<PREFIX>_REPLENISHMENT`.

pub mod policy;
pub mod store;

use async_nats::jetstream::kv;
use backorder_proto::v1::{PurchaseRequest, PurchaseRequestLine, ReorderNeeded};
use backorder_runtime::config::{ConfigError, Source, parse_or};
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{CommonConfig, time};
use prost::Message as _;
use tracing::Instrument;

use crate::store::Outstanding;

pub const SERVICE: &str = "replenishment-trigger";

/// No purchase request asks for goods further out than this.
pub const MAX_LEAD_TIME_DAYS: u32 = 3650;

/// Purchase requests have no supplier until per-SKU supplier policies exist.
pub const UNASSIGNED_SUPPLIER: &str = "unassigned";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `BO_DEFAULT_LEAD_TIME_DAYS`, default 14: a request's `need_by` is this many days after it is made.
    pub default_lead_time_days: u32,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let key = "BO_DEFAULT_LEAD_TIME_DAYS";
        let default_lead_time_days = parse_or(source, key, 14u32)?;
        if default_lead_time_days > MAX_LEAD_TIME_DAYS {
            return Err(ConfigError::Invalid {
                key: key.into(),
                value: default_lead_time_days.to_string(),
                reason: format!("must be at most {MAX_LEAD_TIME_DAYS} days"),
            });
        }
        Ok(Self {
            common: CommonConfig::from_source(source)?,
            default_lead_time_days,
        })
    }
}

pub struct Application {
    worker: Worker,
    messages: async_nats::jetstream::consumer::pull::Stream,
    trigger: Trigger,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = config.common;
        let filters = vec![common.subjects.reorder_needed()];
        let (worker, messages) =
            Worker::connect(&common, SERVICE, StreamKind::Internal, filters).await?;
        let bus = &worker.bus;
        let bucket = common.subjects.replenishment_bucket();
        let outstanding = match bus.js.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => bus
                .js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description:
                        "replenishment-trigger: units requested per SKU and not yet covered".into(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("creating key-value bucket {bucket}: {e}"))?,
        };
        let trigger = Trigger {
            bus: bus.clone(),
            outstanding,
            lead_time: chrono::TimeDelta::days(config.default_lead_time_days.into()),
        };
        Ok(Self {
            worker,
            messages,
            trigger,
        })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(
            prefix = self.worker.bus.subjects.prefix(),
            "replenishment-trigger running"
        );
        let mut trigger = self.trigger;
        self.worker
            .run_service(self.messages, &mut trigger, shutdown)
            .await
    }
}

/// Decodes a shortage report and checks it. Pure; the error is the reason the event is parked.
pub fn read_event(bytes: &[u8]) -> Result<ReorderNeeded, String> {
    let event =
        ReorderNeeded::decode(bytes).map_err(|e| format!("cannot decode ReorderNeeded: {e}"))?;
    let mut errors = Vec::new();
    if event.event_id.trim().is_empty() {
        errors
            .push("event_id is missing, so a purchase request would have no stable id".to_string());
    }
    if event.sku.trim().is_empty() {
        errors.push("sku is missing".to_string());
    }
    for (field, value) in [
        ("shortage", event.shortage),
        ("backordered", event.backordered),
        ("on_hand", event.on_hand),
        ("inbound", event.inbound),
    ] {
        if value < 0 {
            errors.push(format!("{field} is negative ({value})"));
        }
    }
    if errors.is_empty() {
        Ok(event)
    } else {
        Err(errors.join("; "))
    }
}

struct Trigger {
    bus: Bus,
    outstanding: kv::Store,
    lead_time: chrono::TimeDelta,
}

impl Handler for Trigger {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        // One after the other: two reports for one SKU in a batch must see each other's outstanding quantity.
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "reorder",
                sku = tracing::field::Empty,
                event_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.trigger(delivery).instrument(span).await);
        }
        outcomes
    }
}

impl Trigger {
    async fn trigger(&self, delivery: &Delivery) -> Outcome {
        let event = match read_event(&delivery.payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(%reason, "reorder event refused");
                return Outcome::Reject(reason);
            }
        };
        let span = tracing::Span::current();
        span.record("sku", event.sku.as_str());
        span.record("event_id", event.event_id.as_str());
        let key = store::key(&event.sku);

        // What we asked for before, and the revision to write against (None: the key was never written).
        let (previous, revision) = match self.outstanding.entry(key.as_str()).await {
            Ok(None) => (0, None),
            Ok(Some(entry)) => match entry.operation {
                kv::Operation::Put => match Outstanding::decode(&entry.value) {
                    Ok(stored) => (stored.outstanding, Some(entry.revision)),
                    // Not the event's fault: retry, and if an operator does not repair the value in time, the
                    // event is parked with this message.
                    Err(error) => {
                        return Outcome::Retry(format!(
                            "outstanding of {:?} under key {key}: {error}",
                            event.sku
                        ));
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => (0, Some(entry.revision)),
            },
            Err(error) => {
                return Outcome::Retry(format!(
                    "reading the outstanding quantity under key {key}: {error}"
                ));
            }
        };

        let decision = policy::decide(event.shortage, previous);
        if decision.request > 0 {
            let now = chrono::Utc::now();
            let request = PurchaseRequest {
                request_id: format!("pr/{}", event.event_id),
                supplier_id: UNASSIGNED_SUPPLIER.to_string(),
                lines: vec![PurchaseRequestLine {
                    sku: event.sku.clone(),
                    quantity: decision.request,
                    need_by: Some(time::to_proto(now + self.lead_time)),
                }],
                reason: policy::reason(&event, &decision),
                created_at: Some(time::to_proto(now)),
            };
            // Published before the outstanding quantity is written. Should we stop in between, the event comes
            // again, reads the old quantity, makes the same decision and publishes under the same request id,
            // which JetStream's duplicate window drops; then the write happens. Writing first instead could
            // lose the request for good.
            let subject = self.bus.subjects.purchase_request();
            if let Err(error) = self
                .bus
                .publish(subject, &request.request_id, &request)
                .await
            {
                return Outcome::Retry(format!("{error:#}"));
            }
            tracing::info!(
                request_id = %request.request_id,
                quantity = decision.request,
                shortage = event.shortage,
                already_requested = decision.outstanding - decision.request,
                "purchase request published"
            );
        } else {
            tracing::debug!(
                shortage = event.shortage,
                outstanding = previous,
                "shortage already requested"
            );
        }

        if decision.outstanding == previous {
            return Outcome::Done;
        }
        let value = Outstanding {
            outstanding: decision.outstanding,
        }
        .encode();
        // Written only if nobody wrote since we read: an instance that handled another report for this SKU in
        // between makes us read again (the redelivery) instead of overwriting its quantity.
        let written = match revision {
            Some(revision) => self
                .outstanding
                .update(key.as_str(), value, revision)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => self
                .outstanding
                .create(key.as_str(), value)
                .await
                .map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
        };
        match written {
            Ok(_) => {
                tracing::debug!(
                    from = previous,
                    to = decision.outstanding,
                    "outstanding quantity stored"
                );
                Outcome::Done
            }
            Err((true, _)) => Outcome::Retry(format!(
                "the outstanding quantity under key {key} changed while this event was handled; it is read again"
            )),
            Err((false, error)) => Outcome::Retry(format!(
                "writing the outstanding quantity under key {key}: {error}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn event() -> ReorderNeeded {
        ReorderNeeded {
            sku: "SKU-A".into(),
            shortage: 30,
            backordered: 30,
            on_hand: 0,
            inbound: 0,
            event_id: "ev-1".into(),
            occurred_at: None,
        }
    }

    #[test]
    fn a_good_event_is_read() {
        assert_eq!(read_event(&event().encode_to_vec()), Ok(event()));
    }

    #[test]
    fn bad_events_are_refused_by_name() {
        let refused = |change: fn(&mut ReorderNeeded)| {
            let mut e = event();
            change(&mut e);
            read_event(&e.encode_to_vec()).unwrap_err()
        };
        assert!(refused(|e| e.event_id.clear()).starts_with("event_id is missing"));
        assert_eq!(refused(|e| e.sku = "  ".into()), "sku is missing");
        assert_eq!(refused(|e| e.shortage = -1), "shortage is negative (-1)");
        assert_eq!(
            refused(|e| e.backordered = -2),
            "backordered is negative (-2)"
        );
        assert_eq!(refused(|e| e.on_hand = -3), "on_hand is negative (-3)");
        assert_eq!(refused(|e| e.inbound = -4), "inbound is negative (-4)");
        let all = refused(|e| {
            *e = ReorderNeeded {
                shortage: -1,
                ..Default::default()
            }
        });
        assert_eq!(all.split("; ").count(), 3, "{all}");
        assert!(
            read_event(b"\x0a\x05ab")
                .unwrap_err()
                .starts_with("cannot decode ReorderNeeded")
        );
    }

    #[test]
    fn config_defaults_and_bad_values() {
        let config = Config::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(config.default_lead_time_days, 14);
        assert_eq!(config.common.subjects.prefix(), "bo");

        let source = HashMap::from([("BO_DEFAULT_LEAD_TIME_DAYS", "30"), ("BO_PREFIX", "shop1")]);
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.default_lead_time_days, 30);
        assert_eq!(config.common.subjects.prefix(), "shop1");

        for bad in ["-1", "two weeks", "3651"] {
            let source = HashMap::from([("BO_DEFAULT_LEAD_TIME_DAYS", bad)]);
            let error = Config::from_source(&source).unwrap_err().to_string();
            assert!(error.contains("BO_DEFAULT_LEAD_TIME_DAYS"), "{error}");
        }
        let source = HashMap::from([("BO_PREFIX", "Bad Prefix")]);
        assert!(Config::from_source(&source).is_err());
    }
}
