//! The console's configuration, read through a [`Source`] like every service's.

use std::net::SocketAddr;
use std::time::Duration;

use backorder_runtime::config::{ConfigError, Source, parse_or};
use backorder_runtime::{CommonConfig, Subjects};

/// Where the console listens when `BO_CONSOLE_ADDR` is unset: loopback only, so the pages (which need no token
/// to read) are not on the network unless an operator says so.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8090";

/// A token shorter than this is refused: it guards every action that changes state.
pub const MIN_TOKEN_LEN: usize = 12;

#[derive(Clone)]
pub struct Config {
    /// `NATS_URL`
    pub nats_url: String,
    /// `BO_PREFIX`: the query API answers on `<p>.api.*`.
    pub subjects: Subjects,
    /// `BO_CONSOLE_ADDR`, default [`DEFAULT_ADDR`]; port 0 picks a free one (the log line says which).
    pub addr: SocketAddr,
    /// `BO_CONSOLE_TOKEN`: required by every form that changes state; unset, those actions are refused.
    pub token: Option<String>,
    /// `BO_CONSOLE_TIMEOUT_MS`: how long a page waits for the query API, default 5000.
    pub timeout: Duration,
}

impl std::fmt::Debug for Config {
    // The token and the URL's credentials stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "nats_url",
                &backorder_runtime::secret::mask_url(&self.nats_url),
            )
            .field("prefix", &self.subjects.prefix())
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_source(source)?;
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        let addr_text = source
            .get("BO_CONSOLE_ADDR")
            .unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr = addr_text.parse().map_err(|_| {
            invalid(
                "BO_CONSOLE_ADDR",
                addr_text.clone(),
                "not a socket address like 127.0.0.1:8090",
            )
        })?;
        let token = source.get("BO_CONSOLE_TOKEN");
        if let Some(token) = &token
            && (token.chars().count() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace))
        {
            // The value itself is not repeated: it is a secret, even a bad one.
            return Err(invalid(
                "BO_CONSOLE_TOKEN",
                "<hidden>".into(),
                &format!("must be at least {MIN_TOKEN_LEN} characters without spaces"),
            ));
        }
        let timeout = parse_or(source, "BO_CONSOLE_TIMEOUT_MS", 5000u64)?;
        if timeout == 0 {
            return Err(invalid(
                "BO_CONSOLE_TIMEOUT_MS",
                "0".into(),
                "must be at least 1",
            ));
        }
        Ok(Self {
            nats_url: common.nats_url,
            subjects: common.subjects,
            addr,
            token,
            timeout: Duration::from_millis(timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_bind_to_loopback_without_a_token() {
        let config = Config::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(config.addr, "127.0.0.1:8090".parse().unwrap());
        assert!(config.addr.ip().is_loopback());
        assert_eq!(config.token, None);
        assert_eq!(config.subjects.api("order.get"), "bo.api.order.get");
        assert_eq!(config.timeout, Duration::from_secs(5));
    }

    #[test]
    fn values_are_read_and_bad_ones_named_without_the_secret() {
        let config = Config::from_source(&HashMap::from([
            ("BO_CONSOLE_ADDR", "127.0.0.1:0"),
            ("BO_CONSOLE_TOKEN", "a-long-enough-token"),
            ("BO_PREFIX", "shop1"),
            ("NATS_URL", "nats://desk:hunter2@broker:4222"),
        ]))
        .unwrap();
        assert_eq!(config.addr.port(), 0);
        assert_eq!(config.token.as_deref(), Some("a-long-enough-token"));
        assert!(!format!("{config:?}").contains("a-long-enough-token"));
        assert!(!format!("{config:?}").contains("hunter2"));

        let error = Config::from_source(&HashMap::from([("BO_CONSOLE_ADDR", "localhost")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("BO_CONSOLE_ADDR"), "{error}");
        let error = Config::from_source(&HashMap::from([("BO_CONSOLE_TOKEN", "short1")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("BO_CONSOLE_TOKEN") && !error.contains("short1"),
            "{error}"
        );
    }
}
