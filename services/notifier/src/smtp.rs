//! Email delivery over SMTP (`lettre`), off unless `BO_SMTP_URL` is set: a durable consumer `notifier-smtp`
//! reads `<p>.out.notify.email` and hands each message to the server, with its `message_id` as the email's
//! `Message-ID`. A temporary failure (4xx, no connection, a timeout) is retried with a growing pause; a
//! permanent one (5xx, an address the server refuses) parks the message in `<p>.dlq.notifier-smtp`.
//!
//! At least once: `smtp.<h>` in `<P>_NOTIFIER_SENT` is set to `sending` before the SMTP transaction and to
//! `accepted` once the server took the email. A redelivery finding `accepted` sends nothing; one finding
//! `sending` (the transaction was cut off: a crash, a lost connection) sends again with the same
//! `Message-ID`, which receivers use to drop the copy. A lost email is the worse harm than a rare duplicate.
//!
//! The consumer is created to start at new emails (`BO_SMTP_REPLAY_FROM`: `all` or a time to replay), so
//! turning SMTP on does not send the stream's past again; an existing consumer keeps its position.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::kv;
use backorder_proto::v1::EmailMessage;
use backorder_runtime::consume::{Delivery, Handler, Outcome};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::config::{Replay, SmtpConfig};
use crate::store;

/// The adapter's consumer name and dead-letter subject (`<p>.dlq.notifier-smtp`).
pub const SERVICE: &str = backorder_runtime::topology::consumer::NOTIFIER_SMTP;

/// What `smtp.<h>` says of an email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Record {
    /// A transaction was started at `at` (it may have ended in the server's hands).
    Sending { at: DateTime<Utc> },
    /// The server accepted it at `at`.
    Accepted { at: DateTime<Utc> },
}

impl Record {
    /// A record as stored; the previous release wrote the bare message id, and only once it was accepted.
    pub fn read(bytes: &[u8]) -> Record {
        serde_json::from_slice(bytes).unwrap_or(Record::Accepted {
            at: DateTime::UNIX_EPOCH,
        })
    }
}

/// The deliver policy a new `notifier-smtp` consumer gets.
pub fn deliver_policy(replay: Replay) -> DeliverPolicy {
    match replay {
        Replay::New => DeliverPolicy::New,
        Replay::All => DeliverPolicy::All,
        Replay::From(start_time) => DeliverPolicy::ByStartTime { start_time },
    }
}

/// Opens (or creates) the `notifier-smtp` consumer, pulling `batch` at a time so no email waits long in this
/// process while its ack timer runs. A consumer's deliver policy cannot change once it exists: an existing
/// one keeps its own (and its position), whatever `BO_SMTP_REPLAY_FROM` says; that is logged.
pub async fn consumer(bus: &Bus, replay: Replay, batch: usize) -> anyhow::Result<pull::Stream> {
    use anyhow::Context as _;
    let stream_name = bus.subjects.stream(StreamKind::Outbound);
    let stream = bus.js.get_stream(&stream_name).await?;
    let wanted = deliver_policy(replay);
    let deliver_policy = match stream.get_consumer::<pull::Config>(SERVICE).await {
        Ok(existing) => {
            let kept = existing.cached_info().config.deliver_policy;
            if replay != Replay::New && kept != wanted {
                tracing::warn!(
                    ?kept,
                    ?wanted,
                    "BO_SMTP_REPLAY_FROM applies when the consumer is created; {SERVICE} exists and continues where it stopped (delete it to replay: nats consumer rm {stream_name} {SERVICE})"
                );
            }
            kept
        }
        Err(_) => wanted,
    };
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(SERVICE.to_string()),
            filter_subjects: vec![bus.subjects.notify_email()],
            ack_policy: AckPolicy::Explicit,
            ack_wait: std::time::Duration::from_secs(30),
            deliver_policy,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating consumer {SERVICE} on {stream_name}"))?;
    consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .messages()
        .await
        .with_context(|| format!("pulling from consumer {SERVICE}"))
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    sent: kv::Store,
}

/// Why an email could not be built (pure, permanent) — as opposed to a failed delivery.
pub fn build_email(email: &EmailMessage, from: &Mailbox) -> Result<lettre::Message, String> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| format!("to {:?} is not an email address: {e}", email.to))?;
    let domain = from.email.domain().to_string();
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@{domain}>", header_id(&email.message_id))))
        .multipart(MultiPart::alternative_plain_html(
            email.text_body.clone(),
            email.html_body.clone(),
        ))
        .map_err(|e| format!("cannot build the email: {e}"))
}

/// The left part of the `Message-ID` for `message_id`: itself when it is RFC 5322 dot-atom text (what the
/// notifier's ids are), else `h-` and the first 32 hex digits of its SHA-256, so an id with spaces, brackets,
/// line breaks or non-ASCII still gives one valid, stable header the receivers can dedupe on.
pub fn header_id(message_id: &str) -> String {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = !message_id.is_empty()
        && message_id.len() <= 256
        && message_id
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(atext));
    if dot_atom {
        message_id.to_string()
    } else {
        format!("h-{}", store::hash(message_id))
    }
}

