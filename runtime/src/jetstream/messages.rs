//! The deliveries of one durable consumer, and how it is made, so it can be made again.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};

use super::Bus;

/// How a durable consumer is made, so it can be made again after it was deleted on the server.
#[derive(Clone)]
pub(super) struct Recipe {
    pub(super) bus: Bus,
    pub(super) stream: String,
    pub(super) config: pull::Config,
}

impl Recipe {
    /// Creates the consumer, or updates it to `config` when it exists (same durable name).
    async fn update(&self) -> anyhow::Result<()> {
        self.create().await.map(|_| ())
    }

    async fn create(&self) -> anyhow::Result<jetstream::consumer::PullConsumer> {
        let name = self.config.durable_name.as_deref().unwrap_or_default();
        let stream = self.bus.js.get_stream(&self.stream).await?;
        // Create or update: a new release may consume more subjects through the same durable consumer.
        stream
            .create_consumer(self.config.clone())
            .await
            .with_context(|| format!("creating consumer {name} on {}", self.stream))
    }

    /// [`create`](Self::create)s the consumer and pulls from it.
    async fn open(&self) -> anyhow::Result<pull::Stream> {
        let name = self.config.durable_name.as_deref().unwrap_or_default();
        let consumer = self.create().await?;
        let pulled = match self.config.priority_policy {
            // Pulls name the group, and expire well within the time the pin outlives a silent instance.
            jetstream::consumer::PriorityPolicy::PinnedClient => {
                let expires = super::pinned_pull_expiry(self.config.ack_wait);
                consumer
                    .stream()
                    .group(crate::topology::PINNED_GROUP)
                    .expires(expires)
                    .heartbeat(expires / 2)
                    .messages()
                    .await
            }
            _ => consumer.messages().await,
        };
        pulled.with_context(|| format!("pulling from consumer {name}"))
    }
}

/// The deliveries of one durable consumer, as the consume loop takes them: a pull stream that knows how its
/// consumer was made, so the loop can make it again when it is deleted on the server (see
/// [`reopen`](Self::reopen)). One built from a bare [`pull::Stream`] cannot.
pub struct Messages {
    inner: pull::Stream,
    recipe: Option<Recipe>,
}

impl From<pull::Stream> for Messages {
    fn from(inner: pull::Stream) -> Self {
        Self {
            inner,
            recipe: None,
        }
    }
}

impl Messages {
    /// Makes the consumer of `recipe` and pulls from it.
    pub(super) async fn open(recipe: Recipe) -> anyhow::Result<Self> {
        let inner = recipe.open().await?;
        Ok(Self {
            inner,
            recipe: Some(recipe),
        })
    }

    /// `stream/consumer`, when known.
    pub fn label(&self) -> Option<String> {
        let recipe = self.recipe.as_ref()?;
        Some(format!(
            "{}/{}",
            recipe.stream,
            recipe.config.durable_name.as_deref().unwrap_or_default()
        ))
    }

    /// The stream and durable name, when known.
    pub fn consumer(&self) -> Option<(&str, &str)> {
        let recipe = self.recipe.as_ref()?;
        Some((&recipe.stream, recipe.config.durable_name.as_deref()?))
    }

    /// How long a delivery may stay unsettled before the server delivers it again (30 s when unknown).
    pub fn ack_wait(&self) -> Duration {
        self.recipe
            .as_ref()
            .map_or(Duration::from_secs(30), |r| r.config.ack_wait)
    }

    /// The server's redelivery limit (-1: none or unknown).
    pub fn server_max_deliver(&self) -> i64 {
        self.recipe.as_ref().map_or(-1, |r| r.config.max_deliver)
    }

    /// Whether [`reopen`](Self::reopen) can make the consumer again.
    pub fn can_reopen(&self) -> bool {
        self.recipe.is_some()
    }

    /// Sets the server's redelivery limit of the consumer, updating it on the server when it differs. The
    /// pull goes on as it is: a new one would lose what is in flight to this one, and a pinned consumer's pin.
    pub async fn set_server_max_deliver(&mut self, max_deliver: i64) -> anyhow::Result<()> {
        match &mut self.recipe {
            Some(recipe) if recipe.config.max_deliver != max_deliver => {
                recipe.config.max_deliver = max_deliver;
                recipe.update().await
            }
            _ => Ok(()),
        }
    }

    /// Whether the consumer is known to be gone on the server (false when it is there or cannot be asked).
    pub async fn is_missing(&self) -> bool {
        let Some((stream, name)) = self.consumer() else {
            return false;
        };
        let bus = &self.recipe.as_ref().expect("a recipe").bus;
        let Ok(stream) = bus.js.get_stream(stream).await else {
            return false;
        };
        matches!(
            stream.consumer_info(name).await,
            Err(error) if error.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound
        )
    }

    /// Stops pulling and, for a pinned consumer, gives up the pin, so another instance takes over at once
    /// instead of after the pin's timeout (a stopped instance keeps it otherwise).
    pub async fn release(self) {
        let Messages { inner, recipe } = self;
        // Our pull must be gone before the pin is: the server would pin it again.
        drop(inner);
        let Some(recipe) = recipe else { return };
        if recipe.config.priority_policy != jetstream::consumer::PriorityPolicy::PinnedClient {
            return;
        }
        let name = recipe.config.durable_name.as_deref().unwrap_or_default();
        let released = async {
            recipe.bus.client.flush().await?;
            let stream = recipe.bus.js.get_stream(&recipe.stream).await?;
            stream
                .unpin_consumer(name, crate::topology::PINNED_GROUP)
                .await?;
            anyhow::Ok(())
        };
        match released.await {
            Ok(()) => tracing::info!(consumer = name, "pin released"),
            Err(error) => tracing::warn!(
                consumer = name,
                error = format!("{error:#}"),
                "could not release the pin; another instance takes over after its timeout"
            ),
        }
    }

    /// Creates the consumer again with the configuration it was made with (or updates it, when it is there)
    /// and pulls from it anew. Until that succeeds the bus's [`consumers_check`](Bus::consumers_check)
    /// fails with `why`.
    pub async fn reopen(&mut self, why: &str) -> anyhow::Result<()> {
        let (Some(label), Some(recipe)) = (self.label(), self.recipe.as_ref()) else {
            anyhow::bail!("this consumer's configuration is unknown, so it cannot be made again");
        };
        recipe.bus.mark_lost(&label, Some(why.to_string()));
        self.inner = recipe.open().await?;
        recipe.bus.mark_lost(&label, None);
        Ok(())
    }
}

impl futures::Stream for Messages {
    type Item = Result<jetstream::Message, pull::MessagesError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        futures::Stream::poll_next(Pin::new(&mut self.inner), cx)
    }
}
