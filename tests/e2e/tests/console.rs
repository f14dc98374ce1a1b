//! The web dashboard end to end: the four services and the console as processes, seeded over NATS as an OMS
//! and a WMS would, then driven in a real headless Chromium (`tests/browser/console.test.mjs`, Playwright's
//! `playwright-core` with Debian's `/usr/bin/chromium`). Screenshots go to `target/screenshots/`.
//!
//! Needs `scripts/ensure-chromium.sh --node` (Chromium from apt, `npm ci` in tests/browser) and the binaries
//! (`cargo build -p allocation -p order-intake -p replenishment-trigger -p notifier -p console --bins`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use std::collections::HashMap;

use backorder_proto::Message;
use backorder_proto::v1::{
    ClockAdvanced, Customer, DeadLetter, ListBackordersReply, ListBackordersRequest, OrderStatus,
    SupplyUpdated, order_status::Status,
};
use backorder_runtime::time;
use backorder_test_support::{PATIENCE, System, http_get, load_stock, messages, wait_for_value};
use chrono::{DateTime, Timelike, Utc};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "console-e2e-token-0123456789";

fn repo_root() -> PathBuf {
    // This crate is at tests/<crate>/.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate is two levels below the workspace root")
        .to_path_buf()
}

/// Chromium, node and the test's node packages, or a failure that says how to get them: never a silent pass.
fn browser_prerequisites() -> anyhow::Result<()> {
    let fix = "run `scripts/ensure-chromium.sh --node` (installs Debian's chromium and runs `npm ci` in tests/browser)";
    if !Path::new(CHROMIUM).exists() {
        bail!("{CHROMIUM} is missing: {fix}");
    }
    let node = std::process::Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        _ => bail!("node is not on PATH: {fix}"),
    }
    let playwright = repo_root().join("tests/browser/node_modules/playwright-core/package.json");
    if !playwright.exists() {
        bail!("{} is missing: {fix}", playwright.display());
    }
    Ok(())
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("screenshots")
}

/// Waits until the order's status says `backordered` units wait.
async fn backordered(system: &System, order_id: &str, units: i64) -> anyhow::Result<()> {
    let subject = system.subjects().order_status();
    system
        .seen
        .wait_for::<OrderStatus>(&subject, |s| {
            s.order_id == order_id && s.lines.iter().map(|l| l.backordered).sum::<i64>() == units
        })
        .await
        .map(|_| ())
}

