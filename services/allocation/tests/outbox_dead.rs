//! The outbox relay against a real NATS and Postgres: a row that can never be published is parked (in
//! `outbox_dead` and on `<p>.dlq.allocation-outbox`) and the rows behind it go out; a row that may go out later
//! stays.

use std::sync::Arc;

use allocation::outbox::Relay;
use backorder_proto::Message;
use backorder_proto::v1::DeadLetter;
use backorder_runtime::Subjects;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use sqlx::PgPool;
use tokio::sync::Notify;

/// A bus on a prefix of its own (its streams created).
async fn bus() -> Bus {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("obx{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    Bus::connect(
        &backorder_runtime::nats::NatsOptions::env_with_url(&url).unwrap(),
        Subjects::new(&prefix).unwrap(),
        "outbox-test",
    )
    .await
    .unwrap()
}

async fn delete_streams(bus: &Bus) {
    for kind in StreamKind::ALL {
        let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
    }
}

async fn insert(pool: &PgPool, rows: &[(&str, &str, Vec<u8>)]) {
    for (message_id, subject, payload) in rows {
        sqlx::query("insert into outbox (message_id, subject, payload) values ($1, $2, $3)")
            .bind(message_id)
            .bind(subject)
            .bind(payload)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// (subject, Nats-Msg-Id, payload) of every message in a stream, in stream order.
async fn stored(bus: &Bus, kind: StreamKind) -> Vec<(String, String, Vec<u8>)> {
    let mut stream = bus.js.get_stream(bus.subjects.stream(kind)).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        if let Ok(m) = stream.get_raw_message(sequence).await {
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            messages.push((m.subject.to_string(), id, m.payload.to_vec()));
        }
    }
    messages
}

fn relay(pool: &PgPool, bus: &Bus) -> Relay {
    Relay {
        pool: pool.clone(),
        bus: bus.clone(),
        wake: Arc::new(Notify::new()),
    }
}

#[sqlx::test]
async fn a_row_over_the_max_payload_is_parked_and_the_rows_behind_it_go_out(pool: PgPool) {
    let bus = bus().await;
    let max_payload = bus.client.server_info().max_payload;
    let status = bus.subjects.order_status();
    let big = vec![b'x'; (2 << 20).max(2 * max_payload)];
    insert(
        &pool,
        &[
            ("first", &status, b"first".to_vec()),
            ("big", &status, big.clone()),
            ("bad-subject", "no spaces in subjects", b"bad".to_vec()),
            ("third", &status, b"third".to_vec()),
        ],
    )
    .await;

    assert_eq!(relay(&pool, &bus).relay_once().await.unwrap(), 4);

    let out = stored(&bus, StreamKind::Outbound).await;
    assert_eq!(
        out,
        [
            (status.clone(), "first".into(), b"first".to_vec()),
            (status.clone(), "third".into(), b"third".to_vec()),
        ]
    );
    let left: i64 = sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let dead: Vec<(String, String, Vec<u8>, String)> =
        sqlx::query_as("select message_id, subject, payload, error from outbox_dead order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(
        (dead[0].0.as_str(), dead[0].1.as_str()),
        ("big", status.as_str())
    );
    assert_eq!(dead[0].2, big, "the row is kept whole");
    assert!(dead[0].3.contains("max payload"), "{}", dead[0].3);
    assert_eq!(dead[1].0, "bad-subject");
    assert!(dead[1].3.contains("invalid subject"), "{}", dead[1].3);

    let dlq = stored(&bus, StreamKind::DeadLetter).await;
    let subject = format!("{}.dlq.allocation-outbox", bus.subjects.prefix());
    assert_eq!(dlq.len(), 2);
    assert!(dlq.iter().all(|m| m.0 == subject));
    let letter = DeadLetter::decode(dlq[0].2.as_slice()).unwrap();
    assert_eq!(dlq[0].1, "allocation-outbox/big");
    assert_eq!(
        (
            letter.message_id.as_str(),
            letter.subject.as_str(),
            letter.service.as_str()
        ),
        ("big", status.as_str(), "allocation")
    );
    assert!(letter.error.contains("max payload"), "{}", letter.error);
    assert!(letter.error.contains("payload cut"), "{}", letter.error);
    assert!(!letter.payload.is_empty() && big.starts_with(&letter.payload));
    let letter = DeadLetter::decode(dlq[1].2.as_slice()).unwrap();
    assert_eq!(
        (letter.message_id.as_str(), letter.payload.as_slice()),
        ("bad-subject", b"bad".as_slice())
    );

    // Nothing is left to do: the next pass publishes nothing.
    assert_eq!(relay(&pool, &bus).relay_once().await.unwrap(), 0);
    delete_streams(&bus).await;
}

#[sqlx::test]
async fn a_row_that_may_go_out_later_stays_and_the_others_are_not_held_up(pool: PgPool) {
    let bus = bus().await;
    let status = bus.subjects.order_status();
    // No stream captures this subject (yet): not the row's fault, so it is tried again, not parked.
    let nowhere = format!("{}.nowhere", bus.subjects.prefix());
    insert(
        &pool,
        &[
            ("first", &status, b"first".to_vec()),
            ("later", &nowhere, b"later".to_vec()),
            ("third", &status, b"third".to_vec()),
        ],
    )
    .await;

    let error = relay(&pool, &bus).relay_once().await.unwrap_err();
    assert!(format!("{error:#}").contains("later"), "{error:#}");

    let ids: Vec<String> = stored(&bus, StreamKind::Outbound)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(ids, ["first", "third"]);
    let left: Vec<String> = sqlx::query_scalar("select message_id from outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["later"]);
    let dead: i64 = sqlx::query_scalar("select count(*) from outbox_dead")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    delete_streams(&bus).await;
}
