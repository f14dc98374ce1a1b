//! The web dashboard end to end: the four services and the console as processes, seeded over NATS as an OMS
//! and a WMS would, then driven in a real headless Chromium (`tests/browser/console.test.mjs`, Playwright's
//! `playwright-core` with Debian's `/usr/bin/chromium`). Screenshots go to `target/screenshots/`.
//!
//! Needs `scripts/ensure-chromium.sh --node` (Chromium from apt, `npm ci` in tests/browser) and the binaries
//! (`cargo build -p allocation -p order-intake -p replenishment-trigger -p notifier -p console --bins`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use backorder_e2e::{System, http_get, load_stock, messages};
use backorder_proto::v1::{DeadLetter, OrderStatus};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "console-e2e-token-0123456789";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
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

#[tokio::test]
async fn the_console_shows_the_worklist_filters_it_previews_a_receipt_replays_a_dead_letter_and_charts_the_kpis()
-> anyhow::Result<()> {
    browser_prerequisites()?;
    let mut system = System::start().await?;
    system.start_console(Some(TOKEN))?;
    let url = system.console_url().await?;
    let s = system.subjects().clone();

    // Two SKUs short, one in stock: two backordered orders among others.
    let acme = messages::customer("C-ACME", "buyer@acme.example", "+4915112345678", "en");
    let beta = messages::customer("C-BETA", "ops@beta.example", "+4915112345679", "en");
    load_stock(&system.bus, &system.db, "WIDGET", 5).await?;
    load_stock(&system.bus, &system.db, "GADGET", 1).await?;
    load_stock(&system.bus, &system.db, "BOLT", 100).await?;
    let orders = [
        ("SO-W-1", acme.clone(), vec![("WIDGET", 8), ("BOLT", 2)]),
        ("SO-G-1", beta.clone(), vec![("GADGET", 3)]),
        ("SO-B-1", beta, vec![("BOLT", 10)]),
        ("SO-W-2", acme, vec![("WIDGET", 4)]),
    ];
    for (id, customer, lines) in &orders {
        system
            .publish(s.order_placed(), id, &messages::order(id, customer.clone(), lines))
            .await?;
    }
    backordered(&system, "SO-W-1", 3).await?;
    backordered(&system, "SO-G-1", 2).await?;
    backordered(&system, "SO-W-2", 4).await?;

    // A dead letter: bytes order-intake cannot read are parked.
    system
        .bus
        .publish_bytes(s.order_placed(), "junk-console-1", bytes::Bytes::from_static(b"\xff\xff not protobuf"))
        .await?;
    system
        .seen
        .wait_for::<DeadLetter>(&s.dead_letter("order-intake"), |d| d.message_id == "junk-console-1")
        .await?;

    // Served, and the API's not-found is the console's 404.
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    let (code, body) = http_get(addr, "/health").await?;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

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
    for name in ["worklist", "filtered", "order", "sku-preview", "kpis", "deadletters"] {
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
