use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{Source as _, shutdown, telemetry, vars};

const USAGE: &str = "usage: notifier preferences CUSTOMER_ID email=in|out sms=in|out";

/// Turns customer events into emails and SMS from templates in the customer's language, coalesced per
/// order, held through quiet hours. Without a command it runs the service, configured by the environment
/// (below); health and metrics on BO_HTTP_ADDR.
#[derive(clap::Parser)]
#[command(name = "notifier", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check the templates (BO_TEMPLATES_DIR over the shipped ones) and print every kind of message rendered
    /// for a sample order in LOCALE (default: every locale).
    Templates { locale: Option<String> },
    /// Publish a CustomerPreferences for the customer (NATS_URL, BO_PREFIX), as of now; name both channels.
    #[command(after_help = "Example:\n  notifier preferences C-1 email=in sms=out")]
    Preferences {
        customer_id: String,
        /// email=in|out and sms=in|out
        #[arg(value_name = "CHANNEL=in|out")]
        channels: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let known = notifier::env_vars();
    let cli: Cli = vars::parse_args(&known);
    match cli.command {
        None => {}
        Some(Command::Templates { locale }) => return print_templates(locale.as_deref()),
        Some(Command::Preferences {
            customer_id,
            channels,
        }) => {
            let args: Vec<String> = std::iter::once(customer_id).chain(channels).collect();
            return set_preferences(&args).await;
        }
    }
    let _telemetry = telemetry::init(&ProcessEnv, "notifier");
    vars::warn_unknown(&known);
    // Listening from the start: SIGTERM during start-up still ends the process cleanly.
    let shutdown = shutdown::signal();
    let config = notifier::Config::from_source(&ProcessEnv)?;
    notifier::Application::build(config)
        .await?
        .run_until_stopped(shutdown)
        .await
}

fn print_templates(locale: Option<&str>) -> anyhow::Result<()> {
    let dir = ProcessEnv.get("BO_TEMPLATES_DIR");
    let templates = notifier::templates::Templates::load(dir.as_deref().map(std::path::Path::new))?;
    let locales: Vec<String> = match locale {
        Some(locale) => vec![locale.to_string()],
        None => templates.locales().map(str::to_string).collect(),
    };
    for locale in locales {
        for kind in notifier::templates::KINDS {
            let (email, sms) = notifier::render::sample(&templates, kind, &locale)?;
            println!("===== {locale} / {kind} =====");
            println!("Subject: {}\n", email.subject);
            println!("{}", email.text_body);
            println!(
                "--- SMS ({} GSM-7 characters) ---\n{}\n",
                notifier::sms::units(&sms.text),
                sms.text
            );
        }
    }
    Ok(())
}

/// `preferences C-1 email=in sms=out`: both channels must be named, so nothing is changed by accident.
async fn set_preferences(args: &[String]) -> anyhow::Result<()> {
    let (Some(customer_id), rest) = (args.first(), args.get(1..).unwrap_or_default()) else {
        anyhow::bail!("{USAGE}");
    };
    let mut email = None;
    let mut sms = None;
    for arg in rest {
        match arg.split_once('=') {
            Some(("email", "in")) => email = Some(false),
            Some(("email", "out")) => email = Some(true),
            Some(("sms", "in")) => sms = Some(false),
            Some(("sms", "out")) => sms = Some(true),
            _ => anyhow::bail!("{arg:?} is not email=in|out or sms=in|out\n{USAGE}"),
        }
    }
    let (Some(email_opt_out), Some(sms_opt_out)) = (email, sms) else {
        anyhow::bail!("name both channels (email=in|out sms=in|out)\n{USAGE}");
    };
    let mut check = backorder_runtime::limits::Check::new();
    check.id("customer_id", customer_id);
    check.result().map_err(anyhow::Error::msg)?;
    let common = backorder_runtime::CommonConfig::from_source(&ProcessEnv)?;
    let bus = backorder_runtime::jetstream::Bus::open(
        &common.nats,
        common.subjects.clone(),
        "notifier-preferences-command",
    )
    .await?;
    let now = chrono::Utc::now();
    let preferences = backorder_proto::v1::CustomerPreferences {
        customer_id: customer_id.clone(),
        email_opt_out,
        sms_opt_out,
        updated_at: Some(backorder_runtime::time::to_proto(now)),
    };
    let id = format!(
        "{customer_id}/{}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    bus.publish(common.subjects.customer_preferences(), &id, &preferences)
        .await?;
    println!("published {id}: email_opt_out={email_opt_out} sms_opt_out={sms_opt_out}");
    Ok(())
}
