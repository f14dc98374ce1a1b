//! The project's end-to-end benchmark (`make bench`; docs/performance.md): in one run, on `NATS_URL` and
//! `DATABASE_URL`, the per-order-transaction baseline and the bulk-write limit on the same PostgreSQL, the
//! four services (the binaries beside this one) flat out, how long their consumers need to drain, latency at
//! half the capacity, one receipt filling many backorders, the ETA re-projection, and the services' peak
//! memory; each figure against its target.

use std::time::Duration;

use backorder_demo::perf::flow::{self, LINES_PER_ORDER};
use backorder_demo::perf::report::{Phase, Run};
use backorder_demo::perf::watch::Watch;
use backorder_demo::perf::{baseline, database_url, eta, peak_rss_mb, uses_tls};
use backorder_test_support::System;
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "End-to-end benchmark of the four services against baselines on the same PostgreSQL, with targets",
    after_help = "Environment: NATS_URL, NATS_CREDS (a user that may create streams, as the tests use), DATABASE_URL \
                  (a PostgreSQL server; the run creates and drops databases of its own there), BO_BIN_DIR (the \
                  service binaries, default beside this one)."
)]
struct Args {
    /// Orders of the flat-out run (default 10,000; 1,000 with --quick).
    #[arg(long)]
    orders: Option<usize>,
    /// A smoke run: small sizes and 1 s phases. Its figures say that everything works, not how fast.
    #[arg(long)]
    quick: bool,
}

/// How big each phase is.
struct Sizes {
    orders: usize,
    /// Each baseline phase.
    phase: Duration,
    latency: Duration,
    receipt_lines: usize,
    eta_lines: i64,
    eta_supply: i64,
}

impl Sizes {
    fn of(args: &Args) -> Self {
        let sizes = if args.quick {
            Sizes {
                orders: 1_000,
                phase: Duration::from_secs(1),
                latency: Duration::from_secs(1),
                receipt_lines: 2_000,
                eta_lines: 10_000,
                eta_supply: 100,
            }
        } else {
            Sizes {
                orders: 10_000,
                phase: Duration::from_secs(5),
                latency: Duration::from_secs(10),
                receipt_lines: 10_000,
                eta_lines: 100_000,
                eta_supply: 1_000,
            }
        };
        Sizes {
            orders: args.orders.unwrap_or(sizes.orders).max(1),
            ..sizes
        }
    }
}

/// What the phases on the services yield.
struct Pipeline {
    flat: Phase<flow::FlatOut>,
    drained: Phase<Vec<flow::Drained>>,
    latency: Phase<flow::Latency>,
    receipt: Phase<flow::Receipt>,
    rss: Phase<Vec<(&'static str, f64)>>,
    dead_letters: Phase<u64>,
}

fn skipped<T>() -> Phase<T> {
    Err("skipped: an earlier phase failed".into())
}

fn why(error: anyhow::Error) -> String {
    format!("{error:#}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Sizes::of(&args);
    let url = database_url();
    let tls = match uses_tls(&url).await {
        Ok(true) => "over TLS",
        Ok(false) => "without TLS",
        Err(_) => "TLS unknown",
    };
    let label = format!(
        "{}NATS {}, PostgreSQL {} {tls}",
        if args.quick { "quick; " } else { "" },
        backorder_test_support::stream::nats_url(),
        url.rsplit('@').next().unwrap_or(&url)
    );

    // The baselines and the ETA run first, while the server has nothing else to do.
    eprintln!("backorder-perf: baselines ({:?} each)", sizes.phase);
    let baseline = baseline::measure(&url, sizes.phase).await.map_err(why);
    eprintln!(
        "backorder-perf: ETA re-projection ({} lines)",
        sizes.eta_lines
    );
    let database = format!("perf_eta_{}", std::process::id());
    let eta = eta::on_scratch_database(&url, &database, async |pool| {
        eta::measure(pool, sizes.eta_lines, sizes.eta_supply, 5).await
    })
    .await
    .map_err(why);
    let pipeline = pipeline(&sizes).await;

    Run {
        label,
        phase: sizes.phase,
        baseline,
        flat: pipeline.flat,
        drained: pipeline.drained,
        latency: pipeline.latency,
        receipt: pipeline.receipt,
        eta,
        rss: pipeline.rss,
        dead_letters: pipeline.dead_letters,
    }
    .print();
    Ok(())
}

/// Phases 3 to 6 and 8 on one system, each phase on order ids and SKUs of its own; a failed phase skips
/// those that need its figures.
async fn pipeline(sizes: &Sizes) -> Pipeline {
    let mut out = Pipeline {
        flat: skipped(),
        drained: skipped(),
        latency: skipped(),
        receipt: skipped(),
        rss: skipped(),
        dead_letters: skipped(),
    };
    eprintln!("backorder-perf: starting the four services");
    let (system, watch) = match start().await {
        Ok(started) => started,
        Err(error) => {
            out.flat = Err(why(error));
            return out;
        }
    };
    eprintln!("backorder-perf: {} orders flat out", sizes.orders);
    out.flat = flow::flat_out(&system, &watch, sizes.orders)
        .await
        .map_err(why);
    if let Ok(flat) = &out.flat {
        eprintln!("backorder-perf: drain");
        out.drained = flow::drain(&system, flat.last).await.map_err(why);
        let rate = 0.5 * flat.lines_per_sec() / LINES_PER_ORDER as f64;
        eprintln!("backorder-perf: latency at {rate:.0} orders/s");
        out.latency = flow::latency(&system, &watch, rate, sizes.latency)
            .await
            .map_err(why);
        // Whatever the paced load left in flight is not the receipt's work.
        let _ = flow::drain(&system, std::time::Instant::now()).await;
    }
    eprintln!(
        "backorder-perf: one receipt for {} lines",
        sizes.receipt_lines
    );
    out.receipt = flow::receipt(&system, &watch, sizes.receipt_lines)
        .await
        .map_err(why);
    out.rss = system
        .pids()
        .into_iter()
        .map(|(service, pid)| Ok((service, peak_rss_mb(pid)?)))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(why);
    out.dead_letters = flow::dead_letters(&system).await.map_err(why);
    let logs = system.logs().to_path_buf();
    if let Err(error) = system.stop().await {
        // The prefix's streams and database stay; the next harness start removes them after an hour.
        eprintln!(
            "backorder-perf: stopping the services: {error:#} (logs in {})",
            logs.display()
        );
    }
    out
}

/// The four services, and a watcher of what they publish on a connection of its own.
async fn start() -> anyhow::Result<(System, Watch)> {
    let system = System::start().await?;
    let client = backorder_test_support::stream::nats()
        .connect("backorder-perf-watch")
        .await?;
    let watch = Watch::start(client, system.subjects()).await?;
    Ok((system, watch))
}
