//! How a process reaches NATS: the URL, the credentials of its role (`NATS_CREDS`) and TLS (`NATS_TLS_CA`,
//! `NATS_TLS_CERT`, `NATS_TLS_KEY`). Every binary connects through [`NatsOptions::connect`], so a secured
//! server is reached the same way by all of them.
//!
//! A credentials file is one of:
//! - a NATS creds file (a user JWT and its nkey seed, as `nsc` writes them, for servers in operator mode);
//! - an nkey seed (a line starting `SU`, alone or between `-----BEGIN USER NKEY SEED-----` markers), as
//!   `backorder-provision accounts` writes them, for servers that list their users' public nkeys;
//! - `user` and `password` lines (`user: NAME`, `password: SECRET`) for servers with password users.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use async_nats::rustls;

use crate::config::{ConfigError, Source};

/// `NATS_URL` and what authenticates and encrypts the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// `NATS_URL`, default `nats://127.0.0.1:4222`; several servers comma-separated.
    pub url: String,
    /// `NATS_CREDS`: the role's credentials file.
    pub creds: Option<PathBuf>,
    /// `NATS_TLS_CA`: the CA (PEM) the server's certificate is checked against; setting it requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// `NATS_TLS_CERT` and `NATS_TLS_KEY`: a client certificate and its key (PEM), for servers that verify
    /// clients. Both or neither.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

/// What a credentials file holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A JWT and seed creds file: handed to the client as it is.
    Jwt(String),
    /// An nkey user seed.
    Nkey(String),
    UserPassword {
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Jwt(_) => f.write_str("Credentials::Jwt(***)"),
            Credentials::Nkey(_) => f.write_str("Credentials::Nkey(***)"),
            Credentials::UserPassword { user, .. } => {
                write!(
                    f,
                    "Credentials::UserPassword {{ user: {user:?}, password: *** }}"
                )
            }
        }
    }
}

impl Credentials {
    /// Reads a credentials file's text; the error says what was expected, never what the file holds.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.contains("-----BEGIN NATS USER JWT-----") {
            return Ok(Credentials::Jwt(text.to_string()));
        }
        let lines = || {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
        };
        if let Some(seed) = lines().find(|l| l.starts_with("SU") && !l.contains(' ')) {
            return Ok(Credentials::Nkey(seed.to_string()));
        }
        let field = |name: &str| {
            lines().find_map(|l| {
                let (key, value) = l.split_once([':', '='])?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        match (field("user"), field("password")) {
            (Some(user), Some(password)) if !user.is_empty() => {
                Ok(Credentials::UserPassword { user, password })
            }
            _ => Err(
                "holds neither a NATS user JWT with its seed, an nkey user seed (SU...), nor \
                      'user:' and 'password:' lines"
                    .into(),
            ),
        }
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading NATS credentials {} (NATS_CREDS)", path.display()))?;
        Self::parse(&text).map_err(|why| {
            anyhow::anyhow!("NATS credentials {} (NATS_CREDS) {why}", path.display())
        })
    }

    /// Who the server will know this user as: the public nkey of its seed, or its user name. Its replies come
    /// to `_INBOX.<identity>` ([`crate::permissions::inbox_prefix`]), the only inbox it may read.
    pub fn identity(&self) -> anyhow::Result<String> {
        let seed = match self {
            Credentials::UserPassword { user, .. } => return Ok(user.clone()),
            Credentials::Nkey(seed) => seed.as_str(),
            Credentials::Jwt(text) => text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("SU"))
                .context("the creds file has no user seed")?,
        };
        let pair = nkeys::KeyPair::from_seed(seed)
            .map_err(|e| anyhow::anyhow!("the nkey seed in NATS_CREDS is not valid: {e}"))?;
        Ok(pair.public_key())
    }

    fn apply(
        self,
        options: async_nats::ConnectOptions,
    ) -> anyhow::Result<async_nats::ConnectOptions> {
        let options =
            options.custom_inbox_prefix(crate::permissions::inbox_prefix(&self.identity()?));
        Ok(match self {
            Credentials::Jwt(text) => options
                .credentials(&text)
                .context("NATS credentials (NATS_CREDS) are not a valid creds file")?,
            Credentials::Nkey(seed) => options.nkey(seed),
            Credentials::UserPassword { user, password } => {
                options.user_and_password(user, password)
            }
        })
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            creds: None,
            tls_ca: None,
            tls_client: None,
        }
    }
}

