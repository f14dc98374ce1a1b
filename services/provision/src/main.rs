#[tokio::main]
async fn main() -> std::process::ExitCode {
    let known = backorder_provision::env_vars();
    let cli: backorder_provision::Cli = backorder_runtime::vars::parse_args(&known);
    let _telemetry = backorder_runtime::telemetry::init(
        &backorder_runtime::config::ProcessEnv,
        "backorder-provision",
    );
    backorder_runtime::vars::warn_unknown(&known);
    match backorder_provision::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("backorder-provision: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
