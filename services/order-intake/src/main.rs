use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&ProcessEnv, "order-intake");
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = order_intake::Config::from_source(&ProcessEnv)?;
    order_intake::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}
