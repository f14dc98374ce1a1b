use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&ProcessEnv, "replenishment-trigger");
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = replenishment_trigger::Config::from_source(&ProcessEnv)?;
    replenishment_trigger::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}
