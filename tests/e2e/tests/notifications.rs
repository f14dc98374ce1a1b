//! Notifications end to end: the customer's time zone travels with the order to the notifier, an opt-out sent
//! by the OMS stops that channel, and several changes of one order within the notifier's window become one
//! email.

use backorder_proto::v1::{
    CustomerEvent, CustomerPreferences, EmailMessage, SmsMessage, customer_event::Kind,
};
use backorder_runtime::time;
use backorder_test_support::{System, load_stock, messages};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn the_customer_hears_in_their_language_and_zone_and_not_on_a_channel_they_left()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    // The customer wants no SMS.
    let preferences = CustomerPreferences {
        customer_id: "C-7".into(),
        email_opt_out: false,
        sms_opt_out: true,
        updated_at: Some(time::to_proto(chrono::Utc::now())),
    };
    system
        .publish(s.customer_preferences(), "C-7/1", &preferences)
        .await?;
    load_stock(&system.bus, &system.db, "DESK", 1).await?;
    let mut customer = messages::customer("C-7", "kunde@shop.example", "+4915112345678", "de-AT");
    customer.time_zone = "Europe/Vienna".into();
    system
        .publish(
            s.order_placed(),
            "SO-7",
            &messages::order("SO-7", customer, &[("DESK", 3)]),
        )
        .await?;

    let event = seen
        .wait_for::<CustomerEvent>(&s.customer_event(), |e| e.order_id == "SO-7")
        .await?;
    assert_eq!(
        event.customer.as_ref().map(|c| c.time_zone.as_str()),
        Some("Europe/Vienna")
    );
    let email = seen
        .wait_for::<EmailMessage>(&s.notify_email(), |m| m.order_id == "SO-7")
        .await?;
    assert_eq!(email.kind(), Kind::Backordered);
    assert_eq!(email.locale, "de");
    assert_eq!(email.message_id, format!("email/{}", event.event_id));
    assert!(
        email
            .text_body
            .contains("DESK (3 bestellt): 1 jetzt lieferbar, 2 im Rückstand"),
        "{}",
        email.text_body
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        seen.all::<SmsMessage>(&s.notify_sms()).is_empty(),
        "an SMS to a customer who opted out"
    );
    system.stop().await
}

#[tokio::test]
async fn changes_of_one_order_within_the_window_become_one_email() -> anyhow::Result<()> {
    let system = System::start_with(&HashMap::from([("BO_NOTIFY_COALESCE_SECS", "3")])).await?;
    let s = system.subjects().clone();
    let seen = &system.seen;

    load_stock(&system.bus, &system.db, "LAMP", 1).await?;
    let customer = messages::customer("C-8", "buyer@shop.example", "", "en");
    system
        .publish(
            s.order_placed(),
            "SO-8",
            &messages::order("SO-8", customer, &[("LAMP", 4)]),
        )
        .await?;
    seen.wait_for::<CustomerEvent>(&s.customer_event(), |e| e.order_id == "SO-8")
        .await?;
    // Within the window: 3 more arrive and fill the backorder.
    system
        .publish(
            s.stock_received(),
            "RC-8",
            &messages::receipt("RC-8", "LAMP", 3, ""),
        )
        .await?;
    let email = seen
        .wait_for::<EmailMessage>(&s.notify_email(), |m| m.order_id == "SO-8")
        .await?;
    assert!(
        email.message_id.starts_with("email/coalesced-"),
        "{}",
        email.message_id
    );
    assert_eq!(email.kind(), Kind::ReadyToShip);
    assert!(
        email
            .text_body
            .contains("LAMP (4 ordered): 3 backordered, 3 now ready to ship; 4 ship now"),
        "{}",
        email.text_body
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.distinct::<EmailMessage>(&s.notify_email()).len(), 1);
    system.stop().await
}
