//! The replenishment trigger against a real NATS server (`NATS_URL`, as `make test` sets it), on a simulated
//! clock. Every test uses a prefix and a policy file of its own and deletes its streams and bucket afterwards.

use std::collections::HashMap;
use std::path::PathBuf;

use backorder_proto::v1::{ClockAdvanced, DeadLetter, PurchaseRequest, ReorderNeeded};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, time};
use backorder_test_support::stream::{nats_url, role_creds, stored, wait_for_stored};
use chrono::{DateTime, TimeDelta, Utc};
use futures::FutureExt as _;
use prost::Message as _;
use replenishment_trigger::{Application, Config};

const START: &str = "2026-11-02T09:00:00Z";

const POLICIES: &str = r#"
[default]
lead_time_days = 7

[sku.SKU-A]
supplier = "ACME"
pack_size = 12
moq = 24

[sku.SKU-B]
supplier = "ACME"

[sku.SKU-C]
supplier = "OAK"
rule = "min_max"
min = 10
max = 50

[sku.SKU-U]
supplier = "ACME"
urgent_shortage = 10
"#;

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(START).unwrap().into()
}

fn shortage(event_id: &str, sku: &str, shortage: i64) -> ReorderNeeded {
    ReorderNeeded {
        sku: sku.into(),
        shortage,
        backordered: shortage,
        orders_waiting: 1,
        event_id: event_id.into(),
        ..Default::default()
    }
}

/// A test's own prefix, policy file and bus.
struct Env {
    prefix: String,
    dir: PathBuf,
    bus: Bus,
}