impl NatsOptions {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let path = |key: &str| source.get(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let tls_client = match (path("NATS_TLS_CERT"), path("NATS_TLS_KEY")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (cert, _) => {
                let (set, unset) = if cert.is_some() {
                    ("NATS_TLS_CERT", "NATS_TLS_KEY")
                } else {
                    ("NATS_TLS_KEY", "NATS_TLS_CERT")
                };
                return Err(ConfigError::Invalid {
                    key: set.into(),
                    value: source.get(set).unwrap_or_default(),
                    reason: format!(
                        "a client certificate needs both NATS_TLS_CERT and NATS_TLS_KEY; {unset} is not set"
                    ),
                });
            }
        };
        Ok(Self {
            url: source
                .get("NATS_URL")
                .unwrap_or_else(|| Self::default().url),
            creds: path("NATS_CREDS"),
            tls_ca: path("NATS_TLS_CA"),
            tls_client,
        })
    }

    /// The process environment's credentials and TLS for the server at `url` (tests and tools that are given
    /// a server).
    pub fn env_with_url(url: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_source(&crate::config::ProcessEnv)?.with_url(url))
    }

    /// These options for another server.
    pub fn with_url(mut self, url: &str) -> Self {
        self.url = url.to_string();
        self
    }

    /// The URL as it may be logged: any password in it masked.
    pub fn display_url(&self) -> String {
        crate::secret::mask_url(&self.url)
    }

    /// The client options: name, credentials and TLS. Reads the credentials file now, so a missing or broken
    /// one is reported before any connection is tried.
    pub fn connect_options(&self, name: &str) -> anyhow::Result<async_nats::ConnectOptions> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .event_callback(|event| async move { log_event(event) });
        if let Some(path) = &self.creds {
            options = Credentials::read(path)?.apply(options)?;
        }
        if let Some(ca) = &self.tls_ca {
            check_pem(ca, "NATS_TLS_CA", Pem::Certificate)?;
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls_client {
            check_pem(cert, "NATS_TLS_CERT", Pem::Certificate)?;
            check_pem(key, "NATS_TLS_KEY", Pem::PrivateKey)?;
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        Ok(options)
    }

    /// The servers of `NATS_URL`: several comma-separated (the nodes of a cluster) are handed to the client
    /// as a list, so it connects to any that answers and fails over to the others.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Connects once; an unreachable server, refused credentials or a failed TLS handshake is an error.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        self.connect_options(name)?
            .connect(self.servers())
            .await
            .map_err(|error| self.connect_failed(error))
    }

    /// Connects, waiting for a server that is not up yet (a service started before its broker). What the
    /// server would refuse again (credentials, a certificate either side does not trust, a server without
    /// TLS when TLS is required) is not retried but returned at once, so a service stops and says why
    /// instead of waiting unready forever.
    pub async fn connect_retrying(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let options = self.connect_options(name)?;
        match options.clone().connect(self.url.as_str()).await {
            Ok(client) => return Ok(client),
            Err(error) if is_permanent(&error) => return Err(self.connect_failed(error)),
            Err(error) => tracing::warn!(
                url = %self.display_url(),
                %error,
                "NATS is not reachable yet; retrying"
            ),
        }
        options
            .retry_on_initial_connect()
            .connect(self.servers())
            .await
            .map_err(|error| self.connect_failed(error))
    }

    /// The error of a failed connection: the server's address and, for a TLS failure, which setting to look
    /// at (the TLS library's own words stay beneath).
    fn connect_failed(&self, error: async_nats::ConnectError) -> anyhow::Error {
        let hint = tls_failure(&error).map(|tls| self.tls_hint(tls));
        // Its text already ends with its cause; as a source the cause would be printed twice.
        let error = anyhow::Error::msg(error.to_string());
        let error = match hint {
            Some(hint) => error.context(format!("TLS to NATS failed: {hint}")),
            None => error,
        };
        error.context(format!("connecting to NATS at {}", self.display_url()))
    }

    fn tls_hint(&self, error: &rustls::Error) -> String {
        use rustls::AlertDescription as Alert;
        match error {
            rustls::Error::InvalidCertificate(_) => match &self.tls_ca {
                Some(ca) => format!(
                    "the server's certificate is not one the CA in NATS_TLS_CA={} signed for this host",
                    ca.display()
                ),
                None => "the server's certificate is not signed by a CA this system trusts; set \
                         NATS_TLS_CA to the CA (PEM) that signed it"
                    .into(),
            },
            rustls::Error::AlertReceived(
                Alert::CertificateRequired
                | Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::HandshakeFailure,
            ) => match &self.tls_client {
                None => "the server verifies clients; set NATS_TLS_CERT and NATS_TLS_KEY to a \
                         client certificate its CA signed"
                    .into(),
                Some((cert, _)) => format!(
                    "the server refused the client certificate in NATS_TLS_CERT={}",
                    cert.display()
                ),
            },
            _ => "the TLS handshake failed; does the server at NATS_URL offer TLS (a tls block in \
                  its configuration)?"
                .into(),
        }
    }
}