/// Moves the services' simulated clock to `to` and waits until allocation's worklist shows `order_id`
/// waiting `age_days` (so what comes next is placed at the new time).
async fn advance(
    system: &System,
    to: DateTime<Utc>,
    order_id: &str,
    age_days: i32,
) -> anyhow::Result<()> {
    let s = system.subjects();
    let advanced = ClockAdvanced {
        to: Some(time::to_proto(to)),
    };
    system
        .publish(s.clock(), &format!("clock/{}", to.to_rfc3339()), &advanced)
        .await?;
    let request = ListBackordersRequest {
        search: order_id.into(),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reply = system
            .bus
            .client
            .request(s.api("backorders.list"), request.encode_to_vec().into())
            .await?;
        let ages: Vec<i32> = ListBackordersReply::decode(reply.payload.as_ref())
            .map(|r| r.backorders.iter().map(|b| b.age_days).collect())
            .unwrap_or_default();
        if ages.contains(&age_days) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{order_id} never waited {age_days} days in the worklist (ages {ages:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_console_shows_the_worklist_filters_it_previews_a_receipt_replays_a_dead_letter_and_charts_the_kpis()
-> anyhow::Result<()> {
    browser_prerequisites()?;
    // A simulated clock that starts 20 days ago, so the backorders have ages in three buckets.
    let now = Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now);
    let start = now - chrono::Duration::days(20);
    let mut system = System::start_with(&HashMap::from([
        ("BO_CLOCK", "simulated"),
        ("BO_CLOCK_START", start.to_rfc3339().as_str()),
    ]))
    .await?;
    system.start_console(Some(TOKEN))?;
    let url = system.console_url().await?;
    let s = system.subjects().clone();

    // Two SKUs short, one in stock: three backordered orders among others, placed 20, 8 and 3 days ago.
    let acme = messages::customer("C-ACME", "buyer@acme.example", "+4915112345678", "en");
    let beta = messages::customer("C-BETA", "ops@beta.example", "+4915112345679", "en");
    load_stock(&system.bus, &system.db, "WIDGET", 5).await?;
    load_stock(&system.bus, &system.db, "GADGET", 1).await?;
    load_stock(&system.bus, &system.db, "BOLT", 100).await?;
    // A purchase order covers part of WIDGET's queue; the rest waits on an estimate.
    let po = SupplyUpdated {
        po_id: "PO-77".into(),
        line_no: 1,
        sku: "WIDGET".into(),
        quantity_open: 5,
        expected_at: Some(time::to_proto(now + chrono::Duration::days(5))),
        cancelled: false,
        request_id: String::new(),
    };
    system.publish(s.supply_updated(), "PO-77/1", &po).await?;
    wait_for_value(
        &system.db,
        "select count(*) from supply where po_id = $1",
        "PO-77",
        1,
    )
    .await?;
    let place = |id: &str, customer: &Customer, lines: &[(&str, i64)], at: DateTime<Utc>| {
        let mut order = messages::order(id, customer.clone(), lines);
        order.placed_at = Some(time::to_proto(at));
        (id.to_string(), order)
    };
    for (id, order) in [
        place("SO-G-1", &beta, &[("GADGET", 3)], start),
        place("SO-B-1", &beta, &[("BOLT", 10)], start),
        place("SO-L-1", &acme, &[("LAMP", 2)], start),
    ] {
        system.publish(s.order_placed(), &id, &order).await?;
    }
    backordered(&system, "SO-G-1", 2).await?;
    backordered(&system, "SO-L-1", 2).await?;
    // LAMP arrives early (for the ETA error), and a customer gives up on GADGET (lost demand).
    advance(&system, start + chrono::Duration::days(10), "SO-G-1", 10).await?;
    system
        .publish(
            s.stock_received(),
            "R-LAMP",
            &messages::receipt("R-LAMP", "LAMP", 2, ""),
        )
        .await?;
    backordered(&system, "SO-L-1", 0).await?;
    advance(&system, start + chrono::Duration::days(12), "SO-G-1", 12).await?;
    let (id, order) = place(
        "SO-X-1",
        &beta,
        &[("GADGET", 4)],
        start + chrono::Duration::days(12),
    );
    system.publish(s.order_placed(), &id, &order).await?;
    backordered(&system, "SO-X-1", 4).await?;
    system
        .publish(
            s.order_cancel(),
            "cancel-X",
            &messages::cancellation("cancel-X", "SO-X-1", &[], "found it elsewhere"),
        )
        .await?;
    system
        .seen
        .wait_for::<OrderStatus>(&s.order_status(), |o| {
            o.order_id == "SO-X-1" && o.status() == Status::Cancelled
        })
        .await?;
    let (id, order) = place(
        "SO-W-1",
        &acme,
        &[("WIDGET", 8), ("BOLT", 2)],
        start + chrono::Duration::days(12),
    );
    system.publish(s.order_placed(), &id, &order).await?;
    backordered(&system, "SO-W-1", 3).await?;
    advance(&system, start + chrono::Duration::days(17), "SO-W-1", 5).await?;
    let (id, order) = place(
        "SO-W-2",
        &acme,
        &[("WIDGET", 4)],
        start + chrono::Duration::days(17),
    );
    system.publish(s.order_placed(), &id, &order).await?;
    backordered(&system, "SO-W-2", 4).await?;
    advance(&system, now, "SO-W-2", 3).await?;

    // A dead letter: bytes order-intake cannot read are parked.
    system
        .bus
        .publish_bytes(
            s.order_placed(),
            "junk-console-1",
            bytes::Bytes::from_static(b"\xff\xff not protobuf"),
        )
        .await?;
    system
        .seen
        .wait_for::<DeadLetter>(&s.dead_letter("order-intake"), |d| {
            d.message_id == "junk-console-1"
        })
        .await?;

    // Served, and the API's not-found is the console's 404 page.
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    let (code, body) = http_get(addr, "/health").await?;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http_get(addr, "/orders/SO-NOBODY-PLACED").await?;
    assert_eq!(code, 404, "{body}");
    assert!(
        body.contains("SO-NOBODY-PLACED"),
        "the API's words are on the page: {body}"
    );

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots)?;
    let script = repo_root().join("tests/browser/console.test.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(repo_root().join("tests/browser"))
        .env("CONSOLE_URL", &url)
        .env("CONSOLE_TOKEN", TOKEN)
        .env("SCREENSHOTS", &shots)
        .env("BO_ORDER", "SO-W-1")
        .env("BO_SKU", "WIDGET")
        .env("BO_OTHER_SKU", "GADGET")
        .env("BO_REPRIORITISE", "SO-W-2")
        // 20 days (15-30), 8 days (8-14) and 3 days (3-7).
        .env("BO_AGE_CLASSES", "age-b,age-c,age-d")
        .env("BO_DEAD_LETTER_ID", "junk-console-1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .context("the browser test did not finish within 240 s")?
        .context("starting node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}); logs: {}; screenshots: {}\n{stdout}\n{stderr}",
        output.status,
        system.logs().display(),
        shots.display()
    );
    for name in [
        "worklist",
        "filtered",
        "order",
        "sku-preview",
        "kpis",
        "deadletters",
        "reprioritised",
    ] {
        let shot = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
            "{} was not saved",
            shot.display()
        );
    }

    // The replay clicked in the browser is on record.
    let replays: i64 = sqlx::query_scalar("select count(*) from dead_letter_replays")
        .fetch_one(&system.db)
        .await?;
    assert_eq!(replays, 1);
    system.stop().await
}
