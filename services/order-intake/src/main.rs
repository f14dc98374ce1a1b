use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry, vars};

/// Validates the orders the OMS publishes, rejects bad ones with every reason and hands good ones to
/// allocation. Configured by the environment (below); health and metrics on BO_HTTP_ADDR.
#[derive(clap::Parser)]
#[command(name = "order-intake", version)]
struct Cli {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let known = order_intake::env_vars();
    let Cli {} = vars::parse_args(&known);
    let _telemetry = telemetry::init(&ProcessEnv, "order-intake");
    vars::warn_unknown(&known);
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = order_intake::Config::from_source(&ProcessEnv)?;
    order_intake::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}
