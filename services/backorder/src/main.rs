use std::io::Write;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli: backorder::Cli = backorder_runtime::vars::parse_args(&backorder::env_vars());
    let output = match backorder::run(&cli).await {
        Ok(output) => output,
        Err(failure) => {
            eprintln!("backorder: {failure}");
            return ExitCode::from(failure.exit_code());
        }
    };
    for note in &output.notes {
        eprintln!("backorder: {note}");
    }
    let mut stdout = std::io::stdout().lock();
    match backorder::render::write(&output, cli.format, &mut stdout).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing left to tell.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("backorder: writing the output: {error}");
            ExitCode::FAILURE
        }
    }
}
