//! The command line: global options and one subcommand per question the desk asks.

use std::time::Duration;

use backorder_runtime::Subjects;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse;
use crate::render::Format;

#[derive(Debug, Parser)]
#[command(
    name = "backorder",
    version,
    about = "The backorder desk: open backorders, orders, SKU queues, what-if receipts, KPIs and dead letters, \
             through the query API on NATS",
    after_help = "Example:\n  NATS_URL=nats://broker:4222 BO_PREFIX=bo backorder backorders --late --older-than 7d\n\n\
                  Exit status: 0 done, 1 the API refused the request, 2 bad arguments or nothing answers."
)]
pub struct Cli {
    /// The NATS server the services use.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true,
        help_heading = GLOBAL
    )]
    pub nats_url: String,
    /// The credentials file of the user to connect as (the `operator` role; `NATS_TLS_CA`, `NATS_TLS_CERT`
    /// and `NATS_TLS_KEY` from the environment give TLS).
    #[arg(long, env = "NATS_CREDS", global = true, help_heading = GLOBAL)]
    pub creds: Option<std::path::PathBuf>,
    /// The services' subject prefix.
    #[arg(long, env = "BO_PREFIX", default_value = "bo", value_parser = prefix, global = true, help_heading = GLOBAL)]
    pub prefix: Subjects,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true, help_heading = GLOBAL)]
    pub format: Format,
    /// How long to wait for each reply (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse::duration, global = true, help_heading = GLOBAL)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

fn prefix(text: &str) -> Result<Subjects, String> {
    Subjects::new(text)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The open backorder worklist: one row per backordered line, with age, ETA, promise and queue place.
    #[command(
        after_help = "Example:\n  backorder backorders --sku WIDGET --older-than 7d --sort eta\n  \
                      backorder backorders --late --all --format csv > late.csv"
    )]
    Backorders(BackordersArgs),
    /// An order's lines (ordered, allocated, held, backordered, shipped, ETAs, queue place), then its timeline.
    #[command(after_help = "Example:\n  backorder order SO-1001")]
    Order {
        /// The order's id, as the OMS placed it.
        order_id: String,
    },
    /// A SKU's stock figures, its queue in fill order and the open supply that covers it.
    #[command(after_help = "Example:\n  backorder sku WIDGET")]
    Sku {
        /// The SKU.
        sku: String,
    },
    /// What a receipt of QTY units would do now (which lines get how many, which orders ship); changes nothing.
    #[command(after_help = "Example:\n  backorder preview WIDGET 40 --po PO-77")]
    Preview {
        /// The SKU received.
        sku: String,
        /// The units received.
        quantity: i64,
        /// As if received on this purchase order.
        #[arg(long)]
        po: Option<String>,
    },
    /// Fill rates, on time in full, backorder aging, ETA accuracy, lost demand and the per-customer view.
    #[command(
        after_help = "Example:\n  backorder kpi --from 2026-11-01 --to 2026-12-01 --customer C-42\n\n\
                      The window is [from, to); a date is the start of that day (UTC)."
    )]
    Kpi(KpiArgs),
    /// Re-prioritise an order: its waiting lines move in their queues at once (higher is served first).
    #[command(
        after_help = "Example:\n  backorder priority SO-1001 50 --reason \"retailer contract\""
    )]
    Priority {
        /// The order's id.
        order_id: String,
        /// The new priority: higher is served first (-1000000..=1000000; placed orders have 0 unless told).
        #[arg(allow_negative_numbers = true)]
        priority: i32,
        /// Why, for the audit trail.
        #[arg(long, default_value = "")]
        reason: String,
        /// Who asks, for the audit trail.
        #[arg(long, env = "USER")]
        operator: String,
    },
    /// Dead letters: messages a service parked; show one decoded, replay it.
    #[command(
        subcommand,
        after_help = "Example:\n  backorder dlq list --service allocation\n  backorder dlq show 42\n  \
                      backorder dlq replay 42 --reason \"SKU master fixed\""
    )]
    Dlq(DlqCommand),
}