impl Smtp {
    pub fn new(config: &SmtpConfig, sent: kv::Store) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse().map_err(|e| {
            anyhow::anyhow!("BO_SMTP_FROM={:?} is not an address: {e}", config.from)
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| anyhow::anyhow!("BO_SMTP_URL is not usable: {e}"))?
            .timeout(Some(config.timeout))
            .build();
        Ok(Self {
            transport,
            from,
            sent,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        let email = match EmailMessage::decode(delivery.payload.as_ref()) {
            Ok(email) => email,
            Err(e) => return Outcome::Reject(format!("cannot decode EmailMessage: {e}")),
        };
        let span = tracing::Span::current();
        span.record("order_id", email.order_id.as_str());
        span.record("message_id", email.message_id.as_str());
        if email.message_id.trim().is_empty() {
            return Outcome::Reject("message_id is missing".into());
        }
        let key = store::smtp_key(&email.message_id);
        let (record, revision) = match store::read(&self.sent, &key).await {
            Ok(read) => read,
            Err(error) => return Outcome::Retry(format!("{error:#}")),
        };
        match record.as_deref().map(Record::read) {
            Some(Record::Accepted { .. }) => {
                tracing::info!("already delivered, not sent again");
                return Outcome::Done;
            }
            Some(Record::Sending { at }) => {
                tracing::warn!(%at, "an earlier delivery was cut off; sending again with the same Message-ID");
            }
            None => {}
        }
        let message = match build_email(&email, &self.from) {
            Ok(message) => message,
            Err(reason) => return Outcome::Reject(reason),
        };
        let outcome = |what: &'static str| {
            metrics::counter!("bo_smtp_deliveries_total", "outcome" => what).increment(1);
        };
        // The intent first: a crash during the transaction leaves `sending`, and the redelivery sends again.
        let sending = Record::Sending { at: Utc::now() };
        let put =
            match backorder_runtime::kv::write(&self.sent, &key, json(&sending), revision).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(format!("{key} changed meanwhile")),
                Err(error) => Err(error.to_string()),
            };
        if let Err(error) = put {
            // Another delivery of it is under way or just ended: look again after a pause.
            return Outcome::Retry(format!("recording the delivery of {key}: {error}"));
        }
        match self.transport.send(message).await {
            Ok(response) => {
                outcome("delivered");
                tracing::info!(code = %response.code(), "email delivered to the SMTP server");
                let accepted = Record::Accepted { at: Utc::now() };
                if let Err(error) = self.sent.put(&key, json(&accepted)).await {
                    // The email went out; a redelivery sends it again with the same Message-ID.
                    tracing::warn!(%error, "could not record the delivery");
                }
                Outcome::Done
            }
            Err(error) if error.is_permanent() => {
                outcome("refused");
                tracing::warn!(%error, "SMTP server refused the email for good");
                Outcome::Reject(format!("SMTP server refused the email: {error}"))
            }
            Err(error) => {
                outcome("retried");
                tracing::warn!(%error, "SMTP delivery failed, will retry");
                Outcome::Retry(format!("SMTP delivery failed: {error}"))
            }
        }
    }
}

fn json(record: &Record) -> bytes::Bytes {
    serde_json::to_vec(record).unwrap_or_default().into()
}

impl Handler for Smtp {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "smtp",
                order_id = tracing::field::Empty,
                message_id = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.deliver(delivery).instrument(span).await);
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_fields_are_refused_or_cannot_add_headers() {
        let from: Mailbox = "Shop <shop@example.com>".parse().unwrap();
        let email = EmailMessage {
            message_id: "email/ev-1".into(),
            to: "buyer@example.com".into(),
            subject: "Hi\r\nBcc: evil@example.org".into(),
            text_body: "x".into(),
            html_body: "<p>x</p>".into(),
            ..Default::default()
        };
        match build_email(&email, &from) {
            Ok(message) => {
                let raw = String::from_utf8(message.formatted()).unwrap();
                assert!(!raw.contains("\r\nBcc:"), "{raw}");
            }
            Err(reason) => assert!(reason.starts_with("subject"), "{reason}"),
        }
        for (message_id, to) in [
            ("email/ev-1>\r\nBcc: evil@example.org", "buyer@example.com"),
            ("email/ev-1", "buyer@example.com\r\nBcc: evil@example.org"),
            ("email/ev-1", "a@b.co, evil@example.org"),
        ] {
            let bad = EmailMessage {
                message_id: message_id.into(),
                to: to.into(),
                subject: "Hi".into(),
                ..email.clone()
            };
            match build_email(&bad, &from) {
                Ok(message) => {
                    let raw = String::from_utf8(message.formatted()).unwrap();
                    let id = format!(
                        "Message-ID: <h-{}@example.com>\r\n",
                        store::hash(message_id)
                    );
                    assert!(raw.contains(&id), "{raw}");
                    assert!(!raw.contains("\r\nBcc:") && !raw.contains("evil"), "{raw}");
                }
                Err(reason) => assert!(reason.starts_with("to "), "{reason}"),
            }
        }
        assert_eq!(header_id("email/coalesced-0af3"), "email/coalesced-0af3");
        assert_eq!(header_id("sms/ev.1"), "sms/ev.1");
        for odd in ["email/ev 1", "email/ev-ü", "email/..", "email/<x>", ""] {
            assert!(header_id(odd).starts_with("h-"), "{odd}");
        }
    }

    #[test]
    fn an_email_carries_its_id_and_both_bodies() {
        let email = EmailMessage {
            message_id: "email/ev-1".into(),
            to: "buyer@example.com".into(),
            subject: "Ihre Bestellung SO-1: 3 Artikel im Rückstand".into(),
            text_body: "Guten Tag,\n".into(),
            html_body: "<p>Guten Tag,</p>".into(),
            ..Default::default()
        };
        let from: Mailbox = "Shop <shop@example.com>".parse().unwrap();
        let raw = String::from_utf8(build_email(&email, &from).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <email/ev-1@example.com>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        let bad = EmailMessage {
            to: "not an address".into(),
            ..email
        };
        assert!(
            build_email(&bad, &from)
                .unwrap_err()
                .contains("not an email address")
        );
    }
}
