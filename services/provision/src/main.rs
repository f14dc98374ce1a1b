use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = backorder_provision::Cli::parse();
    match backorder_provision::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("backorder-provision: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
