//! `backorder`, the backorder desk's operator CLI: asks the query API (`<p>.api.*`, NATS request/reply,
//! `proto/backorder/v1/api.proto`) and prints the answer as a table, CSV or JSON. It needs nothing but NATS,
//! so it works from any machine that reaches the broker.

pub mod cli;
pub mod client;
pub mod commands;
pub mod letters;
pub mod parse;
pub mod render;
pub mod view;

pub use cli::Cli;
pub use client::{Api, Failure};
pub use render::Output;

/// Connects and runs the command.
pub async fn run(cli: &Cli) -> Result<Output, Failure> {
    let nats = backorder_runtime::nats::NatsOptions {
        url: cli.nats_url.clone(),
        creds: cli.creds.clone(),
        ..backorder_runtime::nats::NatsOptions::from_source(&backorder_runtime::config::ProcessEnv)
            .map_err(|e| Failure::Unreachable {
                nats_url: backorder_runtime::secret::mask_url(&cli.nats_url),
                detail: e.to_string(),
            })?
    };
    let api = Api::connect(&nats, cli.prefix.clone(), cli.timeout).await?;
    commands::run(&api, &cli.command).await
}
