//! The environment variables each binary reads, named in code: `--help` prints them, start-up warns about a
//! `BO_*` variable no list names (a typo would otherwise be ignored silently), deploy manifests are checked
//! against them, and a test per crate keeps each list in step with the names its source reads.

use std::path::Path;

/// One environment variable a binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    /// What applies when it is unset; `None`: nothing (the feature is off, or the text in `about` says).
    pub default: Option<&'static str>,
    pub about: &'static str,
    /// Its value is a secret or the path to one: keep it out of logs and plain config maps.
    pub secret: bool,
}

/// What [`CommonConfig`](crate::CommonConfig), the NATS connection and telemetry read, in every service.
pub const COMMON: &[Var] = &[
    Var {
        name: "NATS_URL",
        default: Some("nats://127.0.0.1:4222"),
        about: "the NATS server",
        secret: false,
    },
    Var {
        name: "NATS_CREDS",
        default: None,
        about: "path to a NATS credentials file (JWT creds or an nkey seed); unset: no credentials",
        secret: true,
    },
    Var {
        name: "NATS_TLS_CA",
        default: None,
        about: "path to the CA certificate (PEM) that NATS's TLS certificate is checked against",
        secret: false,
    },
    Var {
        name: "NATS_TLS_CERT",
        default: None,
        about: "path to a client certificate (PEM) for TLS, with NATS_TLS_KEY",
        secret: false,
    },
    Var {
        name: "NATS_TLS_KEY",
        default: None,
        about: "path to the client certificate's private key (PEM)",
        secret: true,
    },
    Var {
        name: "BO_PREFIX",
        default: Some("bo"),
        about: "the subject prefix every subject, stream and bucket name starts with",
        secret: false,
    },
    Var {
        name: "BO_PROVISION",
        default: Some("true"),
        about: "create the prefix's streams and buckets at start; false: expect them to exist (needs no \
                JetStream admin rights)",
        secret: false,
    },
    Var {
        name: "BO_STREAM_REPLICAS",
        default: Some("1"),
        about: "replicas of each stream and bucket created at start (a clustered server: 3)",
        secret: false,
    },
    Var {
        name: "BO_BATCH_SIZE",
        default: Some("256"),
        about: "the most messages a consumer takes in one go",
        secret: false,
    },
    Var {
        name: "BO_MAX_DELIVER",
        default: Some("5"),
        about: "deliveries of a failing message before it is parked in the dead-letter stream",
        secret: false,
    },
    Var {
        name: "BO_MAX_WAIT_SECS",
        default: Some("600"),
        about: "how long a message that waits for another is delivered again before it is parked",
        secret: false,
    },
    Var {
        name: "BO_ACK_WAIT_SECS",
        default: Some("30"),
        about: "how long a delivery may stay unsettled before it is delivered again (at least 1)",
        secret: false,
    },
    Var {
        name: "BO_CLOCK",
        default: Some("wall"),
        about: "wall, or simulated: the clock moves only by <prefix>.ctl.clock",
        secret: false,
    },
    Var {
        name: "BO_CLOCK_START",
        default: None,
        about: "where a simulated clock starts (RFC 3339); unset: now",
        secret: false,
    },
    Var {
        name: "BO_HTTP_ADDR",
        default: None,
        about: "where /health, /livez, /ready, /readyz and /metrics are served; 0.0.0.0:<port> binds every \
                interface (in a container)",
        secret: false,
    },
    Var {
        name: "RUST_LOG",
        default: Some("info"),
        about: "the log filter, e.g. info,allocation=debug",
        secret: false,
    },
    Var {
        name: "BO_LOG_FORMAT",
        default: Some("text"),
        about: "text, or json: one JSON object per line",
        secret: false,
    },
    Var {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: None,
        about: "export traces over OTLP/HTTP there, e.g. http://127.0.0.1:4318; unset: not exported",
        secret: false,
    },
];

