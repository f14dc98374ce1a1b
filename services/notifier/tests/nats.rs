//! The notifier against a real NATS server: set `NATS_URL` to run it; without it, or with the server down,
//! the test says so and passes. Every run uses a prefix of its own and deletes its streams afterwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{
    Customer, CustomerEvent, CustomerEventLine, DeadLetter, EmailMessage, SmsMessage,
};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{CommonConfig, Subjects};
use futures::{FutureExt as _, TryStreamExt};
use prost::Message as _;

/// The server's URL when one answers.
async fn nats_url() -> Option<String> {
    let Ok(url) = std::env::var("NATS_URL") else {
        eprintln!("NATS_URL is not set: skipping");
        return None;
    };
    let address = url.trim_start_matches("nats://").to_string();
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Ok(_)) => Some(url),
        _ => {
            eprintln!("no NATS server at {url}: skipping");
            None
        }
    }
}

/// Everything stored on `subject` in `kind`'s stream.
async fn stored(
    bus: &Bus,
    kind: StreamKind,
    subject: &str,
) -> anyhow::Result<Vec<jetstream::Message>> {
    let stream = bus.js.get_stream(bus.subjects.stream(kind)).await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_string(),
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await?;
    let pending = consumer.info().await?.num_pending as usize;
    if pending == 0 {
        return Ok(Vec::new());
    }
    let batch = consumer
        .fetch()
        .max_messages(pending)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    batch
        .try_collect()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Waits until at least `count` messages are stored on `subject`.
async fn wait_for(
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

fn message_id(message: &jetstream::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

fn event(event_id: &str, email: &str, phone: &str) -> CustomerEvent {
    CustomerEvent {
        event_id: event_id.into(),
        kind: Kind::Backordered as i32,
        order_id: "SO-1".into(),
        customer: Some(Customer {
            id: "C-1".into(),
            email: email.into(),
            phone: phone.into(),
            locale: "de-DE".into(),
        }),
        lines: vec![CustomerEventLine {
            line_no: 1,
            sku: "SKU-A".into(),
            quantity: 30,
            ordered: 100,
            allocated: 70,
            backordered: 30,
            ..Default::default()
        }],
        occurred_at: None,
    }
}

#[tokio::test]
async fn events_become_one_email_and_one_sms_each_and_bad_ones_are_parked() -> anyhow::Result<()> {
    let Some(url) = nats_url().await else {
        return Ok(());
    };
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let source = HashMap::from([("NATS_URL", url.as_str()), ("BO_PREFIX", prefix.as_str())]);
    let config = CommonConfig::from_source(&source)?;
    let bus = Bus::connect(
        &url,
        Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
        "notifier-test",
    )
    .await?;

    // Panics are caught so the streams are deleted whatever happens.
    let result = std::panic::AssertUnwindSafe(async {
        let app = notifier::Application::build(config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));

        let subject = bus.subjects.customer_event();
        let both = event("ev-1", "buyer@example.com", "+4915112345678");
        bus.publish(subject.clone(), "ev-1", &both).await?;
        bus.publish(
            subject.clone(),
            "ev-2",
            &event("ev-2", "other@example.com", ""),
        )
        .await?;
        // The same event once more under another stream id: what a redelivery looks like to the notifier.
        bus.publish(subject.clone(), "ev-1-again", &both).await?;
        let mut no_customer = event("ev-3", "", "");
        no_customer.customer = None;
        bus.publish(subject.clone(), "ev-3", &no_customer).await?;

        // The dead letter comes last; once it is there, everything before it was handled.
        let letters = wait_for(
            &bus,
            StreamKind::DeadLetter,
            &bus.subjects.dead_letter("notifier"),
            1,
        )
        .await?;
        assert_eq!(letters.len(), 1);
        let letter = DeadLetter::decode(letters[0].payload.clone())?;
        assert!(
            letter.error.contains("customer is missing"),
            "{}",
            letter.error
        );
        assert_eq!(letter.message_id, "ev-3");

        let emails = stored(&bus, StreamKind::Outbound, &bus.subjects.notify_email()).await?;
        let ids: Vec<String> = emails.iter().map(message_id).collect();
        assert_eq!(ids, ["email/ev-1", "email/ev-2"]);
        let first = EmailMessage::decode(emails[0].payload.clone())?;
        assert_eq!(first.message_id, "email/ev-1");
        assert_eq!(first.to, "buyer@example.com");
        assert_eq!(
            first.subject,
            "Ihre Bestellung SO-1: 30 Artikel im Rückstand"
        );
        assert!(
            first
                .text_body
                .contains("SKU-A: 70 von 100 jetzt lieferbar, 30 im Rückstand")
        );

        let sms = stored(&bus, StreamKind::Outbound, &bus.subjects.notify_sms()).await?;
        assert_eq!(sms.iter().map(message_id).collect::<Vec<_>>(), ["sms/ev-1"]);
        let text = SmsMessage::decode(sms[0].payload.clone())?;
        assert_eq!(text.to, "+4915112345678");
        assert!(text.text.chars().count() <= 160);

        let _ = stop.send(());
        running.await??;
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;

    for kind in StreamKind::ALL {
        let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
    }
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
