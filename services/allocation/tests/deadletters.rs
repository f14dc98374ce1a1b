//! The desk's endpoints that change something, over a real NATS and Postgres with the whole allocation
//! application running on a prefix of its own: dead letters listed (newest first, by service, by sequence, in
//! pages) and replayed (the stock of a replayed receipt arrives, each replay is recorded and numbered), their
//! errors as service error headers; and `order.priority` from request to the store.

use std::collections::HashMap;
use std::time::Duration;

use allocation::{Application, Config};
use backorder_proto::Message;
use backorder_proto::v1::{
    ChangePriorityReply, ChangePriorityRequest, DeadLetter, ListDeadLettersReply,
    ListDeadLettersRequest, OrderAccepted, OrderLine, OrderPlaced, ReplayDeadLetterReply,
    ReplayDeadLetterRequest, StockReceived,
};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::query::{self, QueryError};
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, time};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// allocation running on a prefix of its own, against the test's database.
struct Running {
    bus: Bus,
    subjects: Subjects,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(pool: &PgPool) -> Running {
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("dlq{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let database = pool
        .connect_options()
        .get_database()
        .expect("a test database")
        .to_string();
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let source: HashMap<String, String> = [
        ("NATS_URL", nats.clone()),
        (
            "NATS_CREDS",
            std::env::var("NATS_CREDS").unwrap_or_default(),
        ),
        ("BO_PREFIX", prefix.clone()),
        ("DATABASE_URL", format!("{server}/{database}")),
        ("BO_DB_POOL_SIZE", "4".into()),
        ("BO_HTTP_ADDR", "127.0.0.1:0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let application = Application::build(Config::from_source(&source).unwrap())
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let subjects = Subjects::new(&prefix).unwrap();
    let bus = Bus::connect(
        &backorder_runtime::nats::NatsOptions::env_with_url(&nats).unwrap(),
        subjects.clone(),
        "deadletters-test",
    )
    .await
    .unwrap();
    // Up once the query API answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let list = ListDeadLettersRequest::default().encode_to_vec();
    while bus
        .client
        .request(subjects.api("deadletters.list"), list.clone().into())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the query API does not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Running {
        bus,
        subjects,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        for kind in StreamKind::ALL {
            let _ = self.bus.js.delete_stream(self.subjects.stream(kind)).await;
        }
    }

    /// Calls an endpoint: its reply, or the error code and message of the service error headers.
    async fn call<Rep: Message + Default>(
        &self,
        endpoint: &str,
        request: &impl Message,
    ) -> Result<Rep, (u16, String)> {
        let subject = self.subjects.api(endpoint);
        match query::request(&self.bus.client, subject, request, Duration::from_secs(10)).await {
            Ok(reply) => Ok(reply),
            Err(QueryError::Refused { code, message }) => Err((code, message)),
            Err(error) => panic!("{endpoint}: {error}"),
        }
    }

    async fn list(&self, request: ListDeadLettersRequest) -> ListDeadLettersReply {
        self.call("deadletters.list", &request).await.unwrap()
    }

    async fn replay(
        &self,
        sequence: u64,
        operator: &str,
        reason: &str,
    ) -> Result<ReplayDeadLetterReply, (u16, String)> {
        let request = ReplayDeadLetterRequest {
            sequence,
            operator: operator.into(),
            reason: reason.into(),
        };
        self.call("deadletters.replay", &request).await
    }

    /// Publishes a dead letter as a service parks one; its sequence in `<P>_DLQ`.
    async fn park(&self, service: &str, letter: &DeadLetter) -> u64 {
        self.publish(self.subjects.dead_letter(service), letter.encode_to_vec())
            .await
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) -> u64 {
        let id = uuid::Uuid::new_v4().to_string();
        self.bus
            .send(subject, &id, payload.into())
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence
    }
}

fn list(service: &str, sequence: u64, page_size: u32, page_token: &str) -> ListDeadLettersRequest {
    ListDeadLettersRequest {
        service: service.into(),
        sequence,
        page_size,
        page_token: page_token.into(),
    }
}

/// Waits until `probe` gives `Some`, for up to 20 s.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, probe: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn on_hand(pool: &PgPool, sku: &str) -> Option<i64> {
    sqlx::query_scalar("select on_hand from stock where sku = $1")
        .bind(sku)
        .fetch_optional(pool)
        .await
        .unwrap()
}

fn receipt(id: &str, sku: &str, quantity: i64) -> StockReceived {
    StockReceived {
        receipt_id: id.into(),
        sku: sku.into(),
        quantity,
        ..Default::default()
    }
}

/// A letter as allocation parks a message whose deliveries crashed the process.
fn crashed(subjects: &Subjects, payload: Vec<u8>) -> DeadLetter {
    DeadLetter {
        service: "allocation".into(),
        subject: subjects.stock_received(),
        stream: subjects.stream(StreamKind::Inbound),
        stream_sequence: 17,
        payload,
        error: "crashed or timed out 5 times (delivery 6, more than BO_MAX_DELIVER=5)".into(),
        deliveries: 6,
        failed_at: Some(time::to_proto(chrono::Utc::now())),
        message_id: "wms/R-1".into(),
    }
}

fn sequences(reply: &ListDeadLettersReply) -> Vec<u64> {
    reply.dead_letters.iter().map(|d| d.sequence).collect()
}

#[sqlx::test]
async fn a_message_allocation_cannot_read_is_listed_with_its_service_reason_and_time(pool: PgPool) {
    let app = start(&pool).await;
    let before = chrono::Utc::now();
    app.bus
        .publish_bytes(
            app.subjects.stock_received(),
            "wms/garbage",
            b"\xff\xff\xff".to_vec().into(),
        )
        .await
        .unwrap();
    let parked = eventually("the garbage is parked", || async {
        Some(app.list(list("allocation", 0, 0, "")).await).filter(|r| r.total == 1)
    })
    .await;
    let entry = &parked.dead_letters[0];
    let letter = entry.letter.as_ref().unwrap();
    assert_eq!(
        (
            letter.service.as_str(),
            letter.subject.as_str(),
            letter.message_id.as_str(),
            letter.stream.as_str()
        ),
        (
            "allocation",
            app.subjects.stock_received().as_str(),
            "wms/garbage",
            app.subjects.stream(StreamKind::Inbound).as_str()
        )
    );
    assert!(
        letter
            .error
            .contains(&format!("cannot decode {}", app.subjects.stock_received())),
        "{}",
        letter.error
    );
    assert_eq!(letter.payload, b"\xff\xff\xff");
    let parked_at = time::from_proto(entry.parked_at.as_ref().unwrap()).unwrap();
    assert!(
        parked_at >= before - chrono::Duration::seconds(1) && parked_at <= chrono::Utc::now(),
        "{parked_at}"
    );
    assert!(entry.replays.is_empty());
    let garbage = entry.sequence;

    // Three more from another service; the newest comes first, in pages.
    let mut notifier = Vec::new();
    for n in 0..3 {
        let letter = DeadLetter {
            service: "notifier".into(),
            subject: app.subjects.customer_event(),
            error: format!("no channel {n}"),
            ..Default::default()
        };
        notifier.push(app.park("notifier", &letter).await);
    }
    let first = app.list(list("", 0, 2, "")).await;
    assert_eq!(first.total, 4);
    assert_eq!(sequences(&first), [notifier[2], notifier[1]]);
    assert_eq!(
        first.dead_letters[0].letter.as_ref().unwrap().error,
        "no channel 2"
    );
    let second = app.list(list("", 0, 2, &first.next_page_token)).await;
    assert_eq!(sequences(&second), [notifier[0], garbage]);
    assert_eq!(second.next_page_token, "");
    let theirs = app.list(list("notifier", 0, 0, "")).await;
    assert_eq!(
        (theirs.total, sequences(&theirs)),
        (3, notifier.iter().rev().copied().collect())
    );
    let none = app.list(list("replenishment-trigger", 0, 0, "")).await;
    assert_eq!((none.total, none.dead_letters.len()), (0, 0));

    // One by its sequence; a deleted one is skipped.
    let one = app.list(list("", garbage, 0, "")).await;
    assert_eq!((one.total, sequences(&one)), (1, vec![garbage]));
    let elsewhere = app.list(list("notifier", garbage, 0, "")).await;
    assert_eq!(elsewhere.total, 0);
    let dlq = app
        .bus
        .js
        .get_stream(app.subjects.stream(StreamKind::DeadLetter))
        .await
        .unwrap();
    assert!(dlq.delete_message(notifier[1]).await.unwrap());
    let all = app.list(list("", 0, 0, "")).await;
    assert_eq!(all.total, 3);
    assert_eq!(sequences(&all), [notifier[2], notifier[0], garbage]);

    // Bad requests are answered by name.
    for (request, code, expected) in [
        (list("", 0, 501, ""), 400, "page_size 501 is over 500"),
        (list("", 0, 0, "not-a-token"), 400, "page_token"),
        (list("a.b", 0, 0, ""), 400, "not a service name"),
        (
            list("", 424_242, 0, ""),
            404,
            "no dead letter at sequence 424242",
        ),
    ] {
        let error = app
            .call::<ListDeadLettersReply>("deadletters.list", &request)
            .await
            .unwrap_err();
        assert_eq!(error.0, code, "{error:?}");
        assert!(error.1.contains(expected), "{expected:?} not in {error:?}");
    }
    app.stop().await;
}

#[sqlx::test]
async fn a_replayed_receipt_arrives_and_every_replay_is_recorded_and_numbered(pool: PgPool) {
    let app = start(&pool).await;
    let original = receipt("R-1", "W", 7).encode_to_vec();
    let sequence = app
        .park("allocation", &crashed(&app.subjects, original.clone()))
        .await;

    let replay = app
        .replay(sequence, "alice", "the SKU exists now")
        .await
        .unwrap()
        .replay
        .unwrap();
    assert_eq!(replay.message_id, format!("replay/{sequence}/1"));
    assert_eq!(
        (
            replay.operator.as_str(),
            replay.reason.as_str(),
            replay.subject.as_str()
        ),
        (
            "alice",
            "the SKU exists now",
            app.subjects.stock_received().as_str()
        )
    );
    let at = time::from_proto(replay.at.as_ref().unwrap()).unwrap();
    assert!((chrono::Utc::now() - at).num_seconds().abs() < 30, "{at}");
    // Stored in <P>_IN under the new id, as the original was sent.
    let inbound = app
        .bus
        .js
        .get_stream(app.subjects.stream(StreamKind::Inbound))
        .await
        .unwrap();
    let stored = inbound
        .get_raw_message(replay.stream_sequence)
        .await
        .unwrap();
    assert_eq!(stored.subject.as_str(), app.subjects.stock_received());
    assert_eq!(
        stored.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some(replay.message_id.as_str())
    );
    assert_eq!(stored.payload.as_ref(), original.as_slice());
    eventually("the replayed stock arrives", || async {
        on_hand(&pool, "W").await.filter(|units| *units == 7)
    })
    .await;

    // Replayed again: the next number; allocation knows the receipt and adds nothing. A receipt sent after it
    // shows when the replay was handled.
    let again = app
        .replay(sequence, "bob", "")
        .await
        .unwrap()
        .replay
        .unwrap();
    assert_eq!(again.message_id, format!("replay/{sequence}/2"));
    app.publish(
        app.subjects.stock_received(),
        receipt("R-2", "W", 1).encode_to_vec(),
    )
    .await;
    eventually("the receipt after the replay arrives", || async {
        on_hand(&pool, "W").await.filter(|units| *units != 7)
    })
    .await;
    assert_eq!(on_hand(&pool, "W").await, Some(8));

    let listed = app.list(list("allocation", sequence, 0, "")).await;
    let replays: Vec<(String, String)> = listed.dead_letters[0]
        .replays
        .iter()
        .map(|r| (r.operator.clone(), r.message_id.clone()))
        .collect();
    assert_eq!(
        replays,
        [
            ("alice".to_string(), format!("replay/{sequence}/1")),
            ("bob".to_string(), format!("replay/{sequence}/2")),
        ]
    );
    assert!(
        listed.dead_letters[0]
            .replays
            .iter()
            .all(|r| r.at.is_some())
    );
    let recorded: i64 =
        sqlx::query_scalar("select count(*) from dead_letter_replays where dlq_sequence = $1")
            .bind(sequence as i64)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 2);

    // What cannot be replayed is refused by name, and nothing is published or recorded.
    let mut too_large = crashed(&app.subjects, Vec::new());
    too_large.error = format!(
        "boom; payload of 2000000 bytes left out (too large for a dead letter): it is in stream {} at \
         sequence 17",
        app.subjects.stream(StreamKind::Inbound)
    );
    let too_large = app.park("allocation", &too_large).await;
    let mut foreign = crashed(&app.subjects, receipt("R-3", "W", 1).encode_to_vec());
    foreign.subject = "elsewhere.in.stock.received".into();
    let foreign = app.park("allocation", &foreign).await;
    let mut parked_again = crashed(&app.subjects, receipt("R-4", "W", 1).encode_to_vec());
    parked_again.subject = app.subjects.dead_letter("allocation");
    let parked_again = app.park("allocation", &parked_again).await;
    let not_a_letter = app
        .publish(app.subjects.dead_letter("someone"), b"\xff\xff".to_vec())
        .await;
    for (sequence, operator, code, expected) in [
        (0, "alice", 400, "sequence: is missing"),
        (sequence, "", 400, "operator: is missing"),
        (424_242, "alice", 404, "no dead letter at sequence 424242"),
        (too_large, "alice", 409, "parked without its payload"),
        (foreign, "alice", 409, "is not under this prefix"),
        (parked_again, "alice", 409, "is a dead-letter subject"),
        (not_a_letter, "alice", 409, "is not a DeadLetter"),
    ] {
        let error = app.replay(sequence, operator, "").await.unwrap_err();
        assert_eq!(error.0, code, "{error:?}");
        assert!(error.1.contains(expected), "{expected:?} not in {error:?}");
    }
    let recorded: i64 = sqlx::query_scalar("select count(*) from dead_letter_replays")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 2);
    assert_eq!(on_hand(&pool, "W").await, Some(8));
    app.stop().await;
}

#[sqlx::test]
async fn a_priority_from_the_desk_is_applied_before_the_reply(pool: PgPool) {
    let app = start(&pool).await;
    for (n, id) in ["SO-1", "SO-2"].into_iter().enumerate() {
        let order = OrderPlaced {
            order_id: id.into(),
            lines: vec![OrderLine {
                line_no: 1,
                sku: "W".into(),
                quantity: 3,
            }],
            placed_at: Some(time::to_proto(
                chrono::Utc::now() + chrono::Duration::seconds(n as i64),
            )),
            ..Default::default()
        };
        let accepted = OrderAccepted {
            order: Some(order),
            accepted_at: Some(time::to_proto(chrono::Utc::now())),
            digest: String::new(),
        };
        app.publish(app.subjects.order_accepted(), accepted.encode_to_vec())
            .await;
    }
    let waiting = || async {
        let queue: Vec<String> = sqlx::query_scalar(
            "select order_id from order_lines where sku = 'W' and backordered > 0
             order by priority desc, placed_at, order_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        queue
    };
    eventually("both orders wait", || async {
        Some(waiting().await).filter(|q| q.len() == 2)
    })
    .await;
    assert_eq!(waiting().await, ["SO-1", "SO-2"]);

    let reply: ChangePriorityReply = app
        .call(
            "order.priority",
            &ChangePriorityRequest {
                order_id: "SO-2".into(),
                priority: 5,
                reason: "store order".into(),
                operator: "bob".into(),
            },
        )
        .await
        .unwrap();
    assert!(reply.applied);
    assert!(
        reply.request_id.starts_with("desk/"),
        "{}",
        reply.request_id
    );
    // The order as it is after: raised, first in its queue, the change in its trail.
    let order = reply.order.expect("the order after the change");
    assert_eq!((order.order_id.as_str(), order.priority), ("SO-2", 5));
    let place = order.lines[0]
        .queue
        .as_ref()
        .expect("a waiting line's place");
    assert_eq!((place.position, place.units_ahead), (1, 0));
    assert!(
        order
            .history
            .iter()
            .any(|h| h.change == "reprioritised"
                && h.detail == "priority 0 -> 5: store order (by bob)"),
        "{:?}",
        order.history
    );
    // Applied when the reply came: the store has it.
    assert_eq!(waiting().await, ["SO-2", "SO-1"]);
    let detail: String = sqlx::query_scalar(
        "select detail from line_history where order_id = 'SO-2' and change = 'reprioritised'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(detail, "priority 0 -> 5: store order (by bob)");
    let processed: bool = sqlx::query_scalar(
        "select exists (select 1 from processed_messages where message_id = $1)",
    )
    .bind(format!("priority/{}", reply.request_id))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(processed);

    for (request, code, expected) in [
        (("SO-2", 6, ""), 400, "operator: is missing"),
        (
            ("SO-2", 2_000_000, "bob"),
            400,
            "priority: 2000000 is outside",
        ),
        (("SO-404", 6, "bob"), 404, "no order \"SO-404\""),
    ] {
        let ((order_id, priority, operator), code, expected) = (request, code, expected);
        let error = app
            .call::<ChangePriorityReply>(
                "order.priority",
                &ChangePriorityRequest {
                    order_id: order_id.into(),
                    priority,
                    reason: String::new(),
                    operator: operator.into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(error.0, code, "{error:?}");
        assert!(error.1.contains(expected), "{expected:?} not in {error:?}");
    }
    let priority: i32 = sqlx::query_scalar("select priority from orders where order_id = 'SO-2'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(priority, 5, "a refused request changes nothing");
    app.stop().await;
}
