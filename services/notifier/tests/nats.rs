//! The notifier against a real NATS server: coalescing, superseded date changes, opt-out, quiet hours,
//! idempotency across redelivery, replay and restart, and bad events parked.

mod common;

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{CustomerPreferences, DeadLetter, EmailMessage, SmsMessage};
use backorder_runtime::subjects::StreamKind;
use common::*;
use prost::Message as _;

#[tokio::test]
async fn three_backorders_of_one_order_within_the_window_become_one_email_and_one_sms()
-> anyhow::Result<()> {
    with_notifier(&[("BO_NOTIFY_COALESCE_SECS", "60")], |world| async move {
        let buyer = customer("buyer@example.com", "+4915112345678");
        for i in 1..=3 {
            let e = event(
                &format!("ev-{i}"),
                "SO-1",
                Kind::Backordered,
                buyer.clone(),
                vec![line(i, 2 * i as i64, 0, 2 * i as i64)],
            );
            world.publish_event(&e).await?;
        }
        // Another order's event is its own message.
        world
            .publish_event(&event(
                "ev-9",
                "SO-2",
                Kind::Shipped,
                buyer.clone(),
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        settle().await;
        assert!(
            world.emails().await?.is_empty(),
            "sent before the window ended"
        );

        world.advance("2026-01-10T10:01:00Z").await?;
        let emails: Vec<(String, EmailMessage)> = world
            .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_email(), 2)
            .await?;
        settle().await;
        let emails = if emails.len() == 2 {
            emails
        } else {
            world.emails().await?
        };
        assert_eq!(emails.len(), 2, "{emails:?}");
        let (id, email) = emails.iter().find(|(_, e)| e.order_id == "SO-1").unwrap();
        assert_eq!(id, &email.message_id, "Nats-Msg-Id is the message id");
        assert!(
            email.message_id.starts_with("email/coalesced-"),
            "{}",
            email.message_id
        );
        assert_eq!(
            email.subject,
            "Ihre Bestellung SO-1: 12 Artikel im Rückstand"
        );
        for i in 1..=3 {
            assert!(
                email.text_body.contains(&format!(
                    "SKU-{i} ({} bestellt): {} im Rückstand (voraussichtlich am 1. Februar 2026)",
                    2 * i,
                    2 * i
                )),
                "{}",
                email.text_body
            );
        }
        let other = emails.iter().find(|(_, e)| e.order_id == "SO-2").unwrap();
        assert_eq!(other.0, "email/ev-9");

        let sms: Vec<(String, SmsMessage)> = world
            .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_sms(), 2)
            .await?;
        let (_, text) = sms.iter().find(|(_, s)| s.order_id == "SO-1").unwrap();
        assert!(text.message_id.starts_with("sms/coalesced-"));
        assert!(
            text.text
                .starts_with("Bestellung SO-1: 12 Artikel im Rückstand."),
            "{}",
            text.text
        );
        // Published once each: nothing was dropped as a duplicate either.
        assert_eq!(world.seen.count(&world.bus.subjects.notify_email()), 2);
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn a_date_change_superseded_before_it_was_sent_is_not_sent() -> anyhow::Result<()> {
    with_notifier(&[("BO_NOTIFY_COALESCE_SECS", "60")], |world| async move {
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::EtaChanged,
                buyer.clone(),
                vec![line(1, 3, 0, 3)],
            ))
            .await?;
        world
            .publish_event(&event(
                "ev-2",
                "SO-1",
                Kind::ReadyToShip,
                buyer.clone(),
                vec![line(1, 3, 3, 0)],
            ))
            .await?;
        settle().await;
        world.advance("2026-01-10T10:02:00Z").await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                1,
            )
            .await?;
        settle().await;
        let emails = world.emails().await?;
        assert_eq!(emails.len(), 1);
        let email = &emails[0].1;
        assert_eq!(email.kind, Kind::ReadyToShip as i32);
        assert_eq!(
            email.subject,
            "Ihre Bestellung SO-1: 3 Artikel versandbereit"
        );
        assert!(
            !email.text_body.contains("neuer Termin"),
            "{}",
            email.text_body
        );
        assert!(world.sms().await?.is_empty(), "no phone, no SMS");
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn a_customer_who_opted_out_of_a_channel_gets_nothing_there_until_opting_in_again()
-> anyhow::Result<()> {
    with_notifier(&[], |world| async move {
        let prefs = |sms_opt_out: bool, at_: &str| CustomerPreferences {
            customer_id: "C-1".into(),
            email_opt_out: false,
            sms_opt_out,
            updated_at: Some(backorder_runtime::time::to_proto(at(at_))),
        };
        let subject = world.bus.subjects.customer_preferences();
        world
            .bus
            .publish(
                subject.clone(),
                "C-1/1",
                &prefs(true, "2026-01-01T00:00:00Z"),
            )
            .await?;
        // An older update arriving later changes nothing.
        world
            .bus
            .publish(
                subject.clone(),
                "C-1/0",
                &prefs(false, "2025-12-01T00:00:00Z"),
            )
            .await?;
        // Bad preferences are parked.
        world
            .bus
            .publish(subject.clone(), "bad", &CustomerPreferences::default())
            .await?;
        // So are ones out of bounds (an id over 128 bytes, a date in year 9999), with field, value and limit.
        let mut far = prefs(false, "2026-01-01T00:00:00Z");
        far.customer_id = "C".repeat(300);
        far.updated_at = Some(backorder_runtime::time::to_proto(at(
            "9999-01-01T00:00:00Z",
        )));
        world.bus.publish(subject.clone(), "far", &far).await?;
        let letters: Vec<(String, DeadLetter)> = world
            .wait_stored(
                StreamKind::DeadLetter,
                &world.bus.subjects.dead_letter("notifier"),
                2,
            )
            .await?;
        assert!(
            letters[0].1.error.contains("customer_id: is missing"),
            "{}",
            letters[0].1.error
        );
        let error = &letters[1].1.error;
        assert!(
            error.contains("customer_id: ")
                && error.contains("is 300 bytes long; at most 128")
                && error.contains(
                    "updated_at: 9999-01-01T00:00:00+00:00 is outside the years 2000..=2199"
                ),
            "{error}"
        );

        let buyer = customer("buyer@example.com", "+4915112345678");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Shipped,
                buyer.clone(),
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                1,
            )
            .await?;
        settle().await;
        assert!(
            world.sms().await?.is_empty(),
            "SMS sent to a customer who opted out"
        );

        world
            .bus
            .publish(subject, "C-1/2", &prefs(false, "2026-01-02T00:00:00Z"))
            .await?;
        settle().await;
        world
            .publish_event(&event(
                "ev-2",
                "SO-1",
                Kind::Completed,
                buyer,
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        let sms: Vec<(String, SmsMessage)> = world
            .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_sms(), 1)
            .await?;
        assert_eq!(sms.len(), 1);
        assert_eq!(sms[0].0, "sms/ev-2");
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn an_sms_due_in_the_customers_night_is_held_until_morning() -> anyhow::Result<()> {
    with_notifier(
        &[
            ("BO_SMS_QUIET_HOURS", "21:00-08:00"),
            ("BO_CLOCK_START", "2026-01-10T21:30:00Z"),
        ],
        |world| async move {
            // 22:30 in Berlin.
            let buyer = customer("buyer@example.com", "+4915112345678");
            world
                .publish_event(&event(
                    "ev-1",
                    "SO-1",
                    Kind::Backordered,
                    buyer,
                    vec![line(1, 3, 0, 3)],
                ))
                .await?;
            world
                .wait_stored::<EmailMessage>(
                    StreamKind::Outbound,
                    &world.bus.subjects.notify_email(),
                    1,
                )
                .await?;
            settle().await;
            assert!(world.sms().await?.is_empty(), "SMS sent at night");

            world.advance("2026-01-11T06:59:00Z").await?;
            settle().await;
            assert!(
                world.sms().await?.is_empty(),
                "SMS sent before 08:00 in Berlin"
            );

            // 08:00 in Berlin.
            world.advance("2026-01-11T07:00:00Z").await?;
            let sms: Vec<(String, SmsMessage)> = world
                .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_sms(), 1)
                .await?;
            assert_eq!(sms[0].0, "sms/ev-1");
            Ok(world)
        },
    )
    .await
}

#[tokio::test]
async fn a_redelivered_or_replayed_event_never_yields_a_second_message() -> anyhow::Result<()> {
    with_notifier(&[], |mut world| async move {
        let buyer = customer("buyer@example.com", "+4915112345678");
        let first = event(
            "ev-1",
            "SO-1",
            Kind::Backordered,
            buyer.clone(),
            vec![line(1, 3, 0, 3)],
        );
        world.publish_event(&first).await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                1,
            )
            .await?;
        world
            .wait_stored::<SmsMessage>(StreamKind::Outbound, &world.bus.subjects.notify_sms(), 1)
            .await?;

        // The same event under another stream id: what a redelivery or a replay looks like to the notifier.
        let subject = world.bus.subjects.customer_event();
        world
            .bus
            .publish(subject.clone(), "ev-1-again", &first)
            .await?;
        settle().await;
        // And once more after a restart.
        world.stop().await?;
        world.start().await?;
        world
            .bus
            .publish(subject.clone(), "ev-1-replayed", &first)
            .await?;
        // A new event after the restart is still told.
        world
            .publish_event(&event(
                "ev-2",
                "SO-1",
                Kind::ReadyToShip,
                buyer,
                vec![line(1, 3, 3, 0)],
            ))
            .await?;
        let emails: Vec<(String, EmailMessage)> = world
            .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_email(), 2)
            .await?;
        settle().await;
        let ids: Vec<String> = world
            .emails()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["email/ev-1", "email/ev-2"], "{emails:?}");
        let ids: Vec<String> = world.sms().await?.into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["sms/ev-1", "sms/ev-2"]);
        // Not even published again (which the stream would have dropped).
        assert_eq!(world.seen.count(&world.bus.subjects.notify_email()), 2);
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn events_that_cannot_be_told_are_parked() -> anyhow::Result<()> {
    with_notifier(&[], |world| async move {
        let mut no_customer = event("ev-3", "SO-3", Kind::Backordered, customer("", ""), vec![]);
        no_customer.customer = None;
        world.publish_event(&no_customer).await?;
        world
            .bus
            .publish_bytes(
                world.bus.subjects.customer_event(),
                "garbage",
                b"\xff\xff"[..].into(),
            )
            .await?;
        let letters: Vec<(String, DeadLetter)> = world
            .wait_stored(
                StreamKind::DeadLetter,
                &world.bus.subjects.dead_letter("notifier"),
                2,
            )
            .await?;
        assert_eq!(letters.len(), 2);
        assert!(
            letters[0].1.error.contains("customer is missing"),
            "{}",
            letters[0].1.error
        );
        assert_eq!(letters[0].1.message_id, "ev-3");
        assert!(
            letters[1].1.error.contains("cannot decode"),
            "{}",
            letters[1].1.error
        );
        assert_eq!(
            DeadLetter::decode(letters[1].1.encode_to_vec().as_slice())?,
            letters[1].1
        );
        assert!(world.emails().await?.is_empty());
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn events_waiting_in_their_window_survive_a_restart() -> anyhow::Result<()> {
    with_notifier(
        &[("BO_NOTIFY_COALESCE_SECS", "60")],
        |mut world| async move {
            let buyer = customer("buyer@example.com", "");
            world
                .publish_event(&event(
                    "ev-1",
                    "SO-1",
                    Kind::Backordered,
                    buyer.clone(),
                    vec![line(1, 2, 0, 2)],
                ))
                .await?;
            settle().await;
            world.stop().await?;
            world.start().await?;
            world
                .publish_event(&event(
                    "ev-2",
                    "SO-1",
                    Kind::Backordered,
                    buyer,
                    vec![line(2, 5, 0, 5)],
                ))
                .await?;
            settle().await;
            assert!(world.emails().await?.is_empty());
            world.advance("2026-01-10T10:05:00Z").await?;
            world
                .wait_stored::<EmailMessage>(
                    StreamKind::Outbound,
                    &world.bus.subjects.notify_email(),
                    1,
                )
                .await?;
            settle().await;
            let emails = world.emails().await?;
            assert_eq!(emails.len(), 1);
            assert_eq!(
                emails[0].1.subject,
                "Ihre Bestellung SO-1: 7 Artikel im Rückstand"
            );
            Ok(world)
        },
    )
    .await
}

/// How fast events become emails, window 0: `cargo test -p notifier --test nats -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn throughput() -> anyhow::Result<()> {
    let window = if std::env::var("BO_NOTIFY_BENCH_INTAKE_ONLY").is_ok() {
        "3600"
    } else {
        "0"
    };
    with_notifier(&[("BO_NOTIFY_COALESCE_SECS", window)], |world| async move {
        let n: usize = std::env::var("BO_NOTIFY_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        let buyer = customer("buyer@example.com", "+4915112345678");
        let started = std::time::Instant::now();
        let subject = world.bus.subjects.customer_event();
        let mut acks = Vec::with_capacity(n);
        for i in 0..n {
            let e = event(&format!("ev-{i}"), &format!("SO-{i}"), Kind::Backordered, buyer.clone(), vec![line(1, 3, 1, 3)]);
            acks.push(
                world
                    .bus
                    .send(subject.clone(), &e.event_id, e.encode_to_vec().into())
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        let published = started.elapsed();
        // How long the intake alone takes (all events stored, acked), measured with a long window.
        if std::env::var("BO_NOTIFY_BENCH_INTAKE_ONLY").is_ok() {
            let stream = world.bus.js.get_stream(world.bus.subjects.stream(StreamKind::Internal)).await?;
            loop {
                let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream.get_consumer("notifier").await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let info = consumer.info().await?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            println!("{n} events taken in {:?}", started.elapsed());
            return Ok(world);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            let emails = world.seen.count(&world.bus.subjects.notify_email());
            let sms = world.seen.count(&world.bus.subjects.notify_sms());
            if (emails >= n && sms >= n) || std::time::Instant::now() > deadline {
                let total = started.elapsed();
                println!(
                    "{n} events published in {published:?}; {emails} emails and {sms} SMS after {total:?}: {:.0} events/s",
                    n as f64 / total.as_secs_f64()
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(world)
    })
    .await
}

/// Makes the `<P>_NOTIFIER_SENT` bucket refuse new records (full: `max_messages` at what it holds, and a
/// key-value stream discards new), or takes the limit away again. A real fault of the store, no mock.
async fn sent_bucket_full(world: &World, full: bool) -> anyhow::Result<()> {
    let bucket = world.bus.subjects.notifier_sent_bucket();
    let kv = world.bus.js.get_key_value(&bucket).await?;
    // One record, so "as many as it holds" is not 0 (which means no limit).
    kv.put("filler", "x".into()).await?;
    let mut stream = world.bus.js.get_stream(format!("KV_{bucket}")).await?;
    let info = stream.info().await?;
    let mut config = info.config.clone();
    config.max_messages = if full { info.state.messages as i64 } else { -1 };
    world.bus.js.update_stream(&config).await?;
    Ok(())
}

#[tokio::test]
async fn a_message_in_flight_is_sent_as_decided_and_a_later_event_goes_in_the_next_one()
-> anyhow::Result<()> {
    use notifier::coalesce::{Channel, message_id};
    with_notifier(
        &[("BO_NOTIFY_COALESCE_SECS", "60")],
        |mut world| async move {
            let buyer = customer("buyer@example.com", "");
            for i in 1..=2 {
                world
                    .publish_event(&event(
                        &format!("ev-{i}"),
                        "SO-1",
                        Kind::Backordered,
                        buyer.clone(),
                        vec![line(i, 2, 0, 2)],
                    ))
                    .await?;
            }
            settle().await;
            // The message goes out, but recording what it told fails: the state a crash between the two
            // leaves, held open.
            sent_bucket_full(&world, true).await?;
            world.advance("2026-01-10T10:01:00Z").await?;
            let emails: Vec<(String, EmailMessage)> = world
                .wait_stored(StreamKind::Outbound, &world.bus.subjects.notify_email(), 1)
                .await?;
            let decided = message_id(Channel::Email, &["ev-1".into(), "ev-2".into()]);
            assert_eq!(emails[0].0, decided);

            // An event of the same order arrives while the message is in flight, then the service restarts.
            world
                .publish_event(&event(
                    "ev-3",
                    "SO-1",
                    Kind::Backordered,
                    buyer,
                    vec![line(3, 5, 0, 5)],
                ))
                .await?;
            settle().await;
            world.stop().await?;
            sent_bucket_full(&world, false).await?;
            world.start().await?;
            settle().await;
            world.advance("2026-01-10T10:03:00Z").await?;
            world
                .wait_stored::<EmailMessage>(
                    StreamKind::Outbound,
                    &world.bus.subjects.notify_email(),
                    2,
                )
                .await?;
            settle().await;
            let emails = world.emails().await?;
            let ids: Vec<&str> = emails.iter().map(|(id, _)| id.as_str()).collect();
            // The first message once (re-published under its id, which the stream dropped), ev-3 on its own.
            assert_eq!(ids, [decided.as_str(), "email/ev-3"], "{emails:#?}");
            assert_eq!(
                emails[0].1.subject,
                "Ihre Bestellung SO-1: 4 Artikel im Rückstand"
            );
            assert_eq!(
                emails[1].1.subject,
                "Ihre Bestellung SO-1: 5 Artikel im Rückstand"
            );
            // And what it told is recorded now.
            let sent = world
                .bus
                .js
                .get_key_value(world.bus.subjects.notifier_sent_bucket())
                .await?;
            let record = sent
                .get(notifier::store::sent_key(Channel::Email, "ev-2"))
                .await?;
            assert_eq!(record.as_deref(), Some(decided.as_bytes()));
            Ok(world)
        },
    )
    .await
}
