//! The operator CLI end to end: the four services as processes, an order backordered through the inbound
//! subjects, then the `backorder` binary run as a person at the desk would, from outside (NATS_URL and
//! BO_PREFIX only), asserting on its JSON, its exit status and its messages.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use backorder_proto::v1::DeadLetter;
use backorder_test_support::{System, binaries_dir, load_stock, messages, stream, wait_for_value};
use serde_json::{Value, json};

/// The `backorder` binary, pointed at one prefix.
struct Desk {
    bin: PathBuf,
    nats_url: String,
    prefix: String,
}

/// What one run printed.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Desk {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let bin = binaries_dir()?.join("backorder");
        ensure!(
            bin.exists(),
            "{} is missing: build it first (`cargo build -p backorder`)",
            bin.display()
        );
        Ok(Self {
            bin,
            nats_url: stream::nats_url(),
            prefix: prefix.into(),
        })
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&self.bin)
                .args(args)
                .env("NATS_URL", &self.nats_url)
                .envs(
                    backorder_test_support::stream::role_creds("operator")
                        .map(|p| ("NATS_CREDS", p)),
                )
                .env("BO_PREFIX", &self.prefix)
                .env("USER", "desk-e2e")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| format!("backorder {args:?} did not finish within 60 s"))??;
        Ok(Run {
            status: output.status.code(),
            stdout: String::from_utf8(output.stdout)?,
            stderr: String::from_utf8(output.stderr)?,
        })
    }

    /// Runs `backorder <args> --format json`, which must succeed, and parses what it printed.
    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let run = self.run(&args).await?;
        ensure!(
            run.status == Some(0),
            "backorder {args:?} exited with {:?}: {}",
            run.status,
            run.stderr
        );
        serde_json::from_str(&run.stdout)
            .with_context(|| format!("backorder {args:?} printed no JSON: {}", run.stdout))
    }
}

