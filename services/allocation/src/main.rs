use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init(&ProcessEnv, "allocation");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        // An operator command (allocation check, allocation history ...), not the service.
        let config = allocation::Config::from_source(&ProcessEnv)?;
        let pool = allocation::connect_database(&config.database_url, 2).await?;
        let fine = allocation::report::run(&pool, &args).await?;
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
