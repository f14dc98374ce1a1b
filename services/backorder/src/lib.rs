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

use backorder_runtime::vars::Var;

/// The environment variables the CLI reads (each also an option: the option wins).
pub const ENV: &[Var] = &[
    Var {
        name: "NATS_URL",
        default: Some("nats://127.0.0.1:4222"),
        about: "the NATS server the services use (--nats-url)",
        secret: false,
    },
    Var {
        name: "BO_PREFIX",
        default: Some("bo"),
        about: "the services' subject prefix (--prefix)",
        secret: false,
    },
    Var {
        name: "NATS_CREDS",
        default: None,
        about: "the credentials file of the user to connect as, the operator role (--creds)",
        secret: true,
    },
    Var {
        name: "USER",
        default: None,
        about: "who is recorded as asking for a priority change or a replay (--by)",
        secret: false,
    },
];

/// Every environment variable the binary reads: its own, and the TLS settings of the NATS connection
/// (read by the runtime).
pub fn env_vars() -> Vec<Var> {
    ENV.iter()
        .copied()
        .chain(backorder_runtime::vars::nats_tls())
        .collect()
}

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

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}
