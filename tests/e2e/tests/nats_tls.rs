//! TLS to NATS, against a NATS server of the test's own ([`backorder_test_support::infra`]) with a `tls` block and the
//! accounts of the test's prefix, and a CA, a server certificate (for `127.0.0.1` and `localhost`) and client
//! certificates the test makes. A client that trusts the CA gets in and JetStream works; a server certificate
//! the client does not trust, a server that verifies clients and gets no certificate (or one another CA
//! signed), and a server without TLS when TLS is required all fail at once and say which setting to look at;
//! order-intake as a process, given `NATS_TLS_CA` and its role's credentials, becomes ready and accepts an
//! order.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use backorder_proto::v1::{OrderAccepted, OrderPlaced};
use backorder_runtime::Subjects;
use backorder_runtime::jetstream::Bus;
use backorder_runtime::nats::NatsOptions;
use backorder_runtime::subjects::StreamKind;
use backorder_test_support::infra::{Nats, Scratch};
use backorder_test_support::pki::Pki;
use backorder_test_support::{binaries_dir, http_get, messages, stream};
use prost::Message as _;
use tokio::process::{Child, Command};

/// How long a failure may take to be reported: a retried one never would be.
const FAILS_WITHIN: Duration = Duration::from_secs(20);
const PATIENCE: Duration = Duration::from_secs(30);

/// Whether the server has TLS, and whether it asks clients for a certificate its CA signed.
#[derive(Clone, Copy, PartialEq)]
enum Tls {
    Off,
    On,
    VerifyClients,
}

/// A NATS server with the accounts of one prefix (as `backorder-provision accounts` writes them) and `tls`.
struct TlsNats {
    nats: Nats,
    pki: Pki,
    users: PathBuf,
    subjects: Subjects,
    scratch: Scratch,
}

