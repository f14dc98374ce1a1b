//! The query API's read endpoints against the whole allocation service: real NATS (`NATS_URL`), a Postgres
//! database of the test's own (`#[sqlx::test]`), a prefix of its own, a simulated clock. The service is driven
//! with the messages an OMS, a WMS and purchasing send, and asked over NATS request/reply like any client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use allocation::{Application, Config};
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use backorder_proto::v1::{
    BackorderOrder, BackorderRow, ClockAdvanced, Customer, GetOrderReply, GetOrderRequest,
    GetSkuQueueReply, GetSkuQueueRequest, ListBackordersReply, ListBackordersRequest,
    OrderAccepted, OrderLine, OrderPlaced, ShipPolicy, SkuUpserted, StockAdjusted, StockReceived,
    SupplyUpdated, order_status::Status,
};
use backorder_proto::{Message, Timestamp};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::query;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, time};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;

const START: &str = "2026-12-01T00:00:00Z";

/// START plus `n` days.
fn day(n: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(START)
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::days(n)
}

fn ts(n: i64) -> Option<Timestamp> {
    Some(time::to_proto(day(n)))
}

fn days(at: &Option<Timestamp>) -> Option<i64> {
    at.as_ref()
        .map(|at| (time::from_proto(at).unwrap() - day(0)).num_days())
}

/// The running service, a client bus of the same prefix and the test's database.
struct Service {
    bus: Bus,
    pool: PgPool,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Messages published to the consumers so far: each leaves one row in `processed_messages`.
    sent: i64,
}

impl Service {
    async fn start(pool: PgPool) -> Service {
        let prefix = format!("api{}", uuid::Uuid::new_v4().simple());
        let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let database = pool.connect_options().get_database().unwrap().to_string();
        let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
        let creds = std::env::var("NATS_CREDS").unwrap_or_default();
        let source = HashMap::from([
            ("NATS_URL", nats.as_str()),
            ("NATS_CREDS", creds.as_str()),
            ("BO_PREFIX", prefix.as_str()),
            ("DATABASE_URL", url.as_str()),
            ("BO_DB_POOL_SIZE", "4"),
            ("BO_HTTP_ADDR", "127.0.0.1:0"),
            ("BO_CLOCK", "simulated"),
            ("BO_CLOCK_START", START),
        ]);
        let app = Application::build(Config::from_source(&source).unwrap())
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let bus = Bus::connect(
            &backorder_runtime::nats::NatsOptions::env_with_url(&nats).unwrap(),
            Subjects::new(&prefix).unwrap(),
            "api-test",
        )
        .await
        .unwrap();
        Service {
            bus,
            pool,
            stop,
            running,
            sent: 0,
        }
    }

    fn subjects(&self) -> &Subjects {
        &self.bus.subjects
    }

    fn prefix(&self) -> &str {
        self.subjects().prefix()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap().unwrap();
        for kind in StreamKind::ALL {
            let _ = self
                .bus
                .js
                .delete_stream(self.bus.subjects.stream(kind))
                .await;
        }
    }

    async fn send(&mut self, subject: String, id: &str, message: &impl Message) {
        self.bus.publish(subject, id, message).await.unwrap();
        self.sent += 1;
    }