/// The address a service serves health and metrics on when `BO_HTTP_ADDR` is unset (kept equal to
/// [`CommonConfig::http_addr`](crate::CommonConfig::http_addr) by a test).
pub fn default_http_addr(service: &str) -> &'static str {
    match service {
        "order-intake" => "127.0.0.1:9181",
        "allocation" => "127.0.0.1:9182",
        "replenishment-trigger" => "127.0.0.1:9183",
        "notifier" => "127.0.0.1:9184",
        _ => "127.0.0.1:9180",
    }
}

/// A service's whole list: [`COMMON`] (with its own `BO_HTTP_ADDR` default) and then its own variables.
pub fn service_vars(service: &str, own: &[Var]) -> Vec<Var> {
    COMMON
        .iter()
        .map(|var| match var.name {
            "BO_HTTP_ADDR" => Var {
                default: Some(default_http_addr(service)),
                ..*var
            },
            _ => *var,
        })
        .chain(own.iter().copied())
        .collect()
}

/// The "Environment:" section of `--help`: one entry per variable with its default and what it does.
pub fn help_section(vars: &[Var]) -> String {
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut text = String::from("Environment:\n");
    for var in vars {
        let default = match var.default {
            Some(default) => format!(" [default: {default}]"),
            None => String::new(),
        };
        let secret = if var.secret { " (secret)" } else { "" };
        text.push_str(&format!(
            "  {:width$}  {}{default}{secret}\n",
            var.name, var.about
        ));
    }
    text
}

/// `P`'s command with [`help_section`] of `vars` after its help (and after any text already there).
pub fn command_with_env<P: clap::CommandFactory>(vars: &[Var]) -> clap::Command {
    let command = P::command();
    let after = match command.get_after_help() {
        Some(text) => format!("{text}\n\n{}", help_section(vars)),
        None => help_section(vars),
    };
    command.after_help(after)
}

/// Parses the process's arguments into `P`; `--help` (listing `vars`) and `--version` print and exit 0, a
/// bad argument exits 2 with the usage. Call it before anything connects or exports.
pub fn parse_args<P: clap::Parser>(vars: &[Var]) -> P {
    let matches = command_with_env::<P>(vars).get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// The `BO_*` names among `set` that `known` does not list, each with the closest known name when one is
/// near enough to be a likely typo.
pub fn unknown_vars<'a>(set: &[String], known: &'a [Var]) -> Vec<(String, Option<&'a str>)> {
    set.iter()
        .filter(|name| name.starts_with("BO_") && !known.iter().any(|var| var.name == *name))
        .map(|name| (name.clone(), closest(name, known)))
        .collect()
}

/// The known name within a few edits of `name` (a third of its length at most), the nearest first.
fn closest<'a>(name: &str, known: &'a [Var]) -> Option<&'a str> {
    let limit = (name.len() / 3).max(1);
    known
        .iter()
        .map(|var| (strsim::levenshtein(name, var.name), var.name))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Warns, one line each, of the `BO_*` variables set in the process environment that `known` does not list.
pub fn warn_unknown(known: &[Var]) {
    let set: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for (name, suggestion) in unknown_vars(&set, known) {
        match suggestion {
            Some(known) => tracing::warn!(
                "{name} is set but this binary reads no such variable (did you mean {known}?); it is ignored"
            ),
            None => tracing::warn!(
                "{name} is set but this binary reads no such variable (see --help); it is ignored"
            ),
        }
    }
}

/// The environment variable names a crate's source asks for: every whole string literal of a name that starts
/// with BO_ or NATS_, or is DATABASE_URL, in the `.rs` files under `dir`, before a line that opens their test
/// module (where test values and stream names such as BO_IN stand). For each crate's test that its list is
/// complete.
pub fn names_in_source(dir: &Path) -> std::io::Result<Vec<String>> {
    names_in_files_under(dir, |_| true)
}

