//! Configuration read through a [`Source`], so tests hand in a map and never touch the process environment.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// Where configuration values come from: the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).map(|v| v.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}={value:?} is not valid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// Reads `key` and parses it, or gives `default` when it is unset.
pub fn parse_or<T: FromStr>(source: &impl Source, key: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match source.get(key) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|e: T::Err| ConfigError::Invalid {
            key: key.to_string(),
            reason: e.to_string(),
            value,
        }),
    }
}

/// Reads a duration given in milliseconds.
pub fn millis_or(
    source: &impl Source,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    parse_or(source, key, default.as_millis() as u64).map(Duration::from_millis)
}

/// What every service reads: where NATS is and which subject prefix it lives under.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `NATS_URL`, `NATS_CREDS`, `NATS_TLS_CA`, `NATS_TLS_CERT`, `NATS_TLS_KEY`.
    pub nats: crate::nats::NatsOptions,
    /// `BO_PROVISION` (default `true`): create the prefix's missing streams and buckets at start. With `false`
    /// they must exist (`backorder-provision streams`), and the service's NATS user needs no right to create
    /// them.
    pub provision: bool,
    /// `BO_STREAM_REPLICAS` (default 1, at most 5): the replicas of every stream and bucket this service
    /// provisions; 3 on a three-node cluster.
    pub stream_replicas: usize,
    /// `BO_PREFIX`, default `bo`.
    pub subjects: crate::Subjects,
    /// `BO_BATCH_SIZE`: the most messages a consumer takes in one go, default 256.
    pub batch_size: usize,
    /// `BO_MAX_DELIVER`: deliveries of a failing message before it is parked in the dead-letter stream,
    /// default 5.
    pub max_deliver: i64,
    /// `BO_MAX_WAIT_SECS`: how long a message that depends on another one not yet handled (a cancellation
    /// that overtook its order) is delivered again before it is parked, default 600.
    pub max_wait: std::time::Duration,
    /// `BO_ACK_WAIT_SECS`: how long a delivery may stay unsettled (a crashed or hung handler) before it is
    /// delivered again, default 30. A handler that is still working keeps its batch by in-progress acks.
    pub ack_wait: std::time::Duration,
    /// `BO_CLOCK`, `BO_CLOCK_START`: the wall clock, or a simulated one moved by `<p>.ctl.clock`.
    pub clock: crate::Clock,
    /// `BO_HTTP_ADDR`: where health and metrics are served; unset, each service has a port of its own
    /// ([`http_addr`](Self::http_addr)).
    pub http_addr: Option<std::net::SocketAddr>,
}

impl CommonConfig {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let prefix = source.get("BO_PREFIX").unwrap_or_else(|| "bo".to_string());
        let subjects = crate::Subjects::new(&prefix).map_err(|reason| ConfigError::Invalid {
            key: "BO_PREFIX".into(),
            value: prefix.clone(),
            reason,
        })?;
        let batch_size = parse_or(source, "BO_BATCH_SIZE", 256usize)?;
        if batch_size == 0 {
            return Err(ConfigError::Invalid {
                key: "BO_BATCH_SIZE".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let ack_wait = parse_or(source, "BO_ACK_WAIT_SECS", 30u64)?;
        if ack_wait == 0 {
            return Err(ConfigError::Invalid {
                key: "BO_ACK_WAIT_SECS".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let stream_replicas = parse_or(source, "BO_STREAM_REPLICAS", 1usize)?;
        if !(1..=5).contains(&stream_replicas) {
            return Err(ConfigError::Invalid {
                key: "BO_STREAM_REPLICAS".into(),
                value: stream_replicas.to_string(),
                reason: "must be 1 to 5 (JetStream keeps at most 5 replicas)".into(),
            });
        }
        Ok(Self {
            nats: crate::nats::NatsOptions::from_source(source)?,
            provision: parse_or(source, "BO_PROVISION", true)?,
            stream_replicas,
            subjects,
            batch_size,
            max_deliver: parse_or(source, "BO_MAX_DELIVER", 5i64)?.max(1),
            max_wait: std::time::Duration::from_secs(parse_or(source, "BO_MAX_WAIT_SECS", 600u64)?),
            ack_wait: std::time::Duration::from_secs(ack_wait),
            clock: crate::Clock::from_source(source)?,
            http_addr: match source.get("BO_HTTP_ADDR") {
                None => None,
                Some(text) => Some(text.parse().map_err(|e| ConfigError::Invalid {
                    key: "BO_HTTP_ADDR".into(),
                    value: text.clone(),
                    reason: format!("not a socket address like 127.0.0.1:9182: {e}"),
                })?),
            },
        })
    }

    /// `BO_HTTP_ADDR`, or `127.0.0.1` on the service's own port: order-intake 9181, allocation 9182,
    /// replenishment-trigger 9183, notifier 9184 (anything else 9180).
    pub fn http_addr(&self, service: &str) -> std::net::SocketAddr {
        let port = match service {
            "order-intake" => 9181,
            "allocation" => 9182,
            "replenishment-trigger" => 9183,
            "notifier" => 9184,
            _ => 9180,
        };
        self.http_addr
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = CommonConfig::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert!(config.provision);
        assert_eq!(config.stream_replicas, 1);
        assert_eq!(config.subjects.prefix(), "bo");
        assert_eq!(config.batch_size, 256);
        assert_eq!(config.max_deliver, 5);
        assert_eq!(config.max_wait, std::time::Duration::from_secs(600));
        assert_eq!(config.ack_wait, std::time::Duration::from_secs(30));
    }

    #[test]
    fn an_ack_wait_of_zero_is_refused_and_others_read() {
        let error = CommonConfig::from_source(&HashMap::from([("BO_ACK_WAIT_SECS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("BO_ACK_WAIT_SECS") && error.contains("at least 1"),
            "{error}"
        );
        let config =
            CommonConfig::from_source(&HashMap::from([("BO_ACK_WAIT_SECS", "3")])).unwrap();
        assert_eq!(config.ack_wait, std::time::Duration::from_secs(3));
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let source = HashMap::from([("BO_PREFIX", "shop1"), ("BO_BATCH_SIZE", "lots")]);
        let error = CommonConfig::from_source(&source).unwrap_err().to_string();
        assert!(error.contains("BO_BATCH_SIZE"), "{error}");

        let source = HashMap::from([("BO_PREFIX", "shop1"), ("NATS_URL", "nats://n:1")]);
        let config = CommonConfig::from_source(&source).unwrap();
        assert_eq!(config.subjects.order_placed(), "shop1.in.order.placed");
        assert_eq!(config.nats.url, "nats://n:1");
    }

    #[test]
    fn provisioning_and_replicas_are_read_and_checked() {
        let source = HashMap::from([("BO_PROVISION", "false"), ("BO_STREAM_REPLICAS", "3")]);
        let config = CommonConfig::from_source(&source).unwrap();
        assert!(!config.provision);
        assert_eq!(config.stream_replicas, 3);
        for (key, bad) in [
            ("BO_STREAM_REPLICAS", "0"),
            ("BO_STREAM_REPLICAS", "7"),
            ("BO_PROVISION", "no"),
        ] {
            let error = CommonConfig::from_source(&HashMap::from([(key, bad)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn a_prefix_that_is_not_one_lowercase_token_is_refused() {
        for bad in ["", "a.b", "Shop", "a b", "a*", ">"] {
            let source = HashMap::from([("BO_PREFIX", bad)]);
            assert!(
                CommonConfig::from_source(&source).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