/// The TLS library's error beneath a failed connection, if the handshake is what failed (the client wraps
/// it in an I/O error).
fn tls_failure(error: &async_nats::ConnectError) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cause = error.source();
    }
    None
}

/// A failure that trying again would only repeat.
fn is_permanent(error: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    matches!(
        error.kind(),
        Kind::Tls | Kind::Authentication | Kind::AuthorizationViolation
    ) || tls_failure(error).is_some()
}

/// What the connection reports, in the log: a refusal by the server (a permission the user lacks) is an
/// error an operator must see, the rest is the connection coming and going.
fn log_event(event: async_nats::Event) {
    match event {
        async_nats::Event::ServerError(error) => {
            tracing::error!(%error, "{REFUSED}");
        }
        async_nats::Event::ClientError(error) => tracing::warn!(%error, "NATS client error"),
        async_nats::Event::Connected => tracing::info!("NATS connected"),
        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
        other => tracing::debug!(event = %other, "NATS connection"),
    }
}

/// The log message of a request the server refused, e.g. `Permissions Violation for Publish to "..."`.
pub const REFUSED: &str = "the NATS server refused a request of this client";

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Reads the PEM file `key` names now: a wrong path or a file of something else is reported naming the
/// variable, before any connection (the client would find no certificate in it and fail the handshake with
/// an unknown issuer, saying nothing of the file).
fn check_pem(path: &Path, key: &str, kind: Pem) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let text =
        std::fs::read(path).with_context(|| format!("{key}={}: cannot read it", path.display()))?;
    let (found, what) = match kind {
        Pem::Certificate => (
            CertificateDer::pem_slice_iter(&text).any(|cert| cert.is_ok()),
            "PEM certificate (-----BEGIN CERTIFICATE-----)",
        ),
        Pem::PrivateKey => (
            PrivateKeyDer::from_pem_slice(&text).is_ok(),
            "PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC one)",
        ),
    };
    if !found {
        anyhow::bail!("{key}={} holds no {what}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_url_list_is_every_server_of_it() {
        let one = NatsOptions::default().with_url("nats://127.0.0.1:4222");
        assert_eq!(one.servers(), ["nats://127.0.0.1:4222"]);
        let cluster = NatsOptions::default()
            .with_url("nats://127.0.0.1:4350, nats://127.0.0.1:4351,nats://127.0.0.1:4352,");
        assert_eq!(
            cluster.servers(),
            [
                "nats://127.0.0.1:4350",
                "nats://127.0.0.1:4351",
                "nats://127.0.0.1:4352"
            ]
        );
    }

    #[test]
    fn each_kind_of_credentials_file_is_read() {
        let jwt = "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n\
                   -----BEGIN USER NKEY SEED-----\nSUAB\n------END USER NKEY SEED------\n";
        assert!(matches!(Credentials::parse(jwt), Ok(Credentials::Jwt(_))));
        let seed = "# role allocation\n-----BEGIN USER NKEY SEED-----\nSUAIBDPBAUTW\n------END USER NKEY SEED------\n";
        assert_eq!(
            Credentials::parse(seed),
            Ok(Credentials::Nkey("SUAIBDPBAUTW".into()))
        );
        let pair = nkeys::KeyPair::new_user();
        let creds = Credentials::parse(&pair.seed().unwrap()).unwrap();
        assert_eq!(creds.identity().unwrap(), pair.public_key());
        assert_eq!(
            Credentials::parse("SUAXYZ\n"),
            Ok(Credentials::Nkey("SUAXYZ".into()))
        );
        assert_eq!(
            Credentials::parse("user: oms\npassword = s3cr:et\n"),
            Ok(Credentials::UserPassword {
                user: "oms".into(),
                password: "s3cr:et".into()
            })
        );
    }

    #[test]
    fn a_file_of_something_else_is_refused_without_echoing_it() {
        let error = Credentials::parse("hunter2 is my password").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("nkey"), "{error}");
        let debug = format!(
            "{:?}",
            Credentials::UserPassword {
                user: "u".into(),
                password: "hunter2".into()
            }
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn options_come_from_the_environment_and_a_half_client_certificate_is_refused() {
        let none = NatsOptions::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(none, NatsOptions::default());
        let all = NatsOptions::from_source(&HashMap::from([
            ("NATS_URL", "tls://n:4222"),
            ("NATS_CREDS", "/run/creds/allocation.creds"),
            ("NATS_TLS_CA", "/run/ca.pem"),
            ("NATS_TLS_CERT", "/run/c.pem"),
            ("NATS_TLS_KEY", "/run/k.pem"),
        ]))
        .unwrap();
        assert_eq!(
            all.creds.as_deref(),
            Some(Path::new("/run/creds/allocation.creds"))
        );
        assert_eq!(
            all.tls_client,
            Some(("/run/c.pem".into(), "/run/k.pem".into()))
        );
        let error = NatsOptions::from_source(&HashMap::from([("NATS_TLS_CERT", "/c.pem")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("NATS_TLS_KEY"), "{error}");
    }

    #[test]
    fn a_missing_credentials_file_is_named() {
        let options = NatsOptions {
            creds: Some("/nonexistent/oms.creds".into()),
            ..NatsOptions::default()
        };
        let error = format!("{:#}", options.connect_options("t").unwrap_err());
        assert!(
            error.contains("/nonexistent/oms.creds") && error.contains("NATS_CREDS"),
            "{error}"
        );
    }

    /// A file of this test's own in the temporary folder, holding `text`.
    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("bo-nats-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    // PEM framing only: the files are checked for what kind of thing they hold, the TLS library reads the
    // certificates themselves when it connects.
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

    #[test]
    fn tls_files_that_are_missing_or_hold_something_else_are_named() {
        let cert = temp_file("cert.pem", CERT_PEM);
        let key = temp_file("key.pem", KEY_PEM);
        let text = temp_file("notes.txt", "not a certificate\n");
        let error =
            |options: NatsOptions| format!("{:#}", options.connect_options("t").unwrap_err());
        let with_ca = |ca: &Path| NatsOptions {
            tls_ca: Some(ca.into()),
            ..NatsOptions::default()
        };
        let with_client = |cert: &Path, key: &Path| NatsOptions {
            tls_client: Some((cert.into(), key.into())),
            ..NatsOptions::default()
        };

        let missing = error(with_ca(Path::new("/nonexistent/ca.pem")));
        assert!(
            missing.contains("NATS_TLS_CA=/nonexistent/ca.pem") && missing.contains("cannot read"),
            "{missing}"
        );
        let not_pem = error(with_ca(&text));
        assert!(
            not_pem.contains("NATS_TLS_CA=") && not_pem.contains("holds no PEM certificate"),
            "{not_pem}"
        );
        let swapped = error(with_client(&key, &cert));
        assert!(
            swapped.contains("NATS_TLS_CERT=") && swapped.contains("holds no PEM certificate"),
            "{swapped}"
        );
        let no_key = error(with_client(&cert, &cert));
        assert!(
            no_key.contains("NATS_TLS_KEY=") && no_key.contains("holds no PEM private key"),
            "{no_key}"
        );

        assert!(with_ca(&cert).connect_options("t").is_ok());
        assert!(with_client(&cert, &key).connect_options("t").is_ok());
        for path in [cert, key, text] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// A connection error as the client reports a failed handshake: the TLS error inside an I/O error.
    fn handshake_error(tls: rustls::Error) -> async_nats::ConnectError {
        async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::Io,
            std::io::Error::new(std::io::ErrorKind::InvalidData, tls),
        )
    }

    #[test]
    fn a_failed_tls_handshake_is_final_and_says_which_setting_to_check() {
        let untrusted = handshake_error(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(is_permanent(&untrusted));
        let plain = NatsOptions::default().with_url("nats://n:4222");
        let error = format!("{:#}", plain.connect_failed(untrusted));
        assert!(
            error.starts_with("connecting to NATS at nats://n:4222: TLS to NATS failed")
                && error.contains("set NATS_TLS_CA")
                && error.contains("UnknownIssuer"),
            "{error}"
        );

        let other_ca = NatsOptions {
            tls_ca: Some("/run/ca.pem".into()),
            ..NatsOptions::default()
        };
        let error = format!(
            "{:#}",
            other_ca.connect_failed(handshake_error(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
            )))
        );
        assert!(error.contains("NATS_TLS_CA=/run/ca.pem"), "{error}");

        let refused = handshake_error(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        assert!(is_permanent(&refused));
        let error = format!("{:#}", other_ca.connect_failed(refused));
        assert!(
            error.contains("set NATS_TLS_CERT and NATS_TLS_KEY"),
            "{error}"
        );
    }

    #[test]
    fn a_server_that_is_not_up_yet_is_retried_and_refused_credentials_are_not() {
        let down = async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::Io,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert!(!is_permanent(&down));
        let error = format!("{:#}", NatsOptions::default().connect_failed(down));
        assert!(!error.contains("TLS"), "{error}");
        assert!(is_permanent(&async_nats::ConnectError::new(
            async_nats::ConnectErrorKind::AuthorizationViolation
        )));
    }

    #[test]
    fn the_url_is_shown_without_its_password() {
        let options = NatsOptions::default().with_url("nats://oms:hunter2@n:4222");
        assert!(
            !options.display_url().contains("hunter2"),
            "{}",
            options.display_url()
        );
    }
}
