//! The replenishment trigger against a real NATS server (`NATS_URL`, as `make test` sets it). Every run uses a
//! prefix of its own and deletes its streams and bucket afterwards.

use std::collections::HashMap;

use async_nats::jetstream;
use backorder_e2e::stream::{nats_url, wait_for_stored};
use backorder_proto::v1::{DeadLetter, PurchaseRequest, ReorderNeeded};
use backorder_runtime::jetstream::Bus;
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{Subjects, time};
use futures::FutureExt as _;
use prost::Message as _;
use replenishment_trigger::store::{self, Outstanding};
use replenishment_trigger::{Application, Config};

fn shortage(event_id: &str, sku: &str, shortage: i64) -> ReorderNeeded {
    ReorderNeeded {
        sku: sku.into(),
        shortage,
        backordered: shortage,
        on_hand: 0,
        inbound: 0,
        event_id: event_id.into(),
        occurred_at: None,
    }
}

/// Starts the service; send on the returned channel to stop it.
async fn start(
    config: Config,
) -> anyhow::Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let app = Application::build(config).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Ok((stop, running))
}

async fn requests(bus: &Bus, count: usize) -> anyhow::Result<Vec<PurchaseRequest>> {
    wait_for_stored(
        bus,
        StreamKind::Outbound,
        &bus.subjects.purchase_request(),
        count,
    )
    .await?
    .into_iter()
    .map(|m| Ok(PurchaseRequest::decode(m.payload.clone())?))
    .collect()
}

async fn outstanding(kv: &jetstream::kv::Store, sku: &str) -> anyhow::Result<Option<i64>> {
    Ok(match kv.get(store::key(sku)).await? {
        Some(value) => Some(
            Outstanding::decode(&value)
                .map_err(anyhow::Error::msg)?
                .outstanding,
        ),
        None => None,
    })
}

#[tokio::test]
async fn shortages_are_requested_once_across_restarts() -> anyhow::Result<()> {
    let url = nats_url();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let source = HashMap::from([
        ("NATS_URL", url.as_str()),
        ("BO_PREFIX", prefix.as_str()),
        ("BO_DEFAULT_LEAD_TIME_DAYS", "7"),
    ]);
    let config = Config::from_source(&source)?;
    let bus = Bus::connect(
        &url,
        Subjects::new(&prefix).map_err(anyhow::Error::msg)?,
        "replenishment-test",
    )
    .await?;
    let bucket = bus.subjects.replenishment_bucket();

    // Panics are caught so the streams and the bucket are deleted whatever happens.
    let result = std::panic::AssertUnwindSafe(async {
        let subject = bus.subjects.reorder_needed();
        let dead_letters = bus.subjects.dead_letter("replenishment-trigger");
        let (stop, running) = start(config.clone()).await?;
        for event in [
            shortage("ev-1", "SKU-A", 30),
            shortage("ev-2", "SKU-A", 30),
            shortage("ev-3", "SKU-A", 50),
            ReorderNeeded {
                inbound: 40,
                ..shortage("ev-4", "SKU-A", 10)
            },
            shortage("ev-5", "SKU-A", 25),
            shortage("ev-6", "a.b ä*", 5),
            ReorderNeeded {
                backordered: 3,
                ..shortage("bad-1", "SKU-A", -1)
            },
        ] {
            bus.publish(subject.clone(), &event.event_id, &event)
                .await?;
        }
        // The bad event comes last; once it is parked, everything before it was handled.
        let letters = wait_for_stored(&bus, StreamKind::DeadLetter, &dead_letters, 1).await?;
        let letter = DeadLetter::decode(letters[0].payload.clone())?;
        assert_eq!(letter.error, "shortage is negative (-1)");

        let sent = requests(&bus, 4).await?;
        let summary: Vec<(&str, &str, i64)> = sent
            .iter()
            .map(|r| {
                (
                    r.request_id.as_str(),
                    r.lines[0].sku.as_str(),
                    r.lines[0].quantity,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("pr/ev-1", "SKU-A", 30),
                ("pr/ev-3", "SKU-A", 20),
                ("pr/ev-5", "SKU-A", 15),
                ("pr/ev-6", "a.b ä*", 5)
            ]
        );
        let first = &sent[0];
        assert_eq!(first.supplier_id, "unassigned");
        assert!(
            first
                .reason
                .starts_with("SKU-A: 30 units backordered, 30 not covered"),
            "{}",
            first.reason
        );
        let created = time::from_proto(first.created_at.as_ref().unwrap()).unwrap();
        let need_by = time::from_proto(first.lines[0].need_by.as_ref().unwrap()).unwrap();
        assert_eq!(need_by - created, chrono::TimeDelta::days(7));

        let kv = bus.js.get_key_value(&bucket).await?;
        assert_eq!(outstanding(&kv, "SKU-A").await?, Some(25));
        assert_eq!(outstanding(&kv, "a.b ä*").await?, Some(5));

        // A restart keeps what was requested; a value written by someone else is taken as it is.
        let _ = stop.send(());
        running.await??;
        kv.put(
            store::key("SKU-B"),
            Outstanding { outstanding: 100 }.encode(),
        )
        .await?;
        let (stop, running) = start(config.clone()).await?;
        for event in [
            shortage("ev-7", "SKU-A", 25),
            shortage("ev-8", "SKU-A", 26),
            shortage("ev-9", "SKU-B", 120),
            ReorderNeeded {
                event_id: String::new(),
                ..shortage("", "SKU-A", 1)
            },
        ] {
            bus.publish(
                subject.clone(),
                &format!("{}-{}", event.event_id, event.shortage),
                &event,
            )
            .await?;
        }
        let letters = wait_for_stored(&bus, StreamKind::DeadLetter, &dead_letters, 2).await?;
        let letter = DeadLetter::decode(letters[1].payload.clone())?;
        assert!(
            letter.error.starts_with("event_id is missing"),
            "{}",
            letter.error
        );

        let sent = requests(&bus, 6).await?;
        let summary: Vec<(&str, i64)> = sent[4..]
            .iter()
            .map(|r| (r.request_id.as_str(), r.lines[0].quantity))
            .collect();
        assert_eq!(summary, [("pr/ev-8", 1), ("pr/ev-9", 20)]);
        assert_eq!(outstanding(&kv, "SKU-A").await?, Some(26));
        assert_eq!(outstanding(&kv, "SKU-B").await?, Some(120));

        let _ = stop.send(());
        running.await??;
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;

    let _ = bus.js.delete_key_value(&bucket).await;
    for kind in StreamKind::ALL {
        let _ = bus.js.delete_stream(bus.subjects.stream(kind)).await;
    }
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
