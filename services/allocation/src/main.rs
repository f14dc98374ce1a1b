use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry, vars};

/// Owns the store of stock, orders and backorders: ships what is in stock, backorders the rest and fills
/// the queue as stock arrives. Without a command it runs the service, configured by the environment
/// (below); health and metrics on BO_HTTP_ADDR.
#[derive(clap::Parser)]
#[command(name = "allocation", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Operator>,
}

/// An operator's question to the database (DATABASE_URL); the service is not started.
#[derive(clap::Subcommand)]
enum Operator {
    /// Check the books' invariants (exit status 1 when one does not hold).
    Check,
    /// The audit trail of an order or a SKU.
    History {
        #[arg(value_enum)]
        of: HistoryOf,
        /// The order id or the SKU.
        key: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum HistoryOf {
    Order,
    Sku,
}

impl Operator {
    /// The words `allocation::report::run` reads.
    fn args(&self) -> Vec<String> {
        match self {
            Operator::Check => vec!["check".into()],
            Operator::History { of, key } => {
                let of = match of {
                    HistoryOf::Order => "order",
                    HistoryOf::Sku => "sku",
                };
                vec!["history".into(), of.into(), key.clone()]
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let known = allocation::env_vars();
    let cli: Cli = vars::parse_args(&known);
    let _telemetry = telemetry::init(&ProcessEnv, "allocation");
    vars::warn_unknown(&known);
    if let Some(command) = cli.command {
        let config = allocation::Config::from_source(&ProcessEnv)?;
        let pool = allocation::connect_database(&config.database_url, 2).await?;
        let fine = allocation::report::run(&pool, &command.args()).await?;
        std::process::exit(if fine { 0 } else { 1 });
    }
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = allocation::Config::from_source(&ProcessEnv)?;
    allocation::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}