    /// Waits until every message sent so far is handled.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let handled: i64 = sqlx::query_scalar("select count(*) from processed_messages")
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if handled >= self.sent {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {handled} of {} messages handled",
                self.sent
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Accepts one order (placed `placed` minutes after day -1) and waits until it is handled.
    async fn order(
        &mut self,
        id: &str,
        customer: &str,
        priority: i32,
        placed: i64,
        policy: ShipPolicy,
        lines: &[(&str, i64)],
    ) {
        let order = OrderPlaced {
            order_id: id.into(),
            customer: Some(Customer {
                id: customer.into(),
                email: format!("{}@example.com", customer.to_lowercase()),
                ..Default::default()
            }),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, (sku, quantity))| OrderLine {
                    line_no: i as u32 + 1,
                    sku: sku.to_string(),
                    quantity: *quantity,
                })
                .collect(),
            priority,
            ship_policy: policy as i32,
            placed_at: Some(time::to_proto(day(-1) + chrono::Duration::minutes(placed))),
            channel: "web".into(),
        };
        let accepted = OrderAccepted {
            order: Some(order),
            accepted_at: None,
            digest: String::new(),
        };
        self.send(
            self.subjects().order_accepted(),
            &format!("order/{id}"),
            &accepted,
        )
        .await;
        self.settle().await;
    }

    async fn supply(&mut self, po: &str, sku: &str, open: i64, expected: i64) {
        let supply = SupplyUpdated {
            po_id: po.into(),
            line_no: 1,
            sku: sku.into(),
            quantity_open: open,
            expected_at: ts(expected),
            cancelled: false,
            request_id: String::new(),
        };
        self.send(
            self.subjects().supply_updated(),
            &format!("supply/{po}"),
            &supply,
        )
        .await;
    }

    /// A request that must be answered: the reply decoded.
    async fn ask<Rep: Message + Default>(&self, endpoint: &str, request: &impl Message) -> Rep {
        let subject = self.subjects().api(endpoint);
        query::request(&self.bus.client, subject, request, Duration::from_secs(10))
            .await
            .unwrap_or_else(|error| panic!("{endpoint} failed: {error}"))
    }

    /// A request that must be refused: its error code and message, from the micro service headers.
    async fn refused(&self, endpoint: &str, body: Vec<u8>) -> (u16, String) {
        let reply = self
            .bus
            .client
            .request(self.subjects().api(endpoint), body.into())
            .await
            .unwrap();
        let headers = reply.headers.expect("an error reply has headers");
        let code = headers
            .get(NATS_SERVICE_ERROR_CODE)
            .expect("an error code")
            .as_str()
            .parse()
            .unwrap();
        let message = headers.get(NATS_SERVICE_ERROR).unwrap().to_string();
        assert!(reply.payload.is_empty(), "an error reply has no body");
        (code, message)
    }

    async fn list(&self, request: ListBackordersRequest) -> ListBackordersReply {
        self.ask("backorders.list", &request).await
    }

    /// The worklist's (order id, line no) with the filters of `request`.
    async fn keys(&self, request: ListBackordersRequest) -> Vec<(String, u32)> {
        self.list(request)
            .await
            .backorders
            .iter()
            .map(key)
            .collect()
    }

    /// `$SRV.<verb>.backorder` of this test's instance (others may be running under other prefixes).
    async fn discover(&self, verb: &str) -> serde_json::Value {
        let client = &self.bus.client;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let inbox = client.new_inbox();
            let mut replies = client.subscribe(inbox.clone()).await.unwrap();
            client
                .publish_with_reply(format!("$SRV.{verb}.backorder"), inbox, "".into())
                .await
                .unwrap();
            let round = Instant::now() + Duration::from_millis(500);
            while let Ok(Some(reply)) = tokio::time::timeout_at(round.into(), replies.next()).await
            {
                let json: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
                if json["metadata"]["prefix"] == self.prefix() {
                    return json;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no backorder service with prefix {} answers {verb}",
                self.prefix()
            );
        }
    }
}

fn key(row: &BackorderRow) -> (String, u32) {
    (row.order_id.clone(), row.line_no)
}

fn keys(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(o, l)| (o.to_string(), *l)).collect()
}

