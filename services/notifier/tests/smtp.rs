//! The SMTP adapter against a real SMTP server running locally (Python's aiosmtpd, installed by
//! `scripts/ensure-smtp-test.sh`, which `make test` runs): delivery, retry after a temporary failure, and a
//! dead letter for a permanent one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{DeadLetter, EmailMessage};
use backorder_runtime::subjects::StreamKind;
use common::*;
use tokio::process::{Child, Command};

/// A Python that has aiosmtpd: `BO_SMTP_TEST_PYTHON`, else `python3`, else Debian's.
fn python() -> String {
    let candidates = std::env::var("BO_SMTP_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python;
        }
    }
    panic!("no Python with aiosmtpd found: run scripts/ensure-smtp-test.sh (make test does)");
}

struct Server {
    port: u16,
    dir: PathBuf,
    _child: Child,
}

impl Server {
    async fn start(mode: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("bo-smtp-{}", uuid::Uuid::new_v4().simple()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(&dir)
            .arg(mode)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the SMTP test server did not start on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            port,
            dir,
            _child: child,
        })
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages the server accepted, oldest first.
    fn received(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    async fn wait_received(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn emails_are_delivered_to_a_real_smtp_server_once() -> anyhow::Result<()> {
    let server = Server::start("accept").await?;
    let url = server.url();
    let env = [
        ("BO_SMTP_URL", url.as_str()),
        ("BO_SMTP_FROM", "Shop <shop@example.com>"),
    ];
    with_notifier(&env, |world| async move {
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Backordered,
                buyer,
                vec![line(1, 3, 0, 3)],
            ))
            .await?;
        let received = server.wait_received(1).await;
        assert_eq!(received.len(), 1);
        let mail = &received[0];
        assert!(
            mail.contains("Message-ID: <email/ev-1@example.com>"),
            "{mail}"
        );
        assert!(mail.contains("To: buyer@example.com"), "{mail}");
        assert!(mail.contains("From: Shop <shop@example.com>"), "{mail}");
        assert!(mail.contains("multipart/alternative"), "{mail}");
        assert!(mail.contains("SKU-1"), "{mail}");

        // The same email again on the subject (a gateway's replay): not sent a second time.
        let stored: Vec<(String, EmailMessage)> = world.emails().await?;
        world
            .bus
            .publish(world.bus.subjects.notify_email(), "replayed", &stored[0].1)
            .await?;
        settle().await;
        assert_eq!(server.received().len(), 1);
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn a_temporary_failure_is_retried_until_the_server_takes_the_email() -> anyhow::Result<()> {
    let server = Server::start("flaky").await?;
    let url = server.url();
    with_notifier(&[("BO_SMTP_URL", url.as_str())], |world| async move {
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Shipped,
                buyer,
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        let received = server.wait_received(1).await;
        assert_eq!(received.len(), 1, "not delivered after a 451");
        assert!(
            received[0].contains("Message-ID: <email/ev-1@localhost>"),
            "{}",
            received[0]
        );
        let letters = world
            .stored::<DeadLetter>(
                StreamKind::DeadLetter,
                &world.bus.subjects.dead_letter("notifier-smtp"),
            )
            .await?;
        assert!(letters.is_empty());
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn a_permanent_failure_parks_the_email_in_the_dead_letter_stream() -> anyhow::Result<()> {
    let server = Server::start("reject").await?;
    let url = server.url();
    with_notifier(&[("BO_SMTP_URL", url.as_str())], |world| async move {
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Shipped,
                buyer,
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        let letters: Vec<(String, DeadLetter)> = world
            .wait_stored(
                StreamKind::DeadLetter,
                &world.bus.subjects.dead_letter("notifier-smtp"),
                1,
            )
            .await?;
        assert_eq!(letters.len(), 1);
        let letter = &letters[0].1;
        assert_eq!(letter.service, "notifier-smtp");
        assert!(letter.error.contains("550"), "{}", letter.error);
        assert_eq!(letter.deliveries, 1, "a permanent failure is not retried");
        assert_eq!(letter.message_id, "email/ev-1");
        assert!(server.received().is_empty());
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn turning_smtp_on_sends_only_new_emails_unless_a_replay_is_asked() -> anyhow::Result<()> {
    let server = Server::start("accept").await?;
    let url = server.url();
    with_notifier(&[], |mut world| async move {
        let buyer = customer("buyer@example.com", "");
        let email_of = |id: &str| {
            event(
                id,
                &format!("SO-{id}"),
                Kind::Shipped,
                buyer.clone(),
                vec![line(1, 1, 0, 0)],
            )
        };
        // Without SMTP, the gateway's emails pile up in the stream: one long ago, one after `from`.
        world.publish_event(&email_of("ev-old")).await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                1,
            )
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let from = chrono::Utc::now().to_rfc3339();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        world.publish_event(&email_of("ev-recent")).await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                2,
            )
            .await?;
        world.stop().await?;

        // SMTP turned on, replaying from `from`: the recent one, not the old one.
        world.env.insert("BO_SMTP_URL".into(), url.clone());
        world.env.insert("BO_SMTP_REPLAY_FROM".into(), from);
        world.start().await?;
        server.wait_received(1).await;
        settle().await;
        let received = server.received();
        assert_eq!(received.len(), 1, "{received:#?}");
        assert!(
            received[0].contains("Message-ID: <email/ev-recent@localhost>"),
            "{}",
            received[0]
        );

        // A restart asking for everything: the consumer exists and keeps its position, nothing is re-sent.
        world.stop().await?;
        world.env.insert("BO_SMTP_REPLAY_FROM".into(), "all".into());
        world.start().await?;
        world.publish_event(&email_of("ev-new")).await?;
        server.wait_received(2).await;
        settle().await;
        let received = server.received();
        assert_eq!(received.len(), 2, "{received:#?}");
        assert!(
            received[1].contains("Message-ID: <email/ev-new@localhost>"),
            "{}",
            received[1]
        );
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn turning_smtp_on_in_a_running_deployment_does_not_resend_the_past() -> anyhow::Result<()> {
    let server = Server::start("accept").await?;
    let url = server.url();
    with_notifier(&[], |mut world| async move {
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Shipped,
                buyer.clone(),
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        world
            .wait_stored::<EmailMessage>(
                StreamKind::Outbound,
                &world.bus.subjects.notify_email(),
                1,
            )
            .await?;
        world.stop().await?;
        world.env.insert("BO_SMTP_URL".into(), url.clone());
        world.start().await?;
        world
            .publish_event(&event(
                "ev-2",
                "SO-2",
                Kind::Shipped,
                buyer,
                vec![line(1, 1, 0, 0)],
            ))
            .await?;
        server.wait_received(1).await;
        settle().await;
        let received = server.received();
        assert_eq!(
            received.len(),
            1,
            "the stream's past was sent: {received:#?}"
        );
        assert!(
            received[0].contains("Message-ID: <email/ev-2@localhost>"),
            "{}",
            received[0]
        );
        Ok(world)
    })
    .await
}

#[tokio::test]
async fn a_delivery_cut_off_mid_transaction_is_sent_again_with_the_same_message_id()
-> anyhow::Result<()> {
    let server = Server::start("accept").await?;
    let url = server.url();
    let env = [
        ("BO_SMTP_URL", url.as_str()),
        ("BO_SMTP_FROM", "Shop <shop@example.com>"),
    ];
    with_notifier(&env, |world| async move {
        // What a crash during the SMTP transaction leaves: the intent recorded, no acceptance.
        let sent = world
            .bus
            .js
            .get_key_value(world.bus.subjects.notifier_sent_bucket())
            .await?;
        let key = notifier::store::smtp_key("email/ev-1");
        sent.put(
            &key,
            r#"{"state":"sending","at":"2026-01-10T10:00:00Z"}"#.into(),
        )
        .await?;
        let buyer = customer("buyer@example.com", "");
        world
            .publish_event(&event(
                "ev-1",
                "SO-1",
                Kind::Backordered,
                buyer,
                vec![line(1, 3, 0, 3)],
            ))
            .await?;
        let received = server.wait_received(1).await;
        assert_eq!(
            received.len(),
            1,
            "an email cut off mid-transaction was never sent"
        );
        assert!(
            received[0].contains("Message-ID: <email/ev-1@example.com>"),
            "{}",
            received[0]
        );
        let record = sent.get(&key).await?.unwrap_or_default();
        assert!(
            matches!(
                notifier::smtp::Record::read(&record),
                notifier::smtp::Record::Accepted { .. }
            ),
            "{record:?}"
        );
        Ok(world)
    })
    .await
}
