use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{CommonConfig, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(&ProcessEnv);
    let config = CommonConfig::from_source(&ProcessEnv)?;
    notifier::Application::build(config)
        .await?
        .run_until_stopped(shutdown::signal())
        .await
}