#[derive(Debug, Args)]
pub struct BackordersArgs {
    /// Only this SKU.
    #[arg(long)]
    pub sku: Option<String>,
    /// Only this customer.
    #[arg(long)]
    pub customer: Option<String>,
    /// Only lines waiting at least this long (e.g. 7d, 12h, 90m).
    #[arg(long, value_parser = parse::duration)]
    pub older_than: Option<Duration>,
    /// Only lines late against their first promise or resting on an overdue purchase order.
    #[arg(long)]
    pub late: bool,
    /// Only lines whose ETA is an estimate (no purchase order covers them).
    #[arg(long)]
    pub estimated: bool,
    /// Part of the order id, customer id or SKU (case-insensitive).
    #[arg(long)]
    pub search: Option<String>,
    #[arg(long, value_enum, default_value_t = Sort::Age)]
    pub sort: Sort,
    /// Reverse the order.
    #[arg(long)]
    pub desc: bool,
    /// Rows per page (1..=1000; default 100, with --all 1000); without --all only the first page is shown.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Every row, page after page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    /// Oldest backorder first.
    Age,
    /// Earliest ETA first.
    Eta,
    /// Fill order: SKU, then queue position.
    Queue,
    /// Most waiting units first.
    Units,
    Order,
    Customer,
}

#[derive(Debug, Args)]
pub struct KpiArgs {
    /// Start of the window (YYYY-MM-DD or RFC 3339); default 30 days before --to.
    #[arg(long, value_parser = parse::instant)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window, excluded; default now.
    #[arg(long, value_parser = parse::instant)]
    pub to: Option<DateTime<Utc>>,
    #[arg(long)]
    pub customer: Option<String>,
    #[arg(long)]
    pub sku: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Parked messages, newest first, with their service, error and replays.
    #[command(after_help = "Example:\n  backorder dlq list --service allocation")]
    List {
        /// Only those parked by this service (order-intake, allocation, replenishment-trigger, notifier, ...).
        #[arg(long)]
        service: Option<String>,
        /// Per page (1..=500; default 50, with --all 500); without --all only the first page is shown.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
        /// Every one, page after page.
        #[arg(long)]
        all: bool,
    },
    /// One parked message, its payload decoded by its original subject (hex when it is no contract message).
    #[command(after_help = "Example:\n  backorder dlq show 42")]
    Show {
        /// Where the dead-letter stream stores it (the SEQUENCE column of `dlq list`).
        sequence: u64,
    },
    /// Publish a parked message again to its original subject (with a new message id); recorded with who and why.
    #[command(after_help = "Example:\n  backorder dlq replay 42 --reason \"SKU master fixed\"")]
    Replay {
        /// Where the dead-letter stream stores it (the SEQUENCE column of `dlq list`).
        sequence: u64,
        /// Who replays it, for the record.
        #[arg(long, env = "USER")]
        operator: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("backorder").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent_and_every_command_has_an_example() {
        Cli::command().debug_assert();
        let mut cli = Cli::command();
        for sub in cli.get_subcommands_mut() {
            let subs = std::iter::once(sub.clone()).chain(sub.get_subcommands().cloned());
            for command in subs {
                let name = command.get_name().to_string();
                assert!(command.get_about().is_some(), "{name} has no description");
                let after = command.get_after_help().map(|h| h.to_string());
                assert!(
                    after.is_some_and(|h| h.contains("Example:\n  backorder ")),
                    "{name} has no example"
                );
            }
        }
    }

    #[test]
    fn global_options_go_anywhere_and_a_bad_prefix_is_refused() {
        let cli = parse(&[
            "backorders",
            "--format",
            "json",
            "--prefix",
            "shop-1",
            "--late",
        ])
        .unwrap();
        assert_eq!(cli.format, Format::Json);
        assert_eq!(cli.prefix.prefix(), "shop-1");
        assert_eq!(cli.timeout, Duration::from_secs(10));
        let Command::Backorders(args) = cli.command else {
            panic!("not backorders")
        };
        assert!(args.late && !args.all);
        let error = parse(&["--prefix", "Shop.1", "sku", "W"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("a-z, 0-9"), "{error}");
    }

    #[test]
    fn durations_dates_and_negative_priorities_parse() {
        let cli = parse(&[
            "backorders",
            "--older-than",
            "7d",
            "--sort",
            "eta",
            "--desc",
        ])
        .unwrap();
        let Command::Backorders(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.older_than, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!((args.sort, args.desc), (Sort::Eta, true));
        assert!(parse(&["backorders", "--older-than", "7"]).is_err());
        let cli = parse(&[
            "kpi",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01T00:00:00Z",
        ])
        .unwrap();
        let Command::Kpi(kpi) = cli.command else {
            panic!()
        };
        assert_eq!(kpi.from.unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        let cli = parse(&["priority", "SO-1", "-5", "--operator", "ann"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Priority { priority: -5, .. }
        ));
        assert!(parse(&["backorders", "--limit", "0"]).is_err());
        assert!(parse(&["preview", "W", "lots"]).is_err());
    }
}
