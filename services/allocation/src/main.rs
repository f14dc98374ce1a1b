use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(&ProcessEnv);
    let config = allocation::Config::from_source(&ProcessEnv)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        let pool = allocation::connect_database(&config.database_url, 2).await?;
        let fine = allocation::report::run(&pool, &args).await?;
        std::process::exit(if fine { 0 } else { 1 });
    }
    allocation::Application::build(config)
        .await?
        .run_until_stopped(shutdown::signal())
        .await
}