impl TlsNats {
    async fn start(name: &str, tls: Tls) -> anyhow::Result<Self> {
        let scratch = Scratch::new(name)?;
        let pki = Pki::make(&scratch.dir.join("certs"))?;
        let prefix = format!("tls-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let subjects = Subjects::new(&prefix).map_err(anyhow::Error::msg)?;
        let users = scratch.dir.join("users");
        backorder_provision::accounts::write(&users, std::slice::from_ref(&subjects))?;
        std::fs::copy(
            users.join("accounts.conf"),
            scratch.dir.join("accounts.conf"),
        )?;
        let path = |p: &Path| format!("{:?}", p.display().to_string());
        let tls_block = match tls {
            Tls::Off => String::new(),
            Tls::On | Tls::VerifyClients => format!(
                "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  timeout: 5\n{}}}\n",
                path(&pki.server_cert),
                path(&pki.server_key),
                path(&pki.ca),
                if tls == Tls::VerifyClients {
                    "  verify: true\n"
                } else {
                    ""
                }
            ),
        };
        let nats =
            Nats::start_configured(&scratch, &format!("include ./accounts.conf\n{tls_block}"))
                .await?;
        Ok(Self {
            nats,
            pki,
            users,
            subjects,
            scratch,
        })
    }

    /// `role`'s credentials, the CA that signed the server's certificate, no client certificate.
    fn options(&self, role: &str) -> NatsOptions {
        NatsOptions {
            url: self.nats.url(),
            creds: Some(self.creds(role)),
            tls_ca: Some(self.pki.ca.clone()),
            tls_client: None,
        }
    }

    fn creds(&self, role: &str) -> PathBuf {
        self.users.join(format!("{role}.creds"))
    }

    /// Connects as admin, makes the prefix's streams and consumers, and publishes an order on
    /// `in.order.placed`, read back from the stream: a JetStream round trip over this connection.
    async fn round_trip(&self, options: &NatsOptions, order_id: &str) -> anyhow::Result<Bus> {
        let bus = Bus::connect(options, self.subjects.clone(), "tls-test").await?;
        bus.ensure_consumers().await?;
        let order = order(order_id);
        bus.publish(self.subjects.order_placed(), order_id, &order)
            .await?;
        let stored =
            stream::stored(&bus, StreamKind::Inbound, &self.subjects.order_placed()).await?;
        let read: Vec<OrderPlaced> = stored
            .iter()
            .map(|m| OrderPlaced::decode(m.payload.clone()))
            .collect::<Result<_, _>>()?;
        assert!(
            read.iter().any(|o| o == &order),
            "the order published over TLS is not in the stream: {read:?}"
        );
        Ok(bus)
    }

    /// The test passed: its scratch folder (certificates, server log) goes.
    fn passed(mut self) {
        self.scratch.passed();
    }
}

fn order(order_id: &str) -> OrderPlaced {
    messages::order(
        order_id,
        messages::customer("C-7", "buyer@acme.example", "+4915112345678", "en"),
        &[("WIDGET", 3)],
    )
}

/// Connects once with `options` and returns the whole error chain, failing if it connected or took so
/// long that it must have been retrying.
async fn refused(options: &NatsOptions) -> anyhow::Result<String> {
    match tokio::time::timeout(FAILS_WITHIN, options.connect_retrying("tls-test")).await {
        Err(_) => bail!("still trying after {FAILS_WITHIN:?}: the failure is retried"),
        Ok(Ok(_)) => bail!("connected with {options:?}"),
        Ok(Err(error)) => Ok(format!("{error:#}")),
    }
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_gets_in_and_jetstream_works_over_tls() -> anyhow::Result<()> {
    let server = TlsNats::start("nats-tls", Tls::On).await?;
    let options = server.options("admin");
    let bus = server.round_trip(&options, "SO-TLS-1").await?;
    assert!(
        bus.client.server_info().tls_required,
        "the server said it does not require TLS: {:?}",
        bus.client.server_info()
    );

    // The certificate is for localhost too, and a tls:// URL is TLS whatever the options say.
    let by_name = NatsOptions {
        url: format!("tls://localhost:{}", server.nats.port),
        ..options.clone()
    };
    by_name.connect("tls-test").await?;
    // A client certificate the server does not ask for does no harm.
    let with_cert = NatsOptions {
        tls_client: Some((
            server.pki.client_cert.clone(),
            server.pki.client_key.clone(),
        )),
        ..options
    };
    with_cert.connect("tls-test").await?;
    server.passed();
    Ok(())
}

#[tokio::test]
async fn a_server_certificate_the_client_does_not_trust_is_refused_at_once() -> anyhow::Result<()> {
    let server = TlsNats::start("nats-tls-untrusted", Tls::On).await?;

    // No NATS_TLS_CA: the system's roots, which never signed the test's server certificate.
    let system_roots = NatsOptions {
        tls_ca: None,
        ..server.options("admin")
    };
    let error = refused(&system_roots).await?;
    assert!(
        error.contains("TLS to NATS failed")
            && error.contains("set NATS_TLS_CA")
            && error.contains("invalid peer certificate"),
        "{error}"
    );

    // A CA that did not sign it.
    let other_ca = NatsOptions {
        tls_ca: Some(server.pki.other_ca.clone()),
        ..server.options("admin")
    };
    let error = refused(&other_ca).await?;
    assert!(
        error.contains(&format!("NATS_TLS_CA={}", server.pki.other_ca.display()))
            && error.contains("invalid peer certificate"),
        "{error}"
    );

    server.passed();
    Ok(())
}

#[tokio::test]
async fn a_server_that_verifies_clients_lets_in_only_a_certificate_its_ca_signed()
-> anyhow::Result<()> {
    let server = TlsNats::start("nats-tls-verify", Tls::VerifyClients).await?;

    let error = refused(&server.options("admin")).await?;
    assert!(
        error.contains("TLS to NATS failed")
            && error.contains("set NATS_TLS_CERT and NATS_TLS_KEY"),
        "{error}"
    );

    let strangers = NatsOptions {
        tls_client: Some((
            server.pki.other_client_cert.clone(),
            server.pki.other_client_key.clone(),
        )),
        ..server.options("admin")
    };
    let error = refused(&strangers).await?;
    assert!(
        error.contains("TLS to NATS failed")
            && error.contains(&server.pki.other_client_cert.display().to_string()),
        "{error}"
    );

    let signed = NatsOptions {
        tls_client: Some((
            server.pki.client_cert.clone(),
            server.pki.client_key.clone(),
        )),
        ..server.options("admin")
    };
    server.round_trip(&signed, "SO-TLS-2").await?;
    server.passed();
    Ok(())
}

#[tokio::test]
async fn a_client_that_requires_tls_does_not_talk_to_a_server_without_it() -> anyhow::Result<()> {
    let server = TlsNats::start("nats-tls-off", Tls::Off).await?;
    let error = refused(&server.options("admin")).await?;
    assert!(
        error.contains("TLS to NATS failed") && error.contains("offer TLS"),
        "{error}"
    );
    // The same server without NATS_TLS_CA: plain text, as before.
    let plain = NatsOptions {
        tls_ca: None,
        ..server.options("admin")
    };
    plain.connect("tls-test").await?;
    server.passed();
    Ok(())
}

/// order-intake as a process with `NATS_URL`, `NATS_CREDS` and `extra` (the `NATS_TLS_*` of the case), the
/// way the end-to-end tests start the services; its output goes to `log`.
fn order_intake(server: &TlsNats, log: &Path, extra: &[(&str, &Path)]) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    Command::new(binaries_dir()?.join("order-intake"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NATS_URL", server.nats.url())
        .env("NATS_CREDS", server.creds("order-intake"))
        .env("BO_PREFIX", server.subjects.prefix())
        .env("BO_PROVISION", "false")
        .env("BO_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(extra.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .context("starting order-intake")
}

/// The port order-intake serves `/ready` on, from its log.
async fn http_port(log: &Path, child: &mut Child) -> anyhow::Result<u16> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .filter(|line| line.contains("health and metrics served"))
            .filter_map(|line| line.split("127.0.0.1:").nth(1))
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .next_back();
        if let Some(port) = port {
            return Ok(port);
        }
        if let Some(status) = child.try_wait()? {
            bail!("order-intake exited with {status}:\n{text}");
        }
        if tokio::time::Instant::now() > deadline {
            bail!("order-intake never said where it serves:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What order-intake printed before it stopped; fails if it keeps running.
async fn exits_saying(mut child: Child, log: &Path) -> anyhow::Result<String> {
    let status = match tokio::time::timeout(FAILS_WITHIN, child.wait()).await {
        Ok(status) => status?,
        Err(_) => bail!(
            "order-intake still runs after {FAILS_WITHIN:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    };
    let text = std::fs::read_to_string(log)?;
    assert!(!status.success(), "order-intake ended well:\n{text}");
    Ok(text)
}

#[tokio::test]
async fn order_intake_over_tls_becomes_ready_and_accepts_an_order() -> anyhow::Result<()> {
    let server = TlsNats::start("nats-tls-service", Tls::On).await?;
    // The admin makes the streams and consumers the role may only use.
    let admin = Bus::connect(
        &server.options("admin"),
        server.subjects.clone(),
        "tls-test",
    )
    .await?;
    admin.ensure_consumers().await?;
    let logs = server.scratch.dir.clone();

    let log = logs.join("order-intake.log");
    let mut service = order_intake(&server, &log, &[("NATS_TLS_CA", &server.pki.ca)])?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http_port(&log, &mut service).await?));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = http_get(addr, "/ready").await?;
        if status == 200 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("order-intake over TLS is not ready: {status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin
        .publish(
            server.subjects.order_placed(),
            "SO-TLS-3",
            &order("SO-TLS-3"),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let accepted: Vec<OrderAccepted> = stream::stored(
            &admin,
            StreamKind::Internal,
            &server.subjects.order_accepted(),
        )
        .await?
        .iter()
        .map(|m| OrderAccepted::decode(m.payload.clone()))
        .collect::<Result<_, _>>()?;
        if accepted
            .iter()
            .any(|a| a.order.as_ref().is_some_and(|o| o.order_id == "SO-TLS-3"))
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "order-intake over TLS did not accept the order:\n{}",
                std::fs::read_to_string(&log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    service.kill().await?;

    // Given a CA that did not sign the server's certificate, it stops and says so, rather than waiting.
    let log = logs.join("order-intake-other-ca.log");
    let service = order_intake(&server, &log, &[("NATS_TLS_CA", &server.pki.other_ca)])?;
    let said = exits_saying(service, &log).await?;
    assert!(
        said.contains("NATS_TLS_CA=") && said.contains("invalid peer certificate"),
        "{said}"
    );

    // A CA file that is not there is named with its variable.
    let missing = logs.join("no-such-ca.pem");
    let log = logs.join("order-intake-missing-ca.log");
    let service = order_intake(&server, &log, &[("NATS_TLS_CA", &missing)])?;
    let said = exits_saying(service, &log).await?;
    assert!(
        said.contains(&format!("NATS_TLS_CA={}", missing.display()))
            && said.contains("cannot read"),
        "{said}"
    );
    server.passed();
    Ok(())
}
