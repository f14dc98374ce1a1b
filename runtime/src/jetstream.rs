//! The NATS connection, the streams every prefix has, durable consumers, and publishing with an id.

mod messages;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, kv};
use prost::Message;

use crate::nats::NatsOptions;
use crate::subjects::{StreamKind, Subjects};
use crate::topology;
pub use messages::Messages;
use messages::Recipe;

/// A JetStream context bound to one prefix.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub subjects: Subjects,
    /// What the durable consumers this bus creates are given.
    pub consumers: ConsumerSettings,
    /// `Some(replicas)`: this bus creates missing streams and buckets with that many replicas; `None`: they
    /// are provisioned beforehand and the user may not create them.
    provisioning: Option<usize>,
    /// The durable consumers found missing on the server and not recreated yet (`stream/name` → why), shared
    /// by every clone, for `/ready`.
    lost: Arc<Mutex<BTreeMap<String, String>>>,
}

/// The server-side settings of a durable consumer that come from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// `BO_ACK_WAIT_SECS`: how long a delivery may stay unsettled before it is delivered again.
    pub ack_wait: Duration,
    /// `BO_MAX_DELIVER`: the consume loop parks a message delivered more often than this; the server is
    /// told [`server_max_deliver`] of it, a second guard behind ours.
    pub max_deliver: i64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
        }
    }
}

impl From<&crate::CommonConfig> for ConsumerSettings {
    fn from(config: &crate::CommonConfig) -> Self {
        Self {
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver,
        }
    }
}

/// The server's own redelivery limit for a loop that parks after `max_deliver` deliveries: two more, so our
/// check (at delivery `max_deliver + 1`) parks first and the server only stops a message whose parking
/// failed twice (its advisory is logged and counted, see `consume`).
pub fn server_max_deliver(max_deliver: i64) -> i64 {
    max_deliver.saturating_add(2)
}

