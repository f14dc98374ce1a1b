use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry, vars};

/// Serves the backorder desk's web dashboard over the query API. Configured by the environment (below);
/// pages and /health, /livez, /ready, /readyz on BO_CONSOLE_ADDR.
#[derive(clap::Parser)]
#[command(name = "console", version)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let known = console::env_vars();
    let Cli {} = vars::parse_args(&known);
    let _telemetry = telemetry::init(&ProcessEnv, "console");
    vars::warn_unknown(&known);
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = console::Config::from_source(&ProcessEnv)?;
    console::serve(config, shutdown).await
}
