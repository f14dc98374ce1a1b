use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry, vars};

/// Turns the shortages allocation reports into purchase requests, one per supplier for what a window
/// gathered, by each SKU's reorder policy. Configured by the environment (below); health and metrics on
/// BO_HTTP_ADDR.
#[derive(clap::Parser)]
#[command(name = "replenishment-trigger", version)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let known = replenishment_trigger::env_vars();
    let Cli {} = vars::parse_args(&known);
    let _telemetry = telemetry::init(&ProcessEnv, "replenishment-trigger");
    vars::warn_unknown(&known);
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = replenishment_trigger::Config::from_source(&ProcessEnv)?;
    replenishment_trigger::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}
