//! `backorder-provision`: what an administrator sets up before the services start, so that they run with
//! `BO_PROVISION=false` and users that may not create anything.
//!
//! - `accounts` writes one NATS user per role (an nkey, its seed in `<dir>/<role>.creds`) and the server
//!   configuration that gives each its permissions (`<dir>/accounts.conf`, see `runtime::permissions`).
//! - `streams` creates a prefix's streams, key-value buckets and durable consumers, `BO_STREAM_REPLICAS` copies
//!   each, connected as `admin` (`NATS_CREDS`).
//! - `permissions` prints what each role may publish and subscribe to.

pub mod accounts;

/// What `streams` reads: the services' shared configuration (NATS, the prefix, replicas, the consumers'
/// settings).
pub fn env_vars() -> Vec<backorder_runtime::vars::Var> {
    backorder_runtime::vars::COMMON.to_vec()
}

use std::path::PathBuf;

use backorder_runtime::Subjects;
use backorder_runtime::config::ProcessEnv;
use backorder_runtime::jetstream::Bus;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "backorder-provision",
    version,
    about = "Sets up NATS for backorder: users and permissions per role, then a prefix's streams, buckets and consumers",
    after_help = "`streams` connects as NATS_CREDS (the admin user) and reads the services' configuration below."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Writes <dir>/<role>.creds for every role (keeping the keys of files already there) and
    /// <dir>/accounts.conf, the nats-server `authorization` block for them; include it in the server's
    /// configuration and reload it.
    Accounts {
        /// A prefix the users work under; repeat for several. `*` stands for every prefix (a development
        /// server whose tests each take a prefix of their own).
        #[arg(long = "prefix", required = true, value_parser = prefix_or_any)]
        prefixes: Vec<Subjects>,
        /// Where the creds files and accounts.conf go (made 0700; each creds file 0600).
        #[arg(long, default_value = ".local/nats")]
        out_dir: PathBuf,
    },
    /// Creates (or brings up to date) the streams, key-value buckets and durable consumers of BO_PREFIX, with
    /// BO_STREAM_REPLICAS replicas: run as the admin user before the services start.
    Streams,
    /// Prints every role's permissions under the prefixes.
    Permissions {
        #[arg(long = "prefix", required = true, value_parser = prefix_or_any)]
        prefixes: Vec<Subjects>,
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
    },
}

fn prefix_or_any(text: &str) -> Result<Subjects, String> {
    if text == "*" {
        Ok(Subjects::any())
    } else {
        Subjects::new(text)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Accounts { prefixes, out_dir } => {
            let written = accounts::write(&out_dir, &prefixes)?;
            for line in written {
                println!("{line}");
            }
            Ok(())
        }
        Command::Streams => streams().await,
        Command::Permissions { prefixes, role } => {
            print!("{}", accounts::matrix(&prefixes, role.as_deref())?);
            Ok(())
        }
    }
}

async fn streams() -> anyhow::Result<()> {
    let mut config = backorder_runtime::CommonConfig::from_source(&ProcessEnv)?;
    config.provision = true;
    let bus = Bus::for_service(&config, "backorder-provision").await?;
    bus.ensure_consumers().await?;
    println!(
        "provisioned prefix {} on {}: streams {}, buckets {}, consumers {}, {} replica(s) each",
        config.subjects.prefix(),
        config.nats.display_url(),
        backorder_runtime::subjects::StreamKind::ALL
            .map(|k| config.subjects.stream(k))
            .join(", "),
        config.subjects.buckets().join(", "),
        backorder_runtime::topology::consumers(&config.subjects)
            .iter()
            .map(|c| format!("{}/{}", config.subjects.stream(c.stream), c.name))
            .collect::<Vec<_>>()
            .join(", "),
        config.stream_replicas,
    );
    Ok(())
}