fn names_in_files_under(
    dir: &Path,
    wanted: impl Fn(&Path) -> bool,
) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && wanted(&path) {
                let text = std::fs::read_to_string(&path)?;
                names.extend(literals(without_tests(&text)));
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// For a crate's test that its list and its source agree: panics unless the `.rs` files under `dir` read some
/// variable, every one they read is in `known` (the binary's whole list), and every one of `own` (the crate's
/// own list) is read there.
pub fn assert_listed_as_read(dir: &Path, known: &[Var], own: &[Var]) {
    let read = names_in_source(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    assert!(
        !read.is_empty(),
        "no variable found under {}",
        dir.display()
    );
    let unlisted = unlisted_in_source(dir, known);
    let unread = unread_in_source(dir, own);
    // (read in src/ but not listed, listed in ENV but read nowhere)
    assert_eq!((unlisted, unread), (vec![], vec![]));
}

/// The names in `names_in_source(dir)` that `known` does not list.
pub fn unlisted_in_source(dir: &Path, known: &[Var]) -> Vec<String> {
    names_in_source(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .into_iter()
        .filter(|name| !known.iter().any(|var| var.name == name))
        .collect()
}

/// The variables of `own` whose name no `.rs` file under `dir` quotes outside its test module and outside the
/// list itself (`pub const ENV: &[Var] = &[…];`): listed but no longer read.
pub fn unread_in_source<'a>(dir: &Path, own: &'a [Var]) -> Vec<&'a str> {
    let mut code = String::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                code.push_str(&without_list(without_tests(&text)));
            }
        }
    }
    own.iter()
        .map(|var| var.name)
        .filter(|name| !code.contains(&format!("\"{name}\"")))
        .collect()
}

/// The source without a `pub const ENV: &[Var]` list, which quotes every name it lists.
fn without_list(code: &str) -> String {
    let Some(start) = code.find("pub const ENV: &[Var]") else {
        return code.to_string();
    };
    match code[start..].find("];") {
        Some(len) => format!("{}{}", &code[..start], &code[start + len..]),
        None => code.to_string(),
    }
}

