//! The NATS users of each role against a server of the test's own, configured by `backorder-provision
//! accounts` for the test's prefix alone: what a role may not do, the server refuses; what it must do, it
//! can. Each refusal is checked twice: the server says so to the client, and nothing arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use backorder_runtime::Subjects;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::nats::NatsOptions;
use backorder_runtime::permissions::reader_consumer;
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::infra::{Nats, Scratch};
use futures::StreamExt;

/// A server with the accounts of one prefix, provisioned by its admin.
struct Secured {
    nats: Nats,
    dir: std::path::PathBuf,
    subjects: Subjects,
    admin: Bus,
    _scratch: Scratch,
}

impl Secured {
    async fn start() -> anyhow::Result<Self> {
        let scratch = Scratch::new("permissions")?;
        let prefix = format!("perm-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let subjects = Subjects::new(&prefix).map_err(anyhow::Error::msg)?;
        let dir = scratch.dir.join("users");
        backorder_provision::accounts::write(&dir, std::slice::from_ref(&subjects))?;
        std::fs::copy(dir.join("accounts.conf"), scratch.dir.join("accounts.conf"))?;
        let nats = Nats::start_configured(&scratch, "include ./accounts.conf").await?;
        let admin = Bus::connect(
            &Self::options(&nats, &dir, "admin"),
            subjects.clone(),
            "admin",
        )
        .await?;
        admin.ensure_consumers().await?;
        Ok(Self {
            nats,
            dir,
            subjects,
            admin,
            _scratch: scratch,
        })
    }

    fn options(nats: &Nats, dir: &std::path::Path, role: &str) -> NatsOptions {
        NatsOptions {
            url: nats.url(),
            creds: Some(dir.join(format!("{role}.creds"))),
            ..NatsOptions::default()
        }
    }

    /// Connects as `role`, recording every error the server sends this client.
    async fn client(&self, role: &str) -> anyhow::Result<Client> {
        let refusals: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = refusals.clone();
        let client = Self::options(&self.nats, &self.dir, role)
            .connect_options(role)?
            .event_callback(move |event| {
                let seen = seen.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        seen.lock().unwrap().push(error.to_string());
                    }
                }
            })
            .connect(self.nats.url())
            .await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(2));
        Ok(Client {
            js,
            client,
            refusals,
        })
    }

    /// How many messages `kind`'s stream holds on `subject`.
    async fn stored(&self, kind: StreamKind, subject: &str) -> anyhow::Result<usize> {
        Ok(
            backorder_test_support::stream::stored(&self.admin, kind, subject)
                .await?
                .len(),
        )
    }
}

struct Client {
    client: async_nats::Client,
    js: jetstream::Context,
    refusals: Arc<Mutex<Vec<String>>>,
}

