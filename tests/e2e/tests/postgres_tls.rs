//! TLS to PostgreSQL, against a server of the test's own ([`backorder_test_support::infra::Postgres`]) that accepts
//! TCP connections only over TLS and with a password (`hostssl ... scram-sha-256`, `hostnossl ... reject`),
//! with a certificate for `localhost` that a CA the test makes ([`backorder_test_support::pki`]) signed.
//!
//! The `sslmode` of `DATABASE_URL` is honoured: `verify-full` with the CA connects over TLS and applies
//! the migrations; the default (`prefer`) takes TLS when the server offers it; `verify-full` against a CA
//! the server's certificate does not come from fails at once and says it is the certificate; `disable` is
//! refused by such a server. Neither those errors nor the log of the `allocation` binary ever shows the
//! password.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use backorder_test_support::binaries_dir;
use backorder_test_support::infra::{Postgres, Scratch};
use backorder_test_support::pki::Pki;
use sqlx::PgPool;

/// The role the service logs in as. Its password must never show in an error or a log.
const USER: &str = "shop_app";
const PASSWORD: &str = "Pw-d0nt-l0g-me-7c1e";

/// How long a failure may take to be reported: a retried one never would be.
const FAILS_WITHIN: Duration = Duration::from_secs(20);

/// A PostgreSQL server that takes TCP clients only over TLS, and the certificates it was given.
struct TlsPostgres {
    pg: Postgres,
    pki: Pki,
    scratch: Scratch,
}

impl TlsPostgres {
    async fn start(name: &str) -> anyhow::Result<Self> {
        let scratch = Scratch::new(name)?;
        let pki = Pki::make(&scratch.dir.join("certs"))?;
        let pg = Postgres::init(&scratch).await?;
        pg.configure(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\npassword_encryption = scram-sha-256",
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n",
            &[("server.crt", &pki.server_cert), ("server.key", &pki.server_key)],
        )?;
        pg.resume().await?;
        let mut admin = pg.superuser().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "create role {USER} login createdb password '{PASSWORD}'"
        )))
        .execute(&mut admin)
        .await?;
        Ok(Self { pg, pki, scratch })
    }

    /// `DATABASE_URL` for the database `shop` as [`USER`], with `query` (sslmode and friends) appended.
    fn url(&self, password: &str, query: &str) -> String {
        format!(
            "postgres://{USER}:{password}@localhost:{}/shop{query}",
            self.pg.port
        )
    }

    fn verify_full(&self, ca: &Path) -> String {
        self.url(
            PASSWORD,
            &format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
        )
    }
}

/// Whether the pool's own connection is encrypted, as the server sees it.
async fn over_tls(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(pool)
            .await?,
    )
}

/// The error of a connection that must fail, in full (every cause), within [`FAILS_WITHIN`].
async fn connect_error(url: &str) -> anyhow::Result<String> {
    let attempt = tokio::time::timeout(FAILS_WITHIN, allocation::connect_database(url, 1))
        .await
        .context("a failing connection should fail at once, not be retried")?;
    match attempt {
        Ok(_) => anyhow::bail!("connecting with {url} should have failed"),
        Err(error) => Ok(format!("{error:#}")),
    }
}

#[tokio::test]
async fn verify_full_with_the_ca_connects_over_tls_and_applies_the_migrations() -> anyhow::Result<()>
{
    let mut server = TlsPostgres::start("pg-tls-verify-full").await?;
    let pool = allocation::connect_database(&server.verify_full(&server.pki.ca), 2).await?;
    assert!(over_tls(&pool).await?, "the connection is not encrypted");
    let migrated: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(&pool)
        .await?;
    assert!(migrated > 0, "no migration was applied");
    // The books of a new database are empty and hold.
    assert_eq!(
        allocation::invariants::violations(&pool).await?,
        Vec::<String>::new()
    );
    server.scratch.passed();
    Ok(())
}

#[tokio::test]
async fn without_sslmode_tls_is_taken_when_the_server_offers_it() -> anyhow::Result<()> {
    let mut server = TlsPostgres::start("pg-tls-prefer").await?;
    // sqlx's default is `prefer`: TLS without verifying the certificate, as libpq does.
    let pool = allocation::connect_database(&server.url(PASSWORD, ""), 1).await?;
    assert!(over_tls(&pool).await?, "the connection is not encrypted");
    server.scratch.passed();
    Ok(())
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_fails_at_once_naming_the_certificate()
-> anyhow::Result<()> {
    let mut server = TlsPostgres::start("pg-tls-untrusted").await?;
    let error = connect_error(&server.verify_full(&server.pki.other_ca)).await?;
    assert!(
        error.to_lowercase().contains("certificate"),
        "the error does not say it is the certificate: {error}"
    );
    assert!(
        !error.contains(PASSWORD),
        "the password is in the error: {error}"
    );
    server.scratch.passed();
    Ok(())
}

#[tokio::test]
async fn a_server_that_requires_tls_refuses_sslmode_disable_and_a_wrong_password_without_showing_it()
-> anyhow::Result<()> {
    let mut server = TlsPostgres::start("pg-tls-refused").await?;
    let error = connect_error(&server.url(PASSWORD, "?sslmode=disable")).await?;
    assert!(
        error.contains("pg_hba.conf") && error.contains("no encryption"),
        "the server should refuse a connection without TLS: {error}"
    );
    assert!(
        !error.contains(PASSWORD),
        "the password is in the error: {error}"
    );

    let wrong = "Wr0ng-but-secret-too";
    let error = connect_error(&server.url(wrong, "?sslmode=require")).await?;
    assert!(
        error.contains("password authentication failed"),
        "unexpected error: {error}"
    );
    assert!(
        !error.contains(wrong),
        "the password is in the error: {error}"
    );
    server.scratch.passed();
    Ok(())
}

/// The binary, not only the library: `allocation check` connects with `DATABASE_URL` as the service does.
#[tokio::test]
async fn the_allocation_binary_honours_sslmode_and_keeps_the_password_out_of_its_output()
-> anyhow::Result<()> {
    let mut server = TlsPostgres::start("pg-tls-binary").await?;
    let check = |url: String| {
        let bin = binaries_dir().map(|dir| dir.join("allocation"));
        async move {
            let out = tokio::process::Command::new(bin?)
                .arg("check")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("DATABASE_URL", &url)
                .env("RUST_LOG", "debug")
                .stdin(Stdio::null())
                .output();
            let out = tokio::time::timeout(FAILS_WITHIN, out)
                .await
                .context("allocation check did not finish")??;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok((out.status.success(), text))
        }
    };

    let (fine, text) = check(server.verify_full(&server.pki.ca)).await?;
    assert!(fine, "allocation check over TLS failed:\n{text}");
    assert!(
        !text.contains(PASSWORD),
        "the password is in the output:\n{text}"
    );

    let (fine, text) = check(server.verify_full(&server.pki.other_ca)).await?;
    assert!(
        !fine,
        "allocation check trusted a certificate it should not:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("certificate"),
        "the output does not say it is the certificate:\n{text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "the password is in the output:\n{text}"
    );
    server.scratch.passed();
    Ok(())
}
