//! The notifier against a real NATS server (`NATS_URL`, as `make test` sets it). Every run uses a prefix of its
//! own and deletes its streams afterwards.

use std::collections::HashMap;

use backorder_e2e::stream::{message_id, nats_url, stored, wait_for_stored};
use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{
    Customer, CustomerEvent, CustomerEventLine, DeadLetter, EmailMessage, SmsMessage,
};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{CommonConfig, Subjects};
use futures::FutureExt as _;
use prost::Message as _;

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
        respond_by: None,
    }
}

#[tokio::test]
async fn events_become_one_email_and_one_sms_each_and_bad_ones_are_parked() -> anyhow::Result<()> {
    let url = nats_url();
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
        let letters = wait_for_stored(
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