/// How long a pull of a pinned consumer waits: a quarter of the ack wait, between 1 and 30 seconds, so the
/// pinned instance pulls again well within the time its pin outlives its silence.
fn pinned_pull_expiry(ack_wait: Duration) -> Duration {
    (ack_wait / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

impl Bus {
    /// Connects (retrying while the server is not up yet) without touching any stream: what a service with
    /// `BO_PROVISION=false` does, with a user that may not create streams.
    pub async fn open(nats: &NatsOptions, subjects: Subjects, name: &str) -> anyhow::Result<Self> {
        let client = nats.connect_retrying(name).await?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            client,
            js,
            subjects,
            consumers: ConsumerSettings::default(),
            provisioning: None,
            lost: Arc::default(),
        })
    }

    /// Connects and makes sure the prefix's streams and buckets exist, one replica each (tests and tools,
    /// connected as a user that may create them).
    pub async fn connect(
        nats: &NatsOptions,
        subjects: Subjects,
        name: &str,
    ) -> anyhow::Result<Self> {
        Self::connect_replicated(nats, subjects, name, 1).await
    }

    /// [`connect`](Self::connect) with `replicas` copies of each stream and bucket (existing streams are
    /// brought to that number), on a cluster of at least that many servers.
    pub async fn connect_replicated(
        nats: &NatsOptions,
        subjects: Subjects,
        name: &str,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let mut bus = Self::open(nats, subjects, name).await?;
        bus.provisioning = Some(replicas);
        bus.ensure_streams().await?;
        Ok(bus)
    }

    /// Connects as the service `name` would with `config`: its consumer settings, and, with
    /// `BO_PROVISION=true`, the prefix's streams and buckets made with `BO_STREAM_REPLICAS` replicas.
    pub async fn for_service(config: &crate::CommonConfig, name: &str) -> anyhow::Result<Self> {
        let mut bus = Self::open(&config.nats, config.subjects.clone(), name)
            .await?
            .configured(config);
        if config.provision {
            bus.provisioning = Some(config.stream_replicas);
            bus.ensure_streams().await?;
        }
        Ok(bus)
    }

    /// This bus with the consumer settings of `config` (`BO_ACK_WAIT_SECS`, `BO_MAX_DELIVER`).
    pub fn configured(mut self, config: &crate::CommonConfig) -> Self {
        self.consumers = config.into();
        self
    }

    /// Creates the prefix's streams and buckets that are missing; a stream made by an older release gets the
    /// subjects added since and the replicas asked for now. Only on a bus that provisions (see
    /// [`for_service`](Self::for_service)); on one that does not, it checks that the streams exist.
    pub async fn ensure_streams(&self) -> anyhow::Result<()> {
        let Some(replicas) = self.provisioning else {
            for kind in StreamKind::ALL {
                let name = self.subjects.stream(kind);
                self.js.get_stream(&name).await.with_context(|| {
                    format!("stream {name} is missing: run backorder-provision streams (or start with BO_PROVISION=true)")
                })?;
            }
            return Ok(());
        };
        for kind in StreamKind::ALL {
            let wanted = topology::stream_config(&self.subjects, kind, replicas);
            let name = wanted.name.clone();
            let stream = self
                .js
                .get_or_create_stream(wanted.clone())
                .await
                .with_context(|| format!("creating stream {name}"))?;
            let mut config = stream.cached_info().config.clone();
            let missing: Vec<String> = wanted
                .subjects
                .iter()
                .filter(|s| !config.subjects.contains(s))
                .cloned()
                .collect();
            if !missing.is_empty() || config.num_replicas != replicas {
                config.subjects.extend(missing);
                config.num_replicas = replicas;
                self.js.update_stream(&config).await.with_context(|| {
                    format!("updating stream {name} (subjects, {replicas} replicas)")
                })?;
            }
        }
        for bucket in topology::buckets(&self.subjects) {
            self.key_value(&bucket).await?;
        }
        Ok(())
    }

    /// The bucket `spec`, made (with this bus's replicas) when it is missing and this bus provisions.
    pub async fn key_value(&self, spec: &topology::BucketSpec) -> anyhow::Result<kv::Store> {
        if let Ok(store) = self.js.get_key_value(&spec.name).await {
            return Ok(store);
        }
        let Some(replicas) = self.provisioning else {
            anyhow::bail!(
                "key-value bucket {} is missing: run backorder-provision streams (or start with BO_PROVISION=true)",
                spec.name
            );
        };
        self.js
            .create_key_value(spec.config(replicas))
            .await
            .map_err(|e| anyhow::anyhow!("creating key-value bucket {}: {e}", spec.name))
    }

    /// Creates (or updates to today's settings) every durable consumer of the prefix, as provisioning does
    /// before the services start.
    pub async fn ensure_consumers(&self) -> anyhow::Result<()> {
        for spec in topology::consumers(&self.subjects) {
            let recipe = self.recipe_of(&spec);
            let stream = self.js.get_stream(&recipe.stream).await?;
            let _: jetstream::consumer::PullConsumer = stream
                .create_consumer(recipe.config.clone())
                .await
                .with_context(|| format!("creating consumer {} on {}", spec.name, recipe.stream))?;
        }
        Ok(())
    }

    /// The durable consumer of the topology, opened for pulling.
    pub async fn consumer(&self, spec: &topology::ConsumerSpec) -> anyhow::Result<Messages> {
        Messages::open(self.recipe_of(spec)).await
    }

    fn recipe_of(&self, spec: &topology::ConsumerSpec) -> Recipe {
        let filters = spec.filters.clone();
        self.recipe(
            spec.stream,
            spec.name,
            filters,
            spec.max_ack_pending,
            spec.pinned,
        )
    }

    /// How the durable consumer `name` on `kind`'s stream is made, with this bus's consumer settings (see
    /// [`topology::ConsumerSpec`] for `max_ack_pending` and `pinned`).
    fn recipe(
        &self,
        kind: StreamKind,
        name: &str,
        filters: Vec<String>,
        max_ack_pending: i64,
        pinned: bool,
    ) -> Recipe {
        let mut config = pull::Config {
            durable_name: Some(name.to_string()),
            filter_subjects: filters,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.consumers.ack_wait,
            max_deliver: server_max_deliver(self.consumers.max_deliver),
            max_ack_pending,
            ..Default::default()
        };
        if pinned {
            // The pin stays while its instance keeps pulling (a pull expires every `pinned_pull_expiry`); a
            // stopping instance gives it up (`Messages::release`); a crashed one's moves after
            // `priority_timeout`, later than its unsettled messages are due again (the ack wait), so the
            // next instance gets those first, in order.
            let expiry = pinned_pull_expiry(self.consumers.ack_wait);
            config.priority_policy = jetstream::consumer::PriorityPolicy::PinnedClient;
            config.priority_groups = vec![topology::PINNED_GROUP.to_string()];
            config.priority_timeout = self.consumers.ack_wait + 2 * expiry;
        }
        Recipe {
            bus: self.clone(),
            stream: self.subjects.stream(kind),
            config,
        }
    }

    /// A durable pull consumer (explicit ack) on `kind`'s stream for `filters`. Redelivery is bounded by our
    /// own loop (see `consume`), with the server's limit set just above it as a second guard.
    pub async fn durable_consumer(
        &self,
        kind: StreamKind,
        name: &str,
        filters: Vec<String>,
    ) -> anyhow::Result<Messages> {
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
    ) -> anyhow::Result<Messages> {
        Messages::open(self.recipe(kind, name, filters, max_ack_pending, false)).await
    }

    /// A `/ready` check that fails while a durable consumer of this bus is missing on the server.
    pub fn consumers_check(&self) -> crate::ops::Check {
        let lost = self.lost.clone();
        Arc::new(move || {
            let lost = lost.lock().unwrap().clone();
            Box::pin(async move {
                if lost.is_empty() {
                    return Ok(());
                }
                let each: Vec<String> = lost
                    .iter()
                    .map(|(consumer, why)| format!("consumer {consumer} is missing ({why})"))
                    .collect();
                Err(each.join("; "))
            })
        })
    }

    fn mark_lost(&self, key: &str, why: Option<String>) {
        let mut lost = self.lost.lock().unwrap();
        match why {
            Some(why) => lost.insert(key.to_string(), why),
            None => lost.remove(key),
        };
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
