//! The notifier's configuration, read through a [`Source`] like every service's (a map in tests).

use std::path::PathBuf;
use std::time::Duration;

use backorder_runtime::CommonConfig;
use backorder_runtime::config::{ConfigError, Source, parse_or};
use chrono_tz::Tz;

use crate::quiet::QuietHours;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `BO_NOTIFY_COALESCE_SECS`, default 60: how long the first event of an order waits for more of the same
    /// order before one message tells them all. 0 sends at once.
    pub coalesce: Duration,
    /// `BO_SMS_QUIET_HOURS`, default `21:00-08:00` in the customer's time zone; `off` sends at any hour.
    pub quiet_hours: Option<QuietHours>,
    /// `BO_DEFAULT_TIME_ZONE`, default `UTC`: for customers without a (valid) `time_zone`.
    pub default_time_zone: Tz,
    /// `BO_TEMPLATES_DIR`: templates that override the shipped ones, file by file.
    pub templates_dir: Option<PathBuf>,
    /// `BO_SMTP_URL` and friends; unset, no email is delivered over SMTP.
    pub smtp: Option<SmtpConfig>,
}

#[derive(Clone)]
pub struct SmtpConfig {
    /// `BO_SMTP_URL`, e.g. `smtp://127.0.0.1:25`, `smtps://user:password@mail.example.com`, or
    /// `smtp://mail.example.com:587?tls=required`.
    pub url: String,
    /// `BO_SMTP_FROM`, default `backorder@localhost`.
    pub from: String,
    /// `BO_SMTP_TIMEOUT_SECS`, default 30.
    pub timeout: Duration,
    /// `BO_SMTP_REPLAY_FROM`: where the `notifier-smtp` consumer starts when it is first created.
    pub replay_from: Replay,
}

impl std::fmt::Debug for SmtpConfig {
    // The URL's password stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &backorder_runtime::secret::mask_url(&self.url))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("replay_from", &self.replay_from)
            .finish()
    }
}

/// Where the SMTP consumer starts when it does not exist yet (an existing one keeps its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Unset: only emails published from now on, so turning SMTP on does not re-send the stream's past.
    New,
    /// `all`: every email the stream still holds (up to 30 days).
    All,
    /// An RFC 3339 time: the emails the stream stored from then on.
    From(chrono::DateTime<chrono::Utc>),
}

impl Replay {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(Replay::All);
        }
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Replay::From(t.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("expected all or an RFC 3339 time like 2026-01-10T00:00:00Z: {e}"))
    }
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let invalid = |key: &str, value: String, reason: String| ConfigError::Invalid {
            key: key.into(),
            value,
            reason,
        };
        let quiet = source
            .get("BO_SMS_QUIET_HOURS")
            .unwrap_or_else(|| "21:00-08:00".into());
        let quiet_hours =
            crate::quiet::parse(&quiet).map_err(|r| invalid("BO_SMS_QUIET_HOURS", quiet, r))?;
        let zone = source
            .get("BO_DEFAULT_TIME_ZONE")
            .unwrap_or_else(|| "UTC".into());
        let default_time_zone: Tz = zone.parse().map_err(|e| {
            invalid(
                "BO_DEFAULT_TIME_ZONE",
                zone.clone(),
                format!("not an IANA time zone like Europe/Berlin: {e}"),
            )
        })?;
        let smtp = match source.get("BO_SMTP_URL") {
            None => None,
            Some(url) => Some(SmtpConfig {
                replay_from: match source.get("BO_SMTP_REPLAY_FROM") {
                    None => Replay::New,
                    Some(text) => {
                        Replay::parse(&text).map_err(|r| invalid("BO_SMTP_REPLAY_FROM", text, r))?
                    }
                },
                url,
                from: source
                    .get("BO_SMTP_FROM")
                    .unwrap_or_else(|| "backorder@localhost".into()),
                timeout: Duration::from_secs(parse_or(source, "BO_SMTP_TIMEOUT_SECS", 30u64)?),
            }),
        };
        Ok(Self {
            common: CommonConfig::from_source(source)?,
            coalesce: Duration::from_secs(parse_or(source, "BO_NOTIFY_COALESCE_SECS", 60u64)?),
            quiet_hours,
            default_time_zone,
            templates_dir: source.get("BO_TEMPLATES_DIR").map(PathBuf::from),
            smtp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_values() {
        let config = Config::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(config.coalesce, Duration::from_secs(60));
        assert!(config.quiet_hours.is_some());
        assert_eq!(config.default_time_zone, Tz::UTC);
        assert!(config.smtp.is_none() && config.templates_dir.is_none());

        let config = Config::from_source(&HashMap::from([
            ("BO_NOTIFY_COALESCE_SECS", "0"),
            ("BO_SMS_QUIET_HOURS", "off"),
            ("BO_DEFAULT_TIME_ZONE", "Europe/Berlin"),
            ("BO_SMTP_URL", "smtp://127.0.0.1:2525"),
        ]))
        .unwrap();
        assert_eq!(config.coalesce, Duration::ZERO);
        assert_eq!(config.quiet_hours, None);
        assert_eq!(config.default_time_zone, chrono_tz::Europe::Berlin);
        let smtp = config.smtp.unwrap();
        assert_eq!(
            (smtp.from.as_str(), smtp.timeout),
            ("backorder@localhost", Duration::from_secs(30))
        );

        assert_eq!(smtp.replay_from, Replay::New);
        let with_password = Config::from_source(&HashMap::from([(
            "BO_SMTP_URL",
            "smtps://shop:hunter2@mail.example.com",
        )]))
        .unwrap();
        let shown = format!("{with_password:?}");
        assert!(
            shown.contains("smtps://shop:***@mail.example.com"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        for (text, replay) in [
            ("all", Replay::All),
            (
                "2026-01-10T01:00:00+01:00",
                Replay::From(chrono::DateTime::from_timestamp(1_768_003_200, 0).unwrap()),
            ),
        ] {
            let config = Config::from_source(&HashMap::from([
                ("BO_SMTP_URL", "smtp://127.0.0.1:2525"),
                ("BO_SMTP_REPLAY_FROM", text),
            ]))
            .unwrap();
            assert_eq!(config.smtp.unwrap().replay_from, replay, "{text}");
        }
        let error = Config::from_source(&HashMap::from([
            ("BO_SMTP_URL", "smtp://127.0.0.1:2525"),
            ("BO_SMTP_REPLAY_FROM", "yesterday"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("BO_SMTP_REPLAY_FROM"), "{error}");

        for (key, bad) in [
            ("BO_SMS_QUIET_HOURS", "late"),
            ("BO_DEFAULT_TIME_ZONE", "Mars/Base"),
            ("BO_NOTIFY_COALESCE_SECS", "-1"),
        ] {
            let error = Config::from_source(&HashMap::from([(key, bad)])).unwrap_err();
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