#[sqlx::test]
async fn the_service_is_discovered_and_bad_requests_get_specific_errors(pool: PgPool) {
    let service = Service::start(pool).await;

    let ping = service.discover("PING").await;
    assert_eq!(ping["name"], "backorder");
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    let id = ping["id"].as_str().unwrap().to_string();
    let info = service.discover("INFO").await;
    assert_eq!(info["id"], id.as_str());
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    for endpoint in ["order.get", "backorders.list", "sku.queue"] {
        let subject = service.subjects().api(endpoint);
        assert!(
            subjects.contains(&subject.as_str()),
            "{subject} in {subjects:?}"
        );
    }

    let unknown = GetOrderRequest {
        order_id: "SO-404".into(),
    };
    assert_eq!(
        service.refused("order.get", unknown.encode_to_vec()).await,
        (404, "order SO-404 is not known".into())
    );
    assert_eq!(
        service
            .refused("order.get", GetOrderRequest::default().encode_to_vec())
            .await,
        (400, "order_id: is missing".into())
    );
    let long = GetOrderRequest {
        order_id: "x".repeat(129),
    };
    let (code, message) = service.refused("order.get", long.encode_to_vec()).await;
    assert_eq!(code, 400);
    assert!(message.contains("at most 128"), "{message}");
    let (code, message) = service
        .refused("order.get", b"this is not protobuf".to_vec())
        .await;
    assert_eq!(code, 400);
    assert!(
        message.starts_with("the body is not a GetOrderRequest"),
        "{message}"
    );

    let token = ListBackordersRequest {
        page_token: "made-up".into(),
        ..Default::default()
    };
    let (code, message) = service
        .refused("backorders.list", token.encode_to_vec())
        .await;
    assert_eq!(code, 400);
    assert!(
        message.contains("page_token \"made-up\" is not a token this endpoint gave"),
        "{message}"
    );
    let huge = ListBackordersRequest {
        page_size: 1001,
        ..Default::default()
    };
    assert_eq!(
        service
            .refused("backorders.list", huge.encode_to_vec())
            .await,
        (400, "page_size: 1001 is more than 1000".into())
    );
    let unordered = ListBackordersRequest {
        order_by: 42,
        ..Default::default()
    };
    assert_eq!(
        service
            .refused("backorders.list", unordered.encode_to_vec())
            .await,
        (400, "order_by: 42 is not a BackorderOrder".into())
    );
    // An empty worklist is a list, not an error.
    let empty = service.list(ListBackordersRequest::default()).await;
    assert_eq!((empty.total, empty.next_page_token.as_str()), (0, ""));

    let sku = GetSkuQueueRequest { sku: "NOPE".into() };
    assert_eq!(
        service.refused("sku.queue", sku.encode_to_vec()).await,
        (404, "SKU NOPE is not known".into())
    );
    assert_eq!(
        service
            .refused("sku.queue", GetSkuQueueRequest::default().encode_to_vec())
            .await,
        (400, "sku: is missing".into())
    );

    // Every request and error is counted, per endpoint.
    let stats = service
        .bus
        .client
        .request(format!("$SRV.STATS.backorder.{id}"), "".into())
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
    assert_eq!(
        (&stats["name"], &stats["type"]),
        (
            &serde_json::json!("backorder"),
            &serde_json::json!("io.nats.micro.v1.stats_response")
        )
    );
    let endpoint = |name: &str| {
        stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap()
    };
    let order_get = endpoint("order-get");
    assert_eq!(
        (
            order_get["num_requests"].as_u64(),
            order_get["num_errors"].as_u64()
        ),
        (Some(4), Some(4))
    );
    let list = endpoint("backorders-list");
    assert_eq!(
        (list["num_requests"].as_u64(), list["num_errors"].as_u64()),
        (Some(4), Some(3))
    );
    service.stop().await;
}

