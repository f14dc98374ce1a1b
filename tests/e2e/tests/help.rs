//! Every binary answers `--help` and `--version` at once, from its arguments alone: NATS, PostgreSQL and the
//! trace exporter point at a port that accepts and never answers, so a binary that tried to connect would
//! hang there (and be seen doing so). Its help names every variable of its list, with the defaults; a bad
//! argument is a usage error; a mistyped BO_* variable is warned about at start.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backorder_runtime::vars::Var;
use backorder_test_support::binaries_dir;

/// Each binary with the variables it reads.
fn binaries() -> Vec<(&'static str, Vec<Var>)> {
    vec![
        ("order-intake", order_intake::env_vars()),
        ("allocation", allocation::env_vars()),
        ("replenishment-trigger", replenishment_trigger::env_vars()),
        ("notifier", notifier::env_vars()),
        ("console", console::env_vars()),
        ("backorder", backorder::env_vars()),
        ("backorder-provision", backorder_provision::env_vars()),
    ]
}

/// A port that accepts connections and never says a word, counting them.
struct BlackHole {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl BlackHole {
    fn open() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self { addr, accepted }
    }

    /// `binary args…` with every outside service pointed here.
    fn command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binaries_dir().unwrap().join(binary));
        command
            .args(args)
            .env("NATS_URL", format!("nats://{}", self.addr))
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@{}/help", self.addr),
            )
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", self.addr),
            )
            .stdin(Stdio::null());
        command
    }
}

/// Runs to the end, at most `limit`; (exit code, stdout, stderr, how long it took).
fn run(mut command: Command, limit: Duration) -> (Option<i32>, String, String, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{command:?}: {e} (build the binaries first: cargo build --bins)")
        });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{command:?} still running after {limit:?}: it must answer without connecting");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        took,
    )
}

#[test]
fn every_binary_prints_its_version_and_help_with_every_variable_without_connecting() {
    let hole = BlackHole::open();
    let version = env!("CARGO_PKG_VERSION");
    for (binary, vars) in binaries() {
        let (code, stdout, stderr, took) = run(
            hole.command(binary, &["--version"]),
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(0), "{binary} --version: {stderr}");
        assert_eq!(
            stdout,
            format!("{binary} {version}\n"),
            "{binary} --version"
        );
        // Well under a second: it printed and left, nothing was waited for.
        assert!(
            took < Duration::from_secs(2),
            "{binary} --version took {took:?}"
        );

        let (code, help, stderr, took) =
            run(hole.command(binary, &["--help"]), Duration::from_secs(10));
        assert_eq!(code, Some(0), "{binary} --help: {stderr}");
        assert!(
            took < Duration::from_secs(2),
            "{binary} --help took {took:?}"
        );
        assert!(
            help.contains(&format!("Usage: {binary}")),
            "{binary}:\n{help}"
        );
        let environment = help
            .split_once("Environment:\n")
            .unwrap_or_else(|| panic!("{binary} --help has no Environment section:\n{help}"))
            .1;
        for var in &vars {
            let line = environment
                .lines()
                .find(|line| line.split_whitespace().next() == Some(var.name))
                .unwrap_or_else(|| panic!("{binary} --help does not name {}:\n{help}", var.name));
            if let Some(default) = var.default {
                assert!(
                    line.contains(&format!("[default: {default}]")),
                    "{binary}: {line}"
                );
            }
        }
    }
    assert_eq!(
        hole.accepted.load(Ordering::SeqCst),
        0,
        "a binary connected while asked only for --help or --version"
    );
}

#[test]
fn an_unknown_argument_is_a_usage_error_and_nothing_starts() {
    let hole = BlackHole::open();
    for (binary, _) in binaries() {
        let (code, stdout, stderr, _) = run(
            hole.command(binary, &["--no-such-option"]),
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(2), "{binary}: {stdout}{stderr}");
        assert!(
            stderr.contains("--no-such-option") && stderr.contains("Usage:"),
            "{binary}: {stderr}"
        );
    }
    for (binary, word) in [
        ("order-intake", "start"),
        ("console", "serve"),
        ("allocation", "chek"),
    ] {
        let (code, _, stderr, _) = run(hole.command(binary, &[word]), Duration::from_secs(10));
        assert_eq!(code, Some(2), "{binary} {word}: {stderr}");
    }
    assert_eq!(hole.accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn a_mistyped_variable_is_warned_about_at_start_with_the_name_meant() {
    let hole = BlackHole::open();
    let mut command = hole.command("order-intake", &[]);
    let mut child = command
        .env("BO_PREFX", "shop")
        .env("BO_HTTP_ADDR", "127.0.0.1:0")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The logs go to stdout; the warning comes before the connection is tried (and hangs on the black hole).
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("BO_PREFX") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let warning =
        warning.unwrap_or_else(|| panic!("no warning of BO_PREFX in:\n{}", seen.join("\n")));
    assert!(
        warning.contains("WARN") && warning.contains("did you mean BO_PREFIX?"),
        "{warning}"
    );
    assert!(
        !seen
            .iter()
            .any(|line| line.contains("NATS_URL") || line.contains("BO_HTTP_ADDR")),
        "a known variable was warned about:\n{}",
        seen.join("\n")
    );
}