impl Env {
    async fn new() -> anyhow::Result<Self> {
        let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("policies.toml"), POLICIES)?;
        let bus = Bus::connect(
            &backorder_test_support::stream::nats(),
            Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
            "replenishment-test",
        )
        .await?;
        Ok(Self { prefix, dir, bus })
    }

    fn config(&self) -> anyhow::Result<Config> {
        let url = nats_url();
        let creds = role_creds("replenishment-trigger")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let file = self.dir.join("policies.toml");
        let file = file.to_string_lossy();
        let source = HashMap::from([
            ("NATS_URL", url.as_str()),
            ("NATS_CREDS", creds.as_str()),
            ("BO_PREFIX", self.prefix.as_str()),
            ("BO_HTTP_ADDR", "127.0.0.1:0"),
            ("BO_CLOCK", "simulated"),
            ("BO_CLOCK_START", START),
            ("BO_REORDER_WINDOW_SECS", "300"),
            ("BO_REORDER_RERAISE_HOURS", "48"),
            ("BO_REORDER_POLICY_FILE", file.as_ref()),
        ]);
        Ok(Config::from_source(&source)?)
    }

    /// Starts the service; send on the returned channel to stop it.
    async fn start(
        &self,
    ) -> anyhow::Result<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )> {
        let app = Application::build(self.config()?).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok((stop, running))
    }

    async fn report(&self, events: &[ReorderNeeded]) -> anyhow::Result<()> {
        for event in events {
            self.bus
                .publish(self.bus.subjects.reorder_needed(), &event.event_id, event)
                .await?;
        }
        Ok(())
    }

    /// Publishes a bad report named `marker` and waits for it to be parked: every report before it was
    /// handled.
    async fn handled(&self, marker: &str) -> anyhow::Result<()> {
        let bad = ReorderNeeded {
            shortage: -1,
            ..shortage(marker, "SKU-A", 0)
        };
        self.report(&[bad]).await?;
        let subject = self
            .bus
            .subjects
            .dead_letter(replenishment_trigger::SERVICE);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            for letter in stored(&self.bus, StreamKind::DeadLetter, &subject).await? {
                let letter = DeadLetter::decode(letter.payload.clone())?;
                if letter.message_id == marker {
                    assert_eq!(letter.error, "shortage: must be 0 or more, got -1");
                    return Ok(());
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{marker} was not parked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn advance(&self, to: DateTime<Utc>) -> anyhow::Result<()> {
        let advanced = ClockAdvanced {
            to: Some(time::to_proto(to)),
        };
        self.bus
            .publish(
                self.bus.subjects.clock(),
                &format!("clock/{}", to.to_rfc3339()),
                &advanced,
            )
            .await
    }

    async fn requests(&self, count: usize) -> anyhow::Result<Vec<PurchaseRequest>> {
        let subject = self.bus.subjects.purchase_request();
        wait_for_stored(&self.bus, StreamKind::Outbound, &subject, count)
            .await?
            .into_iter()
            .map(|m| Ok(PurchaseRequest::decode(m.payload.clone())?))
            .collect()
    }

    /// [`requests`](Self::requests), by supplier.
    async fn requests_by_supplier(&self, count: usize) -> anyhow::Result<Vec<PurchaseRequest>> {
        let mut requests = self.requests(count).await?;
        requests.sort_by(|a, b| a.supplier_id.cmp(&b.supplier_id));
        Ok(requests)
    }

    /// What is stored now, after giving the service a moment to (wrongly) publish more.
    async fn requests_settled(&self) -> anyhow::Result<Vec<PurchaseRequest>> {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let subject = self.bus.subjects.purchase_request();
        stored(&self.bus, StreamKind::Outbound, &subject)
            .await?
            .into_iter()
            .map(|m| Ok(PurchaseRequest::decode(m.payload.clone())?))
            .collect()
    }

    async fn clean_up(self) {
        let _ = self
            .bus
            .js
            .delete_key_value(self.bus.subjects.replenishment_bucket())
            .await;
        for kind in StreamKind::ALL {
            let _ = self
                .bus
                .js
                .delete_stream(self.bus.subjects.stream(kind))
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `test` and cleans up whatever happens (panics included).
async fn with_env(test: impl AsyncFnOnce(&Env) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let env = Env::new().await?;
    let result = std::panic::AssertUnwindSafe(test(&env))
        .catch_unwind()
        .await;
    env.clean_up().await;
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// (request id, supplier, [(sku, quantity)]) per request, for comparing.
type Summary = Vec<(String, String, Vec<(String, i64)>)>;
type Row<'a> = (&'a str, &'a str, &'a [(&'a str, i64)]);

fn summary(requests: &[PurchaseRequest]) -> Summary {
    requests
        .iter()
        .map(|r| {
            (
                r.request_id.clone(),
                r.supplier_id.clone(),
                r.lines
                    .iter()
                    .map(|l| (l.sku.clone(), l.quantity))
                    .collect(),
            )
        })
        .collect()
}

fn owned(rows: &[Row]) -> Summary {
    rows.iter()
        .map(|(id, supplier, lines)| {
            (
                id.to_string(),
                supplier.to_string(),
                lines.iter().map(|(s, q)| (s.to_string(), *q)).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_window_of_shortages_becomes_one_request_per_supplier() -> anyhow::Result<()> {
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        env.report(&[
            ReorderNeeded {
                orders_waiting: 3,
                ..shortage("ev-1", "SKU-A", 30)
            },
            shortage("ev-2", "SKU-B", 5),
            ReorderNeeded {
                backordered: 4,
                shortage: 4,
                ..shortage("ev-3", "SKU-C", 4)
            },
            shortage("ev-4", "SKU-X", 2),
            // SKU-A's shortage grows before the request goes: its line grows with it.
            ReorderNeeded {
                orders_waiting: 4,
                ..shortage("ev-5", "SKU-A", 40)
            },
            // SKU-Y is short, then stock turns up before the request goes: its line is dropped.
            shortage("ev-6", "SKU-Y", 4),
            ReorderNeeded {
                available: 4,
                backordered: 4,
                ..shortage("ev-7", "SKU-Y", 0)
            },
        ])
        .await?;
        env.handled("marker-1").await?;
        assert!(
            env.requests_settled().await?.is_empty(),
            "nothing before the window ends"
        );

        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        let requests = env.requests_by_supplier(3).await?;
        assert_eq!(
            summary(&requests),
            owned(&[
                ("pr/ev-1", "ACME", &[("SKU-A", 48), ("SKU-B", 5)]),
                ("pr/ev-3", "OAK", &[("SKU-C", 54)]),
                ("pr/ev-4", "unassigned", &[("SKU-X", 2)]),
            ])
        );
        let acme = &requests[0];
        assert!(!acme.urgent && !acme.reraised);
        let line = &acme.lines[0];
        assert!(!line.default_policy);
        assert_eq!((line.orders_waiting, line.backordered), (4, 40));
        assert!(
            line.reason
                .starts_with("4 customer orders wait for 40 units"),
            "{}",
            line.reason
        );
        let need_by = time::from_proto(line.need_by.as_ref().unwrap()).unwrap();
        assert_eq!(need_by, start_time() + TimeDelta::days(7));
        let unknown = &requests[2].lines[0];
        assert!(unknown.default_policy);
        assert!(
            unknown.reason.contains("default policy"),
            "{}",
            unknown.reason
        );

        // Shortages already requested ask for nothing more; a larger one asks for the difference.
        env.report(&[shortage("ev-8", "SKU-B", 5), shortage("ev-9", "SKU-B", 8)])
            .await?;
        env.handled("marker-2").await?;
        env.advance(start_time() + TimeDelta::seconds(700)).await?;
        let requests = env.requests(4).await?;
        assert_eq!(
            summary(&requests[3..]),
            owned(&[("pr/ev-9", "ACME", &[("SKU-B", 3)])])
        );
        assert_eq!(env.requests_settled().await?.len(), 4);

        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn urgent_shortages_go_at_once_answers_close_requests_and_the_unanswered_are_reraised_once()
-> anyhow::Result<()> {
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        // 12 units short of SKU-U, whose urgent threshold is 10: sent without waiting for the window, with
        // the line gathered before it for the same supplier.
        env.report(&[shortage("ev-1", "SKU-B", 3), shortage("ev-2", "SKU-U", 12)])
            .await?;
        let requests = env.requests(1).await?;
        assert_eq!(
            summary(&requests),
            owned(&[("pr/ev-1", "ACME", &[("SKU-B", 3), ("SKU-U", 12)])])
        );
        assert!(requests[0].urgent);
        assert!(
            requests[0].reason.starts_with("Urgent."),
            "{}",
            requests[0].reason
        );

        // Purchasing answers for SKU-U (a PO naming the request); SKU-B's part stays open.
        env.report(&[
            ReorderNeeded {
                backordered: 12,
                inbound: 12,
                answered_requests: vec!["pr/ev-1".into()],
                ..shortage("ev-3", "SKU-U", 0)
            },
            // 5 more units short beyond the PO: requested again, in the next window.
            ReorderNeeded {
                backordered: 17,
                inbound: 12,
                ..shortage("ev-4", "SKU-U", 5)
            },
        ])
        .await?;
        env.handled("marker-3").await?;
        env.advance(start_time() + TimeDelta::minutes(6)).await?;
        let requests = env.requests(2).await?;
        assert_eq!(
            summary(&requests[1..]),
            owned(&[("pr/ev-4", "ACME", &[("SKU-U", 5)])])
        );

        // Two days later nobody answered SKU-B's part of pr/ev-1 nor pr/ev-4: each is re-raised, once, with
        // what is still open.
        env.report(&[ReorderNeeded {
            backordered: 17,
            inbound: 17,
            supply_added: 5,
            ..shortage("ev-5", "SKU-U", 0)
        }])
        .await?;
        env.handled("marker-4").await?;
        env.advance(start_time() + TimeDelta::hours(49)).await?;
        let requests = env.requests(3).await?;
        assert_eq!(
            summary(&requests[2..]),
            owned(&[("pr/ev-1/reraise", "ACME", &[("SKU-B", 3)])])
        );
        let reminder = &requests[2];
        assert!(reminder.reraised);
        assert_eq!(reminder.reraises, "pr/ev-1");
        assert!(
            reminder.reason.starts_with("Reminder:"),
            "{}",
            reminder.reason
        );

        env.advance(start_time() + TimeDelta::hours(200)).await?;
        assert_eq!(
            env.requests_settled().await?.len(),
            3,
            "re-raised only once"
        );

        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn nothing_is_lost_or_asked_twice_across_a_restart_and_a_full_replay() -> anyhow::Result<()> {
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        env.report(&[shortage("ev-1", "SKU-A", 30), shortage("ev-2", "SKU-C", 4)])
            .await?;
        env.handled("marker-5").await?;
        // Stopped with the lines gathered and not sent: decided, not published.
        let _ = stop.send(());
        running.await??;

        let (stop, running) = env.start().await?;
        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        let requests = env.requests_by_supplier(2).await?;
        assert_eq!(
            summary(&requests),
            owned(&[
                ("pr/ev-1", "ACME", &[("SKU-A", 36)]),
                ("pr/ev-2", "OAK", &[("SKU-C", 54)]),
            ])
        );
        // Purchasing answers SKU-A with a PO naming no request. Replayed before this answer, the first report
        // would find nothing requested and ask again, unless the service knows it applied it.
        env.report(&[ReorderNeeded {
            backordered: 30,
            inbound: 36,
            supply_added: 36,
            ..shortage("ev-answer", "SKU-A", 0)
        }])
        .await?;
        env.handled("marker-answered").await?;
        let _ = stop.send(());
        running.await??;

        // A full replay: the consumer is deleted, so the service reads the whole stream again from the start.
        let stream = env
            .bus
            .js
            .get_stream(env.bus.subjects.stream(StreamKind::Internal))
            .await?;
        stream
            .delete_consumer(replenishment_trigger::SERVICE)
            .await?;
        let (stop, running) = env.start().await?;
        env.report(&[shortage("ev-3", "SKU-B", 2)]).await?;
        env.handled("marker-6").await?;
        env.advance(start_time() + TimeDelta::seconds(700)).await?;
        let requests = env.requests(3).await?;
        assert_eq!(
            summary(&requests[2..]),
            owned(&[("pr/ev-3", "ACME", &[("SKU-B", 2)])]),
            "the replay asked for nothing again"
        );
        assert_eq!(env.requests_settled().await?.len(), 3);

        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn a_policy_from_the_product_master_applies_and_the_file_overrides_it() -> anyhow::Result<()>
{
    use backorder_proto::v1::{ReorderRule, SkuUpserted};
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        let upserts = [
            SkuUpserted {
                sku: "SKU-M".into(),
                supplier_id: "MASTER".into(),
                pack_size: 10,
                reorder_rule: ReorderRule::Cover as i32,
                ..Default::default()
            },
            // The file's SKU-A entry (ACME, pack 12, MOQ 24) wins over the master's supplier and pack size.
            SkuUpserted {
                sku: "SKU-A".into(),
                supplier_id: "MASTER".into(),
                pack_size: 5,
                lead_time_days: 3,
                ..Default::default()
            },
            SkuUpserted {
                sku: "SKU-BAD".into(),
                pack_size: -1,
                ..Default::default()
            },
            // Beyond the limits: a request of i64::MAX units, or an overflow, before they were checked.
            SkuUpserted {
                sku: "SKU-HUGE".into(),
                pack_size: i64::MAX,
                lead_time_days: 4000,
                ..Default::default()
            },
        ];
        for upsert in &upserts {
            env.bus
                .publish(env.bus.subjects.sku_upserted(), &upsert.sku, upsert)
                .await?;
        }
        let subject = env
            .bus
            .subjects
            .dead_letter(replenishment_trigger::POLICIES_CONSUMER);
        let letters = wait_for_stored(&env.bus, StreamKind::DeadLetter, &subject, 2).await?;
        let errors = letters
            .iter()
            .map(|l| Ok(DeadLetter::decode(l.payload.clone())?.error))
            .collect::<anyhow::Result<Vec<_>>>()?;
        assert_eq!(
            errors,
            [
                "pack_size: must be 0 or more, got -1",
                "lead_time_days: 4000 days is outside 0..=3650; \
                 pack_size: 9223372036854775807 is more than 1000000000"
            ]
        );

        env.report(&[shortage("ev-1", "SKU-M", 11), shortage("ev-2", "SKU-A", 1)])
            .await?;
        env.handled("marker-7").await?;
        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        let requests = env.requests_by_supplier(2).await?;
        assert_eq!(
            summary(&requests),
            owned(&[
                ("pr/ev-2", "ACME", &[("SKU-A", 24)]),
                ("pr/ev-1", "MASTER", &[("SKU-M", 20)]),
            ])
        );
        // Lead time from the master where the file gives none.
        let need_by = time::from_proto(requests[0].lines[0].need_by.as_ref().unwrap()).unwrap();
        assert_eq!(need_by, start_time() + TimeDelta::days(3));
        assert!(!requests[1].lines[0].default_policy);

        let _ = stop.send(());
        running.await?
    })
    .await
}

impl Env {
    async fn upsert(&self, upserts: &[backorder_proto::v1::SkuUpserted]) -> anyhow::Result<()> {
        for upsert in upserts {
            let id = format!("{}/{}", upsert.sku, backorder_runtime::digest::of(upsert));
            self.bus
                .publish(self.bus.subjects.sku_upserted(), &id, upsert)
                .await?;
        }
        Ok(())
    }

    /// Publishes a bad upsert for SKU `marker` and waits for it to be parked: every upsert before it was
    /// handled.
    async fn upserts_handled(&self, marker: &str) -> anyhow::Result<()> {
        let bad = backorder_proto::v1::SkuUpserted {
            sku: marker.into(),
            pack_size: -1,
            ..Default::default()
        };
        self.upsert(std::slice::from_ref(&bad)).await?;
        let subject = self
            .bus
            .subjects
            .dead_letter(replenishment_trigger::POLICIES_CONSUMER);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            for letter in stored(&self.bus, StreamKind::DeadLetter, &subject).await? {
                let letter = DeadLetter::decode(letter.payload.clone())?;
                if backorder_proto::v1::SkuUpserted::decode(letter.payload.as_slice())?.sku
                    == marker
                {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{marker} was not parked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn a_recreated_stream_has_its_reports_and_upserts_applied() -> anyhow::Result<()> {
    use backorder_proto::v1::SkuUpserted;
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        let master = |supplier: &str, pack_size: i64| SkuUpserted {
            sku: "SKU-M".into(),
            supplier_id: supplier.into(),
            pack_size,
            ..Default::default()
        };
        // Upserts and reports enough for the stored sequences to be above those the new streams start with.
        env.upsert(&[
            SkuUpserted {
                sku: "SKU-F1".into(),
                ..Default::default()
            },
            SkuUpserted {
                sku: "SKU-F2".into(),
                ..Default::default()
            },
            master("MASTER", 10),
        ])
        .await?;
        env.upserts_handled("marker-u1").await?;
        env.report(&[
            shortage("ev-1", "SKU-B", 1),
            shortage("ev-2", "SKU-B", 2),
            shortage("ev-3", "SKU-B", 3),
        ])
        .await?;
        env.handled("marker-1").await?;
        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        assert_eq!(
            summary(&env.requests(1).await?),
            owned(&[("pr/ev-1", "ACME", &[("SKU-B", 3)])])
        );
        let _ = stop.send(());
        running.await??;

        // The operator recreates the streams: sequences start again at 1.
        for kind in [StreamKind::Internal, StreamKind::Inbound] {
            env.bus
                .js
                .delete_stream(env.bus.subjects.stream(kind))
                .await?;
        }
        env.bus.ensure_streams().await?;
        let (stop, running) = env.start().await?;
        env.upsert(&[master("MASTER2", 7)]).await?;
        env.upserts_handled("marker-u2").await?;
        env.report(&[
            // 5 short, 3 requested: 2 more.
            shortage("ev-10", "SKU-B", 5),
            // The master's new policy: supplier MASTER2, pack 7.
            shortage("ev-11", "SKU-M", 3),
        ])
        .await?;
        env.handled("marker-2").await?;
        env.advance(start_time() + TimeDelta::seconds(1000)).await?;
        let mut requests = env.requests(3).await?;
        requests.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        assert_eq!(
            summary(&requests),
            owned(&[
                ("pr/ev-1", "ACME", &[("SKU-B", 3)]),
                ("pr/ev-10", "ACME", &[("SKU-B", 2)]),
                ("pr/ev-11", "MASTER2", &[("SKU-M", 7)]),
            ])
        );
        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn a_report_stored_twice_under_two_ids_is_applied_once() -> anyhow::Result<()> {
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        env.report(&[shortage("ev-1", "SKU-B", 10)]).await?;
        env.handled("marker-1").await?;
        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        assert_eq!(
            summary(&env.requests(1).await?),
            owned(&[("pr/ev-1", "ACME", &[("SKU-B", 10)])])
        );
        // Purchasing ordered 4 of the 10 on a PO naming no request. The report is stored twice, as the
        // allocation relay re-publishing it after the duplicate window would store it: applied twice, it would
        // close 8 of the 10.
        let answer = ReorderNeeded {
            backordered: 10,
            inbound: 4,
            supply_added: 4,
            ..shortage("ev-2", "SKU-B", 6)
        };
        for id in ["ev-2", "ev-2/again"] {
            env.bus
                .publish(env.bus.subjects.reorder_needed(), id, &answer)
                .await?;
        }
        // 3 more units wait: 13 backordered, 4 on order, 6 requested and open: 3 to request.
        env.report(&[ReorderNeeded {
            backordered: 13,
            inbound: 4,
            ..shortage("ev-3", "SKU-B", 9)
        }])
        .await?;
        env.handled("marker-2").await?;
        env.advance(start_time() + TimeDelta::seconds(700)).await?;
        let requests = env.requests(2).await?;
        assert_eq!(
            summary(&requests[1..]),
            owned(&[("pr/ev-3", "ACME", &[("SKU-B", 3)])])
        );
        assert_eq!(env.requests_settled().await?.len(), 2);
        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn a_policy_upserted_after_a_report_applies_to_the_next_report_of_its_sku()
-> anyhow::Result<()> {
    use backorder_proto::v1::SkuUpserted;
    with_env(async |env| {
        let (stop, running) = env.start().await?;
        // SKU-N has no policy of the master yet: the default (cover, from nobody in particular).
        env.report(&[shortage("ev-1", "SKU-N", 11)]).await?;
        env.handled("marker-1").await?;
        env.upsert(&[SkuUpserted {
            sku: "SKU-N".into(),
            supplier_id: "MASTER".into(),
            pack_size: 10,
            ..Default::default()
        }])
        .await?;
        env.upserts_handled("marker-u1").await?;
        // The instance read SKU-N's policy for ev-1; the upsert reaches what it holds, so ev-2 goes to MASTER
        // for what ev-1 did not ask for, in packs of 10.
        env.report(&[shortage("ev-2", "SKU-N", 50)]).await?;
        env.handled("marker-2").await?;
        env.advance(start_time() + TimeDelta::seconds(301)).await?;
        let requests = env.requests_by_supplier(2).await?;
        assert_eq!(
            summary(&requests),
            owned(&[
                ("pr/ev-2", "MASTER", &[("SKU-N", 40)]),
                ("pr/ev-1", "unassigned", &[("SKU-N", 11)]),
            ])
        );
        let _ = stop.send(());
        running.await?
    })
    .await
}

#[tokio::test]
async fn a_burst_of_reports_over_one_supplier_writes_its_batch_a_few_times_not_once_per_report()
-> anyhow::Result<()> {
    with_env(async |env| {
        let bucket = env
            .bus
            .js
            .get_key_value(env.bus.subjects.replenishment_bucket())
            .await?;
        let key = "batch.unassigned";
        let mut writes = bucket.watch(key).await?;
        // Stored before the service starts, so they are there to be taken together.
        let burst: Vec<ReorderNeeded> = (0..40)
            .map(|n| shortage(&format!("ev-{n}"), &format!("SKU-X{n}"), 3))
            .collect();
        env.report(&burst).await?;
        let (stop, running) = env.start().await?;
        env.handled("marker-burst").await?;

        let stored = bucket.get(key).await?.expect("the batch is gathered");
        let batch: replenishment_trigger::store::Batch =
            replenishment_trigger::store::decode(&stored, key).map_err(anyhow::Error::msg)?;
        assert_eq!(batch.lines.len(), 40, "every report has its line");
        let mut count = 0;
        while let Some(Some(write)) = futures::StreamExt::next(&mut writes).now_or_never() {
            write?;
            count += 1;
        }
        assert!(
            (1..=4).contains(&count),
            "{count} writes of the batch for 40 reports"
        );

        let _ = stop.send(());
        running.await?
    })
    .await
}
