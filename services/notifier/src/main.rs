use backorder_runtime::config::ProcessEnv;
use backorder_runtime::{Source as _, shutdown, telemetry};

const USAGE: &str = "usage: notifier            run the service (configured by the environment)
       notifier templates [LOCALE]
                          check the templates (BO_TEMPLATES_DIR over the shipped ones) and print every
                          kind of message rendered for a sample order in LOCALE (default: every locale)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("templates") => return print_templates(args.get(1).map(String::as_str)),
        Some(_) => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
    let _telemetry = telemetry::init(&ProcessEnv, "notifier");
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