/// `field` of every object in `rows`.
fn column<'a>(rows: &'a Value, field: &str) -> Vec<&'a Value> {
    rows.as_array()
        .map(|rows| rows.iter().map(|r| &r[field]).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_desk_sees_backorders_orders_queues_previews_kpis_and_dead_letters_from_the_cli()
-> anyhow::Result<()> {
    let system = System::start().await?;
    let s = system.subjects().clone();
    let desk = Desk::new(s.prefix())?;

    // 70 widgets for orders of 100 and 20; 2 gadgets for an order of 5: 53 units wait on three lines.
    load_stock(&system.bus, &system.db, "WIDGET", 70).await?;
    load_stock(&system.bus, &system.db, "GADGET", 2).await?;
    for (order_id, customer, sku, quantity) in [
        ("SO-1", "C-1", "WIDGET", 100),
        ("SO-2", "C-2", "WIDGET", 20),
        ("SO-3", "C-3", "GADGET", 5),
    ] {
        let customer = messages::customer(customer, "desk@acme.example", "", "en");
        let order = messages::order(order_id, customer, &[(sku, quantity)]);
        system.publish(s.order_placed(), order_id, &order).await?;
        // One at a time, so the queue is in placement order.
        wait_for_value(
            &system.db,
            "select count(*) from orders where order_id = $1",
            order_id,
            1,
        )
        .await?;
    }
    let backordered =
        "select coalesce(sum(backordered), 0)::bigint from order_lines where sku = $1";
    wait_for_value(&system.db, backordered, "WIDGET", 50).await?;
    wait_for_value(&system.db, backordered, "GADGET", 3).await?;

    // The worklist: every backordered line, with totals.
    let list = desk.json(&["backorders"]).await?;
    assert_eq!(
        (&list["total"], &list["total_units"]),
        (&json!(3), &json!(53))
    );
    let mut orders = column(&list["backorders"], "order_id");
    orders.sort_by_key(|v| v.to_string());
    assert_eq!(orders, [&json!("SO-1"), &json!("SO-2"), &json!("SO-3")]);
    let so1 = list["backorders"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["order_id"] == "SO-1"))
        .context("SO-1 is not in the worklist")?;
    assert_eq!(
        (
            &so1["sku"],
            &so1["customer_id"],
            &so1["ordered"],
            &so1["allocated"],
            &so1["backordered"]
        ),
        (
            &json!("WIDGET"),
            &json!("C-1"),
            &json!(100),
            &json!(70),
            &json!(30)
        )
    );
    assert_eq!(so1["estimated"], json!(true), "no purchase order covers it");

    // Filters narrow it; the queue order is the fill order.
    let widgets = desk
        .json(&["backorders", "--sku", "WIDGET", "--sort", "queue"])
        .await?;
    assert_eq!(widgets["total"], json!(2));
    assert_eq!(
        column(&widgets["backorders"], "order_id"),
        [&json!("SO-1"), &json!("SO-2")]
    );
    assert_eq!(
        column(&widgets["backorders"], "position"),
        [&json!(1), &json!(2)]
    );
    assert_eq!(
        column(&widgets["backorders"], "units_ahead"),
        [&json!(0), &json!(30)]
    );
    let by_customer = desk.json(&["backorders", "--customer", "C-3"]).await?;
    assert_eq!(
        column(&by_customer["backorders"], "order_id"),
        [&json!("SO-3")]
    );
    let late = desk.json(&["backorders", "--late"]).await?;
    assert_eq!(late["total"], json!(0), "nothing is late yet");
    let old = desk.json(&["backorders", "--older-than", "7d"]).await?;
    assert_eq!(old["total"], json!(0), "nothing waits a week yet");

    // One page, and every page followed.
    let first = desk
        .run(&["backorders", "--limit", "1", "--format", "json"])
        .await?;
    assert_eq!(first.status, Some(0), "{}", first.stderr);
    let first: Value = serde_json::from_str(&first.stdout)?;
    assert_eq!((&first["shown"], &first["total"]), (&json!(1), &json!(3)));
    let paged = desk
        .json(&["backorders", "--all", "--limit", "1", "--sort", "order"])
        .await?;
    assert_eq!(
        column(&paged["backorders"], "order_id"),
        [&json!("SO-1"), &json!("SO-2"), &json!("SO-3")]
    );

    // The same as a table and as CSV.
    let table = desk.run(&["backorders", "--sku", "WIDGET"]).await?;
    assert_eq!(table.status, Some(0), "{}", table.stderr);
    assert!(
        table.stdout.starts_with("backorders:\nORDER_ID") && table.stdout.contains("SO-2"),
        "{}",
        table.stdout
    );
    let csv = desk
        .run(&["backorders", "--sku", "GADGET", "--format", "csv"])
        .await?;
    assert!(
        csv.stdout
            .starts_with("backorders\norder_id,line_no,sku,customer_id,backordered,")
            && csv.stdout.contains("\nSO-3,1,GADGET,C-3,3,5,2,"),
        "{}",
        csv.stdout
    );

    // An order: its lines, then its timeline.
    let order = desk.json(&["order", "SO-1"]).await?;
    assert_eq!(
        (&order["order_id"], &order["customer_id"], &order["status"]),
        (&json!("SO-1"), &json!("C-1"), &json!("PARTIALLY_ALLOCATED"))
    );
    let line = &order["lines"][0];
    assert_eq!(
        (
            &line["sku"],
            &line["ordered"],
            &line["allocated"],
            &line["backordered"],
            &line["position"]
        ),
        (
            &json!("WIDGET"),
            &json!(100),
            &json!(70),
            &json!(30),
            &json!(1)
        )
    );
    let changes = column(&order["history"], "change");
    assert!(
        changes.contains(&&json!("allocated")) && changes.contains(&&json!("backordered")),
        "{changes:?}"
    );

    // A SKU: stock figures, its queue, no supply.
    let sku = desk.json(&["sku", "WIDGET"]).await?;
    assert_eq!(
        (
            &sku["on_hand"],
            &sku["allocated"],
            &sku["available"],
            &sku["backordered"]
        ),
        (&json!(70), &json!(70), &json!(0), &json!(50))
    );
    assert_eq!(
        column(&sku["queue"], "order_id"),
        [&json!("SO-1"), &json!("SO-2")]
    );
    assert_eq!(sku["supply"], json!([]));
    assert_eq!(sku["uncovered"], json!(50));

    // What 40 widgets would do: SO-1 gets its 30 and is complete, SO-2 gets 10 and waits for 10 more.
    let preview = desk.json(&["preview", "WIDGET", "40"]).await?;
    assert_eq!(
        column(&preview["fills"], "order_id"),
        [&json!("SO-1"), &json!("SO-2")]
    );
    assert_eq!(
        column(&preview["fills"], "quantity"),
        [&json!(30), &json!(10)]
    );
    assert_eq!(
        column(&preview["fills"], "backordered_after"),
        [&json!(0), &json!(10)]
    );
    let previewed: Vec<(&Value, &Value, &Value)> = preview["orders"]
        .as_array()
        .context("no orders in the preview")?
        .iter()
        .map(|o| (&o["order_id"], &o["released_units"], &o["complete"]))
        .collect();
    assert_eq!(
        previewed,
        [
            (&json!("SO-1"), &json!(30), &json!(true)),
            (&json!("SO-2"), &json!(10), &json!(false))
        ]
    );
    assert_eq!(column(&preview["waiting"], "backordered"), [&json!(10)]);
    // ... and changed nothing.
    let after = desk.json(&["sku", "WIDGET"]).await?;
    assert_eq!(after["backordered"], json!(50));

    // The KPIs: nothing filled in full at order time, 72 of 125 units; 53 units open on 3 lines.
    let kpi = desk.json(&["kpi"]).await?;
    assert_eq!(
        (
            &kpi["lines"],
            &kpi["lines_filled"],
            &kpi["units"],
            &kpi["units_filled"]
        ),
        (&json!(3), &json!(0), &json!(125), &json!(72))
    );
    assert_eq!(
        (&kpi["open_lines"], &kpi["open_units"]),
        (&json!(3), &json!(53))
    );
    let per_sku = desk.json(&["kpi", "--sku", "GADGET"]).await?;
    assert_eq!(
        (&per_sku["units"], &per_sku["open_units"]),
        (&json!(5), &json!(3))
    );

    // SO-2 goes first: its line moves to the head of the queue at once.
    let priority = desk
        .json(&["priority", "SO-2", "10", "--reason", "retailer contract"])
        .await?;
    assert_eq!(priority["applied"], json!(true), "{priority}");
    assert_eq!(column(&priority["lines"], "position"), [&json!(1)]);
    let widgets = desk
        .json(&["backorders", "--sku", "WIDGET", "--sort", "queue"])
        .await?;
    assert_eq!(
        column(&widgets["backorders"], "order_id"),
        [&json!("SO-2"), &json!("SO-1")]
    );
    assert_eq!(
        column(&widgets["backorders"], "priority"),
        [&json!(10), &json!(0)]
    );

    // An order nobody knows: the API's 404, on stderr, exit status 1.
    let unknown = desk.run(&["order", "SO-NOPE"]).await?;
    assert_eq!(unknown.status, Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.starts_with("backorder: order.get: ")
            && unknown.stderr.contains("SO-NOPE")
            && unknown.stderr.trim_end().ends_with("(code 404)"),
        "{}",
        unknown.stderr
    );
    assert_eq!(unknown.stdout, "");

    // Dead letters: bytes that are no StockAdjusted, and a cancellation with nothing left to cancel.
    system
        .bus
        .publish_bytes(s.stock_adjusted(), "garbage", vec![0xff, 0x01, 0x02].into())
        .await?;
    for id in ["X-1", "X-2"] {
        let cancel = messages::cancellation(id, "SO-3", &[], "customer changed their mind");
        system.publish(s.order_cancel(), id, &cancel).await?;
    }
    for subject in [s.stock_adjusted(), s.order_cancel()] {
        system
            .seen
            .wait_for::<DeadLetter>(&s.dead_letter("allocation"), |d| d.subject == subject)
            .await?;
    }
    let letters = desk.json(&["dlq", "list"]).await?;
    let rows = letters["dead_letters"]
        .as_array()
        .context("no dead letters")?;
    let sequence_of = |subject: &str| {
        rows.iter()
            .find(|r| r["subject"] == subject)
            .and_then(|r| r["sequence"].as_u64())
            .with_context(|| format!("no dead letter from {subject}: {letters}"))
    };
    let (garbage, cancel) = (
        sequence_of(&s.stock_adjusted())?,
        sequence_of(&s.order_cancel())?,
    );
    assert_eq!(letters["total"], json!(rows.len()));
    let by_allocation = desk
        .json(&["dlq", "list", "--service", "allocation"])
        .await?;
    assert_eq!(by_allocation["total"], letters["total"]);
    let by_intake = desk
        .json(&["dlq", "list", "--service", "order-intake"])
        .await?;
    assert_eq!(by_intake["dead_letters"], json!([]));

    // Shown with its payload decoded by its subject, or in hex when it is no contract message.
    let shown = desk.json(&["dlq", "show", &cancel.to_string()]).await?;
    assert_eq!(
        (&shown["service"], &shown["payload_type"]),
        (
            &json!("allocation"),
            &json!("backorder.v1.OrderCancelRequested")
        )
    );
    assert_eq!(
        (
            &shown["payload"]["request_id"],
            &shown["payload"]["order_id"]
        ),
        (&json!("X-2"), &json!("SO-3"))
    );
    assert!(
        shown["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing left to cancel")),
        "{shown}"
    );
    let junk = desk.json(&["dlq", "show", &garbage.to_string()]).await?;
    assert_eq!(
        (&junk["payload_type"], &junk["payload"]),
        (&json!("hex"), &json!("ff0102"))
    );

    // Replayed to its subject with a new id, and the replay is on record.
    let replay = desk
        .json(&[
            "dlq",
            "replay",
            &cancel.to_string(),
            "--operator",
            "ann",
            "--reason",
            "retry",
        ])
        .await?;
    assert_eq!(
        (
            &replay["operator"],
            &replay["subject"],
            &replay["message_id"]
        ),
        (
            &json!("ann"),
            &json!(s.order_cancel()),
            &json!(format!("replay/{cancel}/1"))
        )
    );
    assert!(
        replay["stream_sequence"].as_u64().is_some_and(|n| n > 0),
        "{replay}"
    );
    let shown = desk.json(&["dlq", "show", &cancel.to_string()]).await?;
    assert_eq!(
        column(&shown["replays"], "message_id"),
        [&json!(format!("replay/{cancel}/1"))]
    );
    let missing = desk.run(&["dlq", "show", "999999"]).await?;
    assert_eq!(missing.status, Some(1), "{}", missing.stderr);

    // Arguments the CLI cannot read are clap's: exit status 2, nothing asked.
    let bad = desk.run(&["backorders", "--older-than", "a week"]).await?;
    assert_eq!(bad.status, Some(2));
    assert!(
        bad.stderr.contains("is not a duration like 7d"),
        "{}",
        bad.stderr
    );

    assert_eq!(system.invariant_violations().await?, Vec::<String>::new());
    system.stop().await
}

#[tokio::test]
async fn a_prefix_nothing_serves_is_named_with_the_url_and_exit_status_2() -> anyhow::Result<()> {
    let prefix = format!(
        "desk-none-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let desk = Desk::new(&prefix)?;
    for args in [&["backorders"][..], &["order", "SO-1"], &["dlq", "list"]] {
        let run = desk.run(args).await?;
        assert_eq!(run.status, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("backorder: ")
                && run.stderr.contains("nothing answers")
                && run.stderr.contains(&format!("BO_PREFIX={prefix}"))
                && run.stderr.contains(&format!("NATS_URL={}", desk.nats_url))
                && run.stderr.contains("is allocation running?"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    Ok(())
}
