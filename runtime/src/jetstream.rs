//! The NATS connection, the streams every prefix has, durable consumers, and publishing with an id.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, stream};
use prost::Message;

use crate::subjects::{StreamKind, Subjects};

/// A JetStream context bound to one prefix.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub subjects: Subjects,
}

impl Bus {
    /// Connects (retrying while the server is not up yet) and makes sure the prefix's streams exist.
    pub async fn connect(url: &str, subjects: Subjects, name: &str) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let js = jetstream::new(client.clone());
        let bus = Self {
            client,
            js,
            subjects,
        };
        bus.ensure_streams().await?;
        Ok(bus)
    }

    /// Creates the four streams of this prefix if they are missing. Every service calls it, so start-up order
    /// does not matter and an OMS can publish before any consumer exists.
    pub async fn ensure_streams(&self) -> anyhow::Result<()> {
        for kind in StreamKind::ALL {
            let name = self.subjects.stream(kind);
            let subjects = self.subjects.stream_subjects(kind);
            let stream = self
                .js
                .get_or_create_stream(stream::Config {
                    name: name.clone(),
                    subjects: subjects.clone(),
                    storage: stream::StorageType::File,
                    max_age: Duration::from_secs(30 * 24 * 3600),
                    // Long enough to cover a publisher's retries after a reconnect.
                    duplicate_window: Duration::from_secs(10 * 60),
                    // Control messages are states (the clock reads ...): only the latest matters.
                    max_messages_per_subject: if kind == StreamKind::Control { 1 } else { 0 },
                    ..Default::default()
                })
                .await
                .with_context(|| format!("creating stream {name}"))?;
            // A stream made by an older release may lack a subject added since.
            let mut config = stream.cached_info().config.clone();
            if subjects.iter().any(|s| !config.subjects.contains(s)) {
                for subject in subjects {
                    if !config.subjects.contains(&subject) {
                        config.subjects.push(subject);
                    }
                }
                self.js
                    .update_stream(&config)
                    .await
                    .with_context(|| format!("adding subjects to stream {name}"))?;
            }
        }
        Ok(())
    }

    /// A durable pull consumer (explicit ack) on `kind`'s stream for `filters`. Redelivery is bounded by our
    /// own loop (see `consume`), not by the server, so a message is never silently dropped.
    pub async fn durable_consumer(
        &self,
        kind: StreamKind,
        name: &str,
        filters: Vec<String>,
    ) -> anyhow::Result<pull::Stream> {
        self.durable_consumer_with(kind, name, filters, 10_000)
            .await
    }

    /// [`durable_consumer`](Self::durable_consumer) with at most `max_ack_pending` messages out at once,
    /// across every instance: 1 hands the messages out strictly one after the other, in stream order.
    pub async fn durable_consumer_with(
        &self,
        kind: StreamKind,
        name: &str,
        filters: Vec<String>,
        max_ack_pending: i64,
    ) -> anyhow::Result<pull::Stream> {
        let stream_name = self.subjects.stream(kind);
        let stream = self.js.get_stream(&stream_name).await?;
        // Create or update: a new release may consume more subjects through the same durable consumer.
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.to_string()),
                filter_subjects: filters,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating consumer {name} on {stream_name}"))?;
        consumer
            .messages()
            .await
            .with_context(|| format!("pulling from consumer {name}"))
    }

    /// Publishes `message` with `id` as `Nats-Msg-Id` and waits for the stream to store it.
    pub async fn publish(
        &self,
        subject: String,
        id: &str,
        message: &impl Message,
    ) -> anyhow::Result<()> {
        self.publish_bytes(subject, id, message.encode_to_vec().into())
            .await
    }

    pub async fn publish_bytes(
        &self,
        subject: String,
        id: &str,
        payload: bytes::Bytes,
    ) -> anyhow::Result<()> {
        self.send(subject.clone(), id, payload)
            .await?
            .await
            .with_context(|| format!("waiting for the ack of {id} on {subject}"))?;
        Ok(())
    }

    /// Publishes without waiting for the ack; await the returned future to know it is stored. Lets a caller
    /// keep many publishes in flight. The current span's trace context goes along in the headers.
    pub async fn send(
        &self,
        subject: String,
        id: &str,
        payload: bytes::Bytes,
    ) -> anyhow::Result<jetstream::context::PublishAckFuture> {
        self.send_traced(subject, id, payload, &crate::trace::current())
            .await
    }

    /// [`send`](Self::send) with the given trace headers (e.g. stored with an outbox row).
    pub async fn send_traced(
        &self,
        subject: String,
        id: &str,
        payload: bytes::Bytes,
        trace: &[(String, String)],
    ) -> anyhow::Result<jetstream::context::PublishAckFuture> {
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(id);
        for (key, value) in trace {
            publish = publish.header(key.as_str(), value.as_str());
        }
        self.js
            .send_publish(subject.clone(), publish)
            .await
            .with_context(|| format!("publishing {id} on {subject}"))
    }
}