/// The scenario, in the order it happens (ETA = the covering PO's date plus a day of handling):
///
/// - W: 10 in stock, PO-1 30 units due day 10, PO-2 20 units due day 20, lead time 10 days; V unknown.
/// - SO-1 (ship complete) 25 W: 10 allocated (held), 15 wait, ETA day 11 by PO-1: promised day 11.
/// - SO-2 10 W, ETA day 11 (promised). SO-3 20 W at priority 5 jumps the queue: it takes PO-1's first 20,
///   so SO-1 and SO-2 now need PO-2: day 21, after the day 11 they were promised (late).
/// - SO-4 10 W and SO-5 (5 W, 3 V): no PO covers them: estimates, day 21 (not before the last PO) and
///   day 15 for V (the default lead time of 14 days).
#[sqlx::test]
async fn an_order_its_sku_queue_and_the_worklist_as_the_desk_sees_them(pool: PgPool) {
    let mut service = Service::start(pool.clone()).await;
    let rule = SkuUpserted {
        sku: "W".into(),
        backorderable: true,
        supplier_id: "ACME".into(),
        lead_time_days: 10,
        ..Default::default()
    };
    service
        .send(service.subjects().sku_upserted(), "sku/W", &rule)
        .await;
    let count = StockAdjusted {
        adjustment_id: "A-1".into(),
        sku: "W".into(),
        delta: 10,
        reason: "initial count".into(),
    };
    service
        .send(
            service.subjects().stock_adjusted(),
            "adjustment/A-1",
            &count,
        )
        .await;
    service.supply("PO-1", "W", 30, 10).await;
    service.supply("PO-2", "W", 20, 20).await;
    service.settle().await;
    let partial = ShipPolicy::ShipPartial;
    service
        .order("SO-1", "C-1", 0, 1, ShipPolicy::ShipComplete, &[("W", 25)])
        .await;
    service
        .order("SO-2", "C-2", 0, 2, partial, &[("W", 10)])
        .await;
    service
        .order("SO-3", "C-1", 5, 3, partial, &[("W", 20)])
        .await;
    service
        .order("SO-4", "C-3", 0, 4, partial, &[("W", 10)])
        .await;
    service
        .order("SO-5", "C-2", 0, 5, partial, &[("W", 5), ("V", 3)])
        .await;

    // The queue of W in fill order, each line's place and promise, and what each PO covers.
    let w = GetSkuQueueRequest { sku: "W".into() };
    let queue: GetSkuQueueReply = service.ask("sku.queue", &w).await;
    let stock = queue.stock.unwrap();
    assert_eq!(
        (
            stock.on_hand,
            stock.allocated,
            stock.available,
            stock.backordered,
            stock.inbound
        ),
        (10, 10, 0, 60, 50)
    );
    let rules = queue.rules.unwrap();
    assert!(rules.known && rules.backorderable);
    assert_eq!(
        (rules.supplier_id.as_str(), rules.lead_time_days),
        ("ACME", 10)
    );
    let lines: Vec<_> = queue
        .queue
        .iter()
        .map(|e| {
            let place = e.place.clone().unwrap();
            let promise = e.promise.unwrap();
            (
                e.order_id.as_str(),
                e.backordered,
                place.position,
                place.units_ahead,
                place.po_id,
                days(&promise.eta),
                promise.eta_estimated,
                days(&promise.promised_eta),
                promise.late,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "SO-3",
                20,
                1,
                0,
                "PO-1".to_string(),
                Some(11),
                false,
                Some(11),
                false
            ),
            (
                "SO-1",
                15,
                2,
                20,
                "PO-2".to_string(),
                Some(21),
                false,
                Some(11),
                true
            ),
            (
                "SO-2",
                10,
                3,
                35,
                "PO-2".to_string(),
                Some(21),
                false,
                Some(11),
                true
            ),
            (
                "SO-4",
                10,
                4,
                45,
                String::new(),
                Some(21),
                true,
                Some(21),
                false
            ),
            (
                "SO-5",
                5,
                5,
                55,
                String::new(),
                Some(21),
                true,
                Some(21),
                false
            ),
        ]
    );
    let covers: Vec<_> = queue
        .supply
        .iter()
        .map(|s| {
            (
                s.po_id.as_str(),
                s.quantity_open,
                days(&s.expected_at),
                s.overdue,
                s.first_position,
                s.last_position,
                s.covers_units,
            )
        })
        .collect();
    assert_eq!(
        covers,
        [
            ("PO-1", 30, Some(10), false, 1, 1, 30),
            ("PO-2", 20, Some(20), false, 2, 3, 20)
        ]
    );
    assert_eq!(queue.uncovered, 10);
    let v: GetSkuQueueReply = service
        .ask("sku.queue", &GetSkuQueueRequest { sku: "V".into() })
        .await;
    let rules = v.rules.unwrap();
    assert!(
        !rules.known && rules.backorderable,
        "V follows the defaults"
    );
    assert_eq!(rules.lead_time_days, 14);
    assert_eq!((v.queue.len(), v.uncovered, v.supply.len()), (1, 3, 0));
    let promise = v.queue[0].promise.unwrap();
    assert_eq!(
        (days(&promise.eta), promise.eta_estimated),
        (Some(15), true)
    );

    // 25 W arrive (no PO named): SO-3 is filled, SO-1 gets 5 and now rests on PO-1 again.
    let receipt = StockReceived {
        receipt_id: "R-1".into(),
        sku: "W".into(),
        quantity: 25,
        po_id: String::new(),
        received_at: ts(0),
    };
    service
        .send(service.subjects().stock_received(), "receipt/R-1", &receipt)
        .await;
    service.settle().await;
    let so3: GetOrderReply = service
        .ask(
            "order.get",
            &GetOrderRequest {
                order_id: "SO-3".into(),
            },
        )
        .await;
    assert_eq!(so3.status(), Status::Allocated);
    assert_eq!(so3.priority, 5);
    let line = &so3.lines[0];
    assert_eq!((line.allocated, line.held, line.backordered), (20, 0, 0));
    assert!(
        line.queue.is_none(),
        "a line that does not wait has no place"
    );
    assert_eq!(
        (days(&line.ready_at), line.backordered_since),
        (Some(0), None)
    );
    let promise = line.promise.unwrap();
    assert_eq!(
        (promise.eta, days(&promise.promised_eta), promise.late),
        (None, Some(11), false)
    );
    let filled: Vec<_> = so3
        .history
        .iter()
        .filter(|h| h.change == "filled")
        .map(|h| (h.quantity, h.cause.as_str()))
        .collect();
    assert_eq!(filled, [(20, "receipt/R-1")]);

    // Day 12: PO-1 did not come (overdue: it now counts from today plus 3 days of grace). SO-6 joins the
    // queue at its end, covered by PO-2.
    let to = ClockAdvanced { to: ts(12) };
    service
        .bus
        .publish(service.subjects().clock(), "clock/12", &to)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sqlx::query_scalar::<_, bool>("select eta_late from order_lines where order_id = 'SO-1'")
        .fetch_one(&pool)
        .await
        .unwrap()
    {
        assert!(Instant::now() < deadline, "PO-1 never became overdue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service
        .order("SO-6", "C-3", 0, 60 * 24 * 13, partial, &[("W", 4)])
        .await;

    let so1: GetOrderReply = service
        .ask(
            "order.get",
            &GetOrderRequest {
                order_id: "SO-1".into(),
            },
        )
        .await;
    assert_eq!(
        (
            so1.order_id.as_str(),
            so1.customer_id.as_str(),
            so1.status()
        ),
        ("SO-1", "C-1", Status::PartiallyAllocated)
    );
    assert_eq!(
        (so1.ship_policy(), so1.channel.as_str()),
        (ShipPolicy::ShipComplete, "web")
    );
    let line = &so1.lines[0];
    assert_eq!(
        (
            line.ordered,
            line.allocated,
            line.held,
            line.backordered,
            line.shipped,
            line.cancelled
        ),
        (25, 15, 15, 10, 0, 0),
        "a ship-complete order holds what it has"
    );
    let promise = line.promise.unwrap();
    assert_eq!(
        (
            days(&promise.eta),
            promise.eta_estimated,
            promise.eta_late,
            days(&promise.promised_eta),
            promise.late
        ),
        (Some(16), false, true, Some(11), true)
    );
    let place = line.queue.clone().unwrap();
    assert_eq!(
        (
            place.position,
            place.units_ahead,
            place.po_id.as_str(),
            place.po_line_no
        ),
        (1, 0, "PO-1", 1)
    );
    assert_eq!(days(&place.po_expected_at), Some(10));
    assert_eq!(
        (days(&line.backordered_since), line.ready_at),
        (Some(0), None)
    );
    let trail: Vec<(&str, i64, &str)> = so1
        .history
        .iter()
        .map(|h| {
            (
                h.change.as_str(),
                h.quantity,
                h.cause.split('/').next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("allocated", 10, "order"),
            ("backordered", 15, "order"),
            ("eta", 15, "order"),
            ("eta", 15, "order"),
            ("filled", 5, "receipt"),
            ("eta", 10, "receipt"),
            ("eta", 10, "clock"),
            ("eta", 10, "order"),
        ],
        "oldest first"
    );
    assert_eq!(so1.history[3].cause, "order/SO-3", "SO-3 moved it");
    assert!(
        so1.history
            .windows(2)
            .all(|w| days(&w[0].at) <= days(&w[1].at))
    );

    // The worklist: one row per waiting line, 42 units in all.
    let all = service
        .list(ListBackordersRequest {
            order_by: BackorderOrder::ByEta as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(
        (all.total, all.total_units, all.next_page_token.as_str()),
        (6, 42, "")
    );
    let rows: Vec<_> = all
        .backorders
        .iter()
        .map(|r| {
            let promise = r.promise.unwrap();
            let place = r.queue.clone().unwrap();
            (
                r.order_id.as_str(),
                r.sku.as_str(),
                r.backordered,
                r.age_days,
                days(&promise.eta),
                promise.late,
                place.position,
                place.units_ahead,
                place.po_id,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("SO-5", "V", 3, 12, Some(15), false, 1, 0, String::new()),
            ("SO-1", "W", 10, 12, Some(16), true, 1, 0, "PO-1".into()),
            ("SO-2", "W", 10, 12, Some(16), true, 2, 10, "PO-1".into()),
            ("SO-4", "W", 10, 12, Some(16), false, 3, 20, "PO-1".into()),
            ("SO-5", "W", 5, 12, Some(21), false, 4, 30, "PO-2".into()),
            ("SO-6", "W", 4, 0, Some(21), false, 5, 35, "PO-2".into()),
        ]
    );
    let so1_row = &all.backorders[1];
    assert_eq!(
        (
            so1_row.customer_id.as_str(),
            so1_row.ordered,
            so1_row.allocated,
            so1_row.order_status()
        ),
        ("C-1", 25, 15, Status::PartiallyAllocated)
    );

    // Filters.
    let only = |request: ListBackordersRequest| service.keys(request);
    assert_eq!(
        only(ListBackordersRequest {
            customer_id: "C-3".into(),
            ..Default::default()
        })
        .await,
        keys(&[("SO-4", 1), ("SO-6", 1)])
    );
    assert_eq!(
        only(ListBackordersRequest {
            sku: "V".into(),
            ..Default::default()
        })
        .await,
        keys(&[("SO-5", 2)])
    );
    // Late against the promise (SO-1, SO-2), or resting on the overdue PO-1 (SO-4).
    assert_eq!(
        only(ListBackordersRequest {
            late_only: true,
            ..Default::default()
        })
        .await,
        keys(&[("SO-1", 1), ("SO-2", 1), ("SO-4", 1)])
    );
    assert_eq!(
        only(ListBackordersRequest {
            estimated_only: true,
            ..Default::default()
        })
        .await,
        keys(&[("SO-5", 2)])
    );
    assert_eq!(
        only(ListBackordersRequest {
            older_than: Some(prost_types::Duration {
                seconds: 7 * 86_400,
                nanos: 0
            }),
            order_by: BackorderOrder::ByOrder as i32,
            descending: true,
            ..Default::default()
        })
        .await,
        keys(&[
            ("SO-5", 2),
            ("SO-5", 1),
            ("SO-4", 1),
            ("SO-2", 1),
            ("SO-1", 1)
        ])
    );
    let search = |part: &str| ListBackordersRequest {
        search: part.into(),
        ..Default::default()
    };
    assert_eq!(
        only(search("so-5")).await,
        keys(&[("SO-5", 1), ("SO-5", 2)])
    );
    assert_eq!(
        only(search("c-2")).await,
        keys(&[("SO-2", 1), ("SO-5", 1), ("SO-5", 2)])
    );
    assert_eq!(only(search("v")).await, keys(&[("SO-5", 2)]));
    assert!(
        only(search("_")).await.is_empty(),
        "_ is a character, not a wildcard"
    );
    assert!(only(search("%")).await.is_empty());
    let units = service
        .list(ListBackordersRequest {
            order_by: BackorderOrder::ByUnits as i32,
            ..Default::default()
        })
        .await;
    let by_units: Vec<i64> = units.backorders.iter().map(|r| r.backordered).collect();
    assert_eq!(by_units, [10, 10, 10, 5, 4, 3]);

    // Three pages of two in fill order (V sorts before W), each with the totals of all of them.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = service
            .list(ListBackordersRequest {
                order_by: BackorderOrder::ByQueue as i32,
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await;
        assert_eq!((page.total, page.total_units), (6, 42));
        pages.push(page.backorders.iter().map(key).collect::<Vec<_>>());
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(pages.len() < 3, "a third page is the last");
    }
    assert_eq!(
        pages,
        [
            keys(&[("SO-5", 2), ("SO-1", 1)]),
            keys(&[("SO-2", 1), ("SO-4", 1)]),
            keys(&[("SO-5", 1), ("SO-6", 1)]),
        ]
    );
    // A token belongs to its filters and order.
    let first = service
        .list(ListBackordersRequest {
            order_by: BackorderOrder::ByQueue as i32,
            page_size: 2,
            ..Default::default()
        })
        .await;
    let elsewhere = ListBackordersRequest {
        order_by: BackorderOrder::ByAge as i32,
        page_token: first.next_page_token,
        ..Default::default()
    };
    let (code, message) = service
        .refused("backorders.list", elsewhere.encode_to_vec())
        .await;
    assert_eq!(code, 400);
    assert!(
        message.contains("other filters or another order"),
        "{message}"
    );

    // W's queue now: PO-1 is overdue and covers positions 1 to 3, PO-2 the rest; nothing uncovered.
    let queue: GetSkuQueueReply = service.ask("sku.queue", &w).await;
    let covers: Vec<_> = queue
        .supply
        .iter()
        .map(|s| {
            (
                s.po_id.as_str(),
                s.overdue,
                s.first_position,
                s.last_position,
                s.covers_units,
            )
        })
        .collect();
    assert_eq!(covers, [("PO-1", true, 1, 3, 30), ("PO-2", false, 4, 5, 9)]);
    assert_eq!(queue.uncovered, 0);
    let stock = queue.stock.unwrap();
    assert_eq!(
        (
            stock.on_hand,
            stock.allocated,
            stock.backordered,
            stock.received,
            stock.inbound
        ),
        (35, 35, 39, 25, 50)
    );
    service.stop().await;
}
