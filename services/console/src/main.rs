use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().len() > 1 {
        eprintln!(
            "usage: console    serve the backorder desk's web dashboard (configured by the environment: NATS_URL, \
             BO_PREFIX, BO_CONSOLE_ADDR (default {}), BO_CONSOLE_TOKEN, BO_CONSOLE_TIMEOUT_MS)",
            console::config::DEFAULT_ADDR
        );
        std::process::exit(2);
    }
    let _telemetry = telemetry::init(&ProcessEnv, "console");
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = console::Config::from_source(&ProcessEnv)?;
    console::serve(config, shutdown).await
}