/// The part of a source file before the line that opens its test module.
fn without_tests(text: &str) -> &str {
    match text.find("\n#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Whole string literals of an upper-case variable name that starts with BO_ or NATS_, or is DATABASE_URL.
fn literals(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find('"') {
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let word = &after[..len];
        let closed = after[len..].starts_with('"');
        let named = ["BO_", "NATS_"]
            .iter()
            .any(|prefix| word.len() > prefix.len() && word.starts_with(prefix));
        if closed && (named || word == "DATABASE_URL") {
            found.push(word.to_string());
            rest = &after[len + 1..];
        } else {
            rest = after;
        }
    }
    found
}

/// The TLS settings of the NATS connection, for a binary that reads nothing else of [`COMMON`] (the CLI).
pub fn nats_tls() -> impl Iterator<Item = Var> {
    COMMON
        .iter()
        .filter(|v| v.name.starts_with("NATS_TLS_"))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Var] = &[
        Var {
            name: "BO_PREFIX",
            default: Some("bo"),
            about: "",
            secret: false,
        },
        Var {
            name: "BO_BATCH_SIZE",
            default: Some("256"),
            about: "",
            secret: false,
        },
        Var {
            name: "NATS_URL",
            default: None,
            about: "",
            secret: false,
        },
    ];

    fn set(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_known_variable_and_others_than_bo_are_not_reported() {
        let found = unknown_vars(&set(&["BO_PREFIX", "NATS_URL", "NATS_URLL", "HOME"]), KNOWN);
        assert_eq!(found, vec![]);
    }

    #[test]
    fn a_typo_is_reported_with_the_name_it_is_close_to() {
        let found = unknown_vars(&set(&["BO_PREFX", "BO_BATCHSIZE", "BO_PREFIX"]), KNOWN);
        assert_eq!(
            found,
            vec![
                ("BO_PREFX".to_string(), Some("BO_PREFIX")),
                ("BO_BATCHSIZE".to_string(), Some("BO_BATCH_SIZE")),
            ]
        );
    }

    #[test]
    fn an_unknown_name_far_from_every_known_one_has_no_suggestion() {
        let found = unknown_vars(&set(&["BO_SOMETHING_ELSE_ENTIRELY"]), KNOWN);
        assert_eq!(
            found,
            vec![("BO_SOMETHING_ELSE_ENTIRELY".to_string(), None)]
        );
    }

    #[test]
    fn names_are_unique_and_described() {
        let all = service_vars("allocation", &[]);
        for (i, var) in all.iter().enumerate() {
            assert!(!var.about.is_empty(), "{} has no text", var.name);
            assert!(
                all[i + 1..].iter().all(|other| other.name != var.name),
                "{} listed twice",
                var.name
            );
        }
    }

    #[test]
    fn the_http_default_matches_what_common_config_binds() {
        let config =
            crate::CommonConfig::from_source(&std::collections::HashMap::<&str, &str>::new())
                .unwrap();
        for service in [
            "order-intake",
            "allocation",
            "replenishment-trigger",
            "notifier",
            "x",
        ] {
            let listed = service_vars(service, &[]);
            let http = listed.iter().find(|v| v.name == "BO_HTTP_ADDR").unwrap();
            assert_eq!(
                http.default,
                Some(config.http_addr(service).to_string().as_str()),
                "{service}"
            );
        }
    }

    #[test]
    fn the_help_section_names_each_variable_with_its_default() {
        let text = help_section(KNOWN);
        assert!(text.starts_with("Environment:\n"), "{text}");
        assert!(
            text.contains("BO_PREFIX") && text.contains("[default: bo]"),
            "{text}"
        );
        assert!(
            text.contains("BO_BATCH_SIZE") && text.contains("[default: 256]"),
            "{text}"
        );
        assert!(text.contains("NATS_URL"), "{text}");
    }

    #[derive(clap::Parser)]
    #[command(name = "svc", version, after_help = "Exit status: 0 done.")]
    struct Svc {}

    #[test]
    fn the_help_ends_with_the_environment_and_keeps_what_was_there() {
        let help = command_with_env::<Svc>(KNOWN).render_help().to_string();
        let exit = help.find("Exit status: 0 done.").expect(&help);
        let env = help.find("Environment:\n").expect(&help);
        assert!(exit < env, "{help}");
        assert!(
            help[env..].contains("BO_BATCH_SIZE") && help.contains("[default: 256]"),
            "{help}"
        );
    }

    #[test]
    fn an_unknown_argument_is_a_usage_error() {
        let error = command_with_env::<Svc>(KNOWN)
            .try_get_matches_from(["svc", "--frobnicate"])
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let version = command_with_env::<Svc>(KNOWN)
            .try_get_matches_from(["svc", "--version"])
            .unwrap_err();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(
            version.to_string(),
            format!("svc {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn literals_are_whole_names_only() {
        let code = r#"get("BO_PREFIX"); let key = "NATS_URL"; "DATABASE_URL" "BO_" "BO_lower"
            format!("BO_PREFIX={x}"); "NATS_TLS_CA""#;
        assert_eq!(
            literals(code),
            vec!["BO_PREFIX", "NATS_URL", "DATABASE_URL", "NATS_TLS_CA"]
        );
    }

    #[test]
    fn every_name_the_runtime_reads_is_in_common() {
        // This file names what the others read; it reads nothing itself.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let names = names_in_files_under(&dir, |path| !path.ends_with("vars.rs")).unwrap();
        assert!(names.contains(&"BO_PREFIX".to_string()), "{names:?}");
        let unlisted: Vec<&String> = names
            .iter()
            .filter(|name| !COMMON.iter().any(|var| var.name == name.as_str()))
            .collect();
        assert_eq!(unlisted, Vec::<&String>::new());
    }
}