impl Client {
    /// Waits (briefly) until the server has refused something on `subject`.
    async fn refused(&self, what: &str, subject: &str) -> bool {
        for _ in 0..40 {
            if self
                .refusals
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.contains(what) && e.contains(subject))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Publishes through JetStream and says whether the stream acknowledged it.
    async fn publish(&self, subject: &str) -> bool {
        match self.js.publish(subject.to_string(), "{}".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        }
    }
}

#[tokio::test]
async fn an_anonymous_client_and_a_stranger_are_refused() -> anyhow::Result<()> {
    let secured = Secured::start().await?;
    let anonymous = NatsOptions::default()
        .with_url(&secured.nats.url())
        .connect("anonymous")
        .await;
    let error = format!(
        "{:#}",
        anonymous.expect_err("an anonymous client was let in")
    );
    assert!(error.to_lowercase().contains("authorization"), "{error}");

    let stranger = secured.dir.join("stranger.creds");
    std::fs::write(&stranger, nkeys::KeyPair::new_user().seed().unwrap())?;
    let options = NatsOptions {
        creds: Some(stranger),
        ..NatsOptions::default().with_url(&secured.nats.url())
    };
    assert!(
        options.connect("stranger").await.is_err(),
        "a key nobody listed was let in"
    );
    Ok(())
}

#[tokio::test]
async fn each_role_publishes_its_own_subjects_and_nothing_else() -> anyhow::Result<()> {
    let secured = Secured::start().await?;
    let s = &secured.subjects;
    // (role, a subject it publishes, a subject it must not)
    let cases = [
        ("oms", s.order_placed(), s.notify_email()),
        ("oms", s.order_cancel(), s.order_accepted()),
        ("notifier", s.notify_email(), s.order_placed()),
        ("wms", s.stock_received(), s.supply_updated()),
        ("purchasing", s.supply_updated(), s.stock_adjusted()),
        ("product-master", s.sku_upserted(), s.order_placed()),
        ("order-intake", s.order_accepted(), s.order_status()),
        (
            "replenishment-trigger",
            s.purchase_request(),
            s.notify_sms(),
        ),
        ("allocation", s.order_status(), s.notify_email()),
        ("gateway", String::new(), s.order_placed()),
        ("console", String::new(), s.order_priority()),
        ("operator", s.clock(), s.order_placed()),
    ];
    for (role, allowed, forbidden) in cases {
        let client = secured.client(role).await?;
        if !allowed.is_empty() {
            assert!(
                client.publish(&allowed).await,
                "{role} could not publish {allowed}"
            );
        }
        let kind = stream_of(s, &forbidden);
        let before = secured.stored(kind, &forbidden).await?;
        assert!(
            !client.publish(&forbidden).await,
            "{role} published {forbidden}"
        );
        assert!(
            client.refused("Publish", &forbidden).await,
            "the server did not refuse {role} on {forbidden}"
        );
        assert_eq!(
            secured.stored(kind, &forbidden).await?,
            before,
            "{forbidden} stored a message from {role}"
        );
    }
    Ok(())
}

fn stream_of(s: &Subjects, subject: &str) -> StreamKind {
    StreamKind::ALL
        .into_iter()
        .find(|&kind| {
            s.stream_subjects(kind).iter().any(|c| {
                c == subject || c.strip_suffix('>').is_some_and(|p| subject.starts_with(p))
            })
        })
        .expect("a subject of the prefix's streams")
}

#[tokio::test]
async fn nobody_but_admin_deletes_or_changes_a_stream() -> anyhow::Result<()> {
    let secured = Secured::start().await?;
    let inbound = secured.subjects.stream(StreamKind::Inbound);
    for role in ["oms", "allocation", "operator", "gateway"] {
        let client = secured.client(role).await?;
        assert!(
            client.js.delete_stream(&inbound).await.is_err(),
            "{role} deleted {inbound}"
        );
        assert!(
            client.refused("Publish", "$JS.API.STREAM.DELETE").await,
            "no refusal for {role}"
        );
        let purged = match client.js.get_stream(&inbound).await {
            Ok(stream) => stream.purge().await.is_ok(),
            Err(_) => false,
        };
        assert!(!purged, "{role} purged {inbound}");
        let mut config = secured
            .admin
            .js
            .get_stream(&inbound)
            .await?
            .cached_info()
            .config
            .clone();
        config.max_age = Duration::from_secs(1);
        assert!(
            client.js.update_stream(&config).await.is_err(),
            "{role} changed {inbound}"
        );
    }
    let info = secured
        .admin
        .js
        .get_stream(&inbound)
        .await?
        .cached_info()
        .clone();
    assert_eq!(
        info.config.max_age,
        Duration::from_secs(30 * 24 * 3600),
        "the stream was changed"
    );
    Ok(())
}

#[tokio::test]
async fn the_gateway_reads_notifications_and_cannot_read_orders() -> anyhow::Result<()> {
    let secured = Secured::start().await?;
    let s = &secured.subjects;
    let oms = secured.client("oms").await?;
    assert!(oms.publish(&s.order_placed()).await);
    let notifier = secured.client("notifier").await?;
    assert!(notifier.publish(&s.notify_email()).await);

    let gateway = secured.client("gateway").await?;
    // Allowed: its own consumer on the outbound stream, for the notifications.
    let filter = format!("{}.out.notify.>", s.prefix());
    let out = gateway
        .js
        .get_stream(s.stream(StreamKind::Outbound))
        .await?;
    let consumer: jetstream::consumer::PullConsumer = out
        .create_consumer(pull::Config {
            durable_name: Some(reader_consumer("gateway", &filter)),
            filter_subject: filter.clone(),
            ..Default::default()
        })
        .await?;
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await?;
    let first = batch
        .next()
        .await
        .expect("the email is read")
        .map_err(|e| anyhow::anyhow!(e))?;
    assert_eq!(first.subject.as_str(), s.notify_email());

    // Refused: the same consumer widened to every subject, a consumer on the inbound stream, pulling from
    // allocation's consumer, a live subscription to orders, and another user's inbox.
    let widened: Result<jetstream::consumer::PullConsumer, _> = out
        .create_consumer(pull::Config {
            durable_name: Some(reader_consumer("gateway", &filter)),
            filter_subject: format!("{}.out.>", s.prefix()),
            ..Default::default()
        })
        .await;
    assert!(widened.is_err(), "the gateway widened its consumer");
    let inbound = gateway.js.get_stream(s.stream(StreamKind::Inbound)).await;
    if let Ok(inbound) = inbound {
        let made: Result<jetstream::consumer::PullConsumer, _> = inbound
            .create_consumer(pull::Config {
                durable_name: Some("gateway-orders".into()),
                filter_subject: s.order_placed(),
                ..Default::default()
            })
            .await;
        assert!(made.is_err(), "the gateway made a consumer of the orders");
    }
    let next = format!(
        "$JS.API.CONSUMER.MSG.NEXT.{}.order-intake",
        s.stream(StreamKind::Inbound)
    );
    let _ = gateway.client.publish(next.clone(), "1".into()).await;
    assert!(
        gateway.refused("Publish", &next).await,
        "the gateway pulled from order-intake's consumer"
    );
    let mut orders = gateway.client.subscribe(s.order_placed()).await?;
    assert!(
        gateway.refused("Subscription", &s.order_placed()).await,
        "the gateway subscribed to orders"
    );
    assert!(oms.publish(&s.order_placed()).await);
    let received = tokio::time::timeout(Duration::from_millis(500), orders.next()).await;
    assert!(
        !matches!(received, Ok(Some(_))),
        "an order reached the gateway"
    );
    let _snoop = gateway.client.subscribe("_INBOX.>").await?;
    assert!(
        gateway.refused("Subscription", "_INBOX.>").await,
        "the gateway read every inbox"
    );
    Ok(())
}
