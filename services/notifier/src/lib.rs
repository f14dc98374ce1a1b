//! notifier: turns the customer events allocation publishes (`<p>.customer.event`) into emails
//! (`<p>.out.notify.email`) and SMS (`<p>.out.notify.sms`) for the gateways, rendered from templates in the
//! customer's language, several events of an order within a short window told in one message, each channel
//! only when the customer has an address for it and has not opted out, SMS held through the customer's
//! quiet hours. With `BO_SMTP_URL` it also delivers the emails over SMTP itself ([`smtp`]).
//!
//! The flow: intake (`intake.rs`) stores each event under its order and channel in the `<P>_NOTIFIER` bucket (acked
//! only once stored); [`flush`] sends what is due and records the events it told in `<P>_NOTIFIER_SENT`, so
//! a redelivered or replayed event never yields a second message.

pub mod coalesce;
pub mod config;
pub mod context;
pub mod defaults;
mod entry;
pub mod flush;
mod intake;
pub mod locale;
pub mod preferences;
pub mod quiet;
pub mod render;
mod send;
pub mod shared;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod templates;

use backorder_runtime::vars::Var;
use std::sync::Arc;

use backorder_runtime::Service;
use backorder_runtime::consume::{Delivery, Handler, Outcome, Worker};
use backorder_runtime::subjects::StreamKind;
use tracing::Instrument;

use crate::intake::Intake;
use crate::store::Buckets;
use crate::templates::Templates;

pub use config::Config;
pub use intake::read_event;

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
