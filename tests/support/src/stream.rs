//! Reading what a stream stored, for tests that check what a service published (as a consumer that reads
//! the stream, not the live subject, would see it).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::nats::NatsOptions;
use backorder_runtime::subjects::StreamKind;
use futures::StreamExt;

/// `NATS_URL`, as `make test` sets it, or the default port.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// How the tests themselves connect: `NATS_URL` with `NATS_CREDS` (`make test` gives the `admin` user, as
/// the tests create and delete streams) and `NATS_TLS_*`.
pub fn nats() -> NatsOptions {
    NatsOptions::from_source(&backorder_runtime::config::ProcessEnv)
        .expect("NATS_TLS_CERT and NATS_TLS_KEY are set together")
}

/// The credentials of `role` for the services and outside systems a test starts: the file `<role>.creds`
/// beside the tests' own `NATS_CREDS` (`.local/nats/` as `make test` runs), if there is one.
pub fn role_creds(role: &str) -> Option<std::path::PathBuf> {
    let own = nats().creds?;
    let theirs = own.parent()?.join(format!("{role}.creds"));
    theirs.exists().then_some(theirs)
}

/// Everything stored on `subject` (wildcards allowed) in `kind`'s stream, oldest first, read in batches (a
/// single fetch of thousands may come back short).
pub async fn stored(
    bus: &Bus,
    kind: StreamKind,
    subject: &str,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let stream = bus.js.get_stream(bus.subjects.stream(kind)).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_string(),
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let pending = consumer.info().await?.num_pending as usize;
    let mut all = Vec::with_capacity(pending);
    let deadline = Instant::now() + Duration::from_secs(60);
    while all.len() < pending {
        let mut batch = consumer
            .fetch()
            .max_messages((pending - all.len()).min(500))
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        while let Some(message) = batch.next().await {
            all.push(message.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "read only {} of {pending} messages on {subject}",
            all.len()
        );
    }
    Ok(all)
}

/// Waits (up to 20 s) until at least `count` messages are stored on `subject`; returns what is there.
pub async fn wait_for_stored(
    bus: &Bus,
    kind: StreamKind,
    subject: &str,
    count: usize,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = stored(bus, kind, subject).await?;
        if messages.len() >= count || Instant::now() > deadline {
            return Ok(messages);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The message's `Nats-Msg-Id`, or empty.
pub fn message_id(message: &jetstream::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// What the consumers of `stream` have not settled yet: stored and not delivered, plus delivered and not
/// acknowledged, per consumer.
pub async fn unsettled(
    bus: &Bus,
    stream: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    use futures::TryStreamExt;
    let stream = bus.js.get_stream(stream).await?;
    let names: Vec<String> = stream.consumer_names().try_collect().await?;
    let mut unsettled = std::collections::BTreeMap::new();
    for name in names {
        let mut consumer = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
            .await
            .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
        let info = consumer.info().await?;
        unsettled.insert(name, info.num_pending + info.num_ack_pending as u64);
    }
    Ok(unsettled)
}
