//! replenishment-trigger: turns the shortages allocation reports (`<p>.reorder.needed`) into purchase requests
//! a buyer can send as they are (`<p>.out.purchase.request`): one per supplier for what a window gathered, with
//! quantities brought to each SKU's reorder policy, and a reminder for a request nobody answered in time.
//!
//! Its state lives in the key-value bucket named by `Subjects::replenishment_bucket` (see [`store`]):
//! what each SKU has requested and not been answered, the requests being gathered and those sent, and the
//! policies the product master gave. Policies also come from the operator's file (`BO_REORDER_POLICY_FILE`).

pub mod cached;
pub mod kv;
pub mod plan;
pub mod policies;
pub mod policy;
pub mod policy_file;
pub mod schedule;
pub mod store;
pub mod tick;
pub mod trigger;
pub mod watched;

use backorder_runtime::vars::Var;
use std::path::PathBuf;
use std::sync::Arc;

use backorder_runtime::config::{ConfigError, Source, parse_or};
use backorder_runtime::subjects::StreamKind;
use backorder_runtime::{CommonConfig, Service};
use chrono::TimeDelta;

use crate::policies::Policies;
use crate::policy::Policy;

/// The environment variables this service reads besides [`backorder_runtime::vars::COMMON`].
pub const ENV: &[Var] = &[
    Var {
        name: "BO_DEFAULT_LEAD_TIME_DAYS",
        default: Some("14"),
        about: "the default reorder policy's lead time",
        secret: false,
    },
    Var {
        name: "BO_REORDER_POLICY_FILE",
        default: None,
        about: "a TOML file of reorder policies, re-read when it changes; unset: the built-in policy",
        secret: false,
    },
    Var {
        name: "BO_REORDER_WINDOW_SECS",
        default: Some("300"),
        about: "how long shortages are gathered into one request per supplier; 0: sent at once",
        secret: false,
    },
    Var {
        name: "BO_REORDER_RERAISE_HOURS",
        default: Some("48"),
        about: "a request with no answer after this long is re-raised once",
        secret: false,
    },
];

/// Every environment variable the binary reads: the shared ones, then [`ENV`].
pub fn env_vars() -> Vec<Var> {
    backorder_runtime::vars::service_vars(SERVICE, ENV)
}

pub const SERVICE: &str = "replenishment-trigger";

/// The consumer of product-master upserts, which keep the SKUs' policies (and its dead-letter subject).
pub const POLICIES_CONSUMER: &str = backorder_runtime::topology::consumer::REPLENISHMENT_POLICIES;

/// No purchase request asks for goods further out than this.
pub const MAX_LEAD_TIME_DAYS: u32 = backorder_runtime::limits::MAX_LEAD_TIME_DAYS as u32;

/// The supplier of the built-in default policy: a SKU nobody configured is requested from nobody in particular,
/// and its line says so.
pub const UNASSIGNED_SUPPLIER: &str = "unassigned";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `BO_DEFAULT_LEAD_TIME_DAYS`, default 14: the default policy's lead time.
    pub default_lead_time_days: u32,
    /// `BO_REORDER_POLICY_FILE`: the operator's reorder policies (TOML), re-read when it changes.
    pub policy_file: Option<PathBuf>,
    /// `BO_REORDER_WINDOW_SECS`, default 300: how long shortages are gathered into one request per supplier.
    pub window: TimeDelta,
    /// `BO_REORDER_RERAISE_HOURS`, default 48: a request with no purchase order after this long is re-raised
    /// once.
    pub reraise_after: TimeDelta,
}

impl Config {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let key = "BO_DEFAULT_LEAD_TIME_DAYS";
        let default_lead_time_days = parse_or(source, key, 14u32)?;
        if default_lead_time_days > MAX_LEAD_TIME_DAYS {
            return Err(ConfigError::Invalid {
                key: key.into(),
                value: default_lead_time_days.to_string(),
                reason: format!("must be at most {MAX_LEAD_TIME_DAYS} days"),
            });
        }
        let window_secs = parse_or(source, "BO_REORDER_WINDOW_SECS", 300u32)?;
        let reraise_hours = parse_or(source, "BO_REORDER_RERAISE_HOURS", 48u32)?;
        if reraise_hours == 0 {
            return Err(ConfigError::Invalid {
                key: "BO_REORDER_RERAISE_HOURS".into(),
                value: "0".into(),
                reason: "must be at least 1 hour".into(),
            });
        }
        Ok(Self {
            common: CommonConfig::from_source(source)?,
            default_lead_time_days,
            policy_file: source
                .get("BO_REORDER_POLICY_FILE")
                .filter(|path| !path.trim().is_empty())
                .map(PathBuf::from),
            window: TimeDelta::seconds(window_secs.into()),
            reraise_after: TimeDelta::hours(reraise_hours.into()),
        })
    }

    /// The built-in default policy, under the file's `[default]`: cover the shortage, from nobody in
    /// particular, in the default lead time.
    pub fn builtin_policy(&self) -> Policy {
        Policy::cover(UNASSIGNED_SUPPLIER, self.default_lead_time_days)
    }
}

pub struct Application {
    service: Service,
    messages: backorder_runtime::jetstream::Messages,
    policy_messages: backorder_runtime::jetstream::Messages,
    trigger: trigger::Trigger,
    upserts: policies::Upserts,
    policies: Arc<Policies>,
    scheduler: schedule::Scheduler,
    master: Arc<watched::WatchedPolicies>,
    bucket: async_nats::jetstream::kv::Store,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let policies = Arc::new(Policies::load(
            config.builtin_policy(),
            config.policy_file.as_deref(),
        )?);
        let common = &config.common;
        // Its consumer delivers in stream order to one instance at a time, in batches (see the topology).
        let service = Service::connect(common, SERVICE).await?;
        let messages = service.consumer(StreamKind::Internal, SERVICE).await?;
        let policy_messages = service
            .consumer(StreamKind::Inbound, POLICIES_CONSUMER)
            .await?;
        let bucket = service
            .bus
            .key_value(&bucket_spec(&common.subjects))
            .await?;
        let master = Arc::new(watched::WatchedPolicies::default());
        // Due times, from the handler to the scheduler: unbounded, as the handler must never wait for it
        // (one small message per report).
        let (changes, changes_rx) = tokio::sync::mpsc::unbounded_channel();
        let trigger = trigger::Trigger {
            bus: service.bus.clone(),
            bucket: bucket.clone(),
            policies: policies.clone(),
            clock: common.clock.clone(),
            window: config.window,
            reraise_after: config.reraise_after,
            changes,
            skus: Default::default(),
            batches: Default::default(),
            master: master.clone(),
        };
        let upserts = policies::Upserts {
            bucket: bucket.clone(),
            builtin: config.builtin_policy(),
        };
        let scheduler = schedule::Scheduler {
            bus: service.bus.clone(),
            bucket: bucket.clone(),
            clock: common.clock.clone(),
            changes: changes_rx,
        };
        Ok(Self {
            service,
            messages,
            policy_messages,
            trigger,
            upserts,
            policies,
            scheduler,
            master,
            bucket,
        })
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(policy_file = ?self.policies.path(), "policies loaded");
        let worker = self.service.worker(SERVICE);
        let policy_worker = self.service.worker(POLICIES_CONSUMER);
        let (mut trigger, mut upserts) = (self.trigger, self.upserts);
        let (messages, policy_messages) = (self.messages, self.policy_messages);
        let (scheduler, policies, master, bucket) =
            (self.scheduler, self.policies, self.master, self.bucket);
        self.service
            .run(shutdown, |shutdown| async move {
                let watch = async {
                    master.watch(&bucket, shutdown.clone()).await;
                    anyhow::Ok(())
                };
                tokio::try_join!(
                    worker.run(messages, &mut trigger, shutdown.clone()),
                    policy_worker.run(policy_messages, &mut upserts, shutdown.clone()),
                    scheduler.run(shutdown.clone()),
                    policies.watch(shutdown.clone()),
                    watch,
                )?;
                Ok(())
            })
            .await
    }
}

fn bucket_spec(subjects: &backorder_runtime::Subjects) -> backorder_runtime::topology::BucketSpec {
    let name = subjects.replenishment_bucket();
    backorder_runtime::topology::buckets(subjects)
        .into_iter()
        .find(|b| b.name == name)
        .expect("the topology lists the replenishment bucket")
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn every_variable_the_source_reads_is_listed() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        backorder_runtime::vars::assert_listed_as_read(&src, &super::env_vars(), super::ENV);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_defaults_and_bad_values() {
        let config = Config::from_source(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(config.default_lead_time_days, 14);
        assert_eq!(config.window, TimeDelta::minutes(5));
        assert_eq!(config.reraise_after, TimeDelta::hours(48));
        assert_eq!(config.policy_file, None);
        assert_eq!(config.common.subjects.prefix(), "bo");
        assert_eq!(config.builtin_policy().supplier_id, UNASSIGNED_SUPPLIER);

        let source = HashMap::from([
            ("BO_DEFAULT_LEAD_TIME_DAYS", "30"),
            ("BO_PREFIX", "shop1"),
            ("BO_REORDER_WINDOW_SECS", "0"),
            ("BO_REORDER_RERAISE_HOURS", "2"),
            ("BO_REORDER_POLICY_FILE", "deploy/reorder-policies.toml"),
        ]);
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.default_lead_time_days, 30);
        assert_eq!(config.builtin_policy().lead_time_days, 30);
        assert_eq!(config.common.subjects.prefix(), "shop1");
        assert_eq!(config.window, TimeDelta::zero());
        assert_eq!(config.reraise_after, TimeDelta::hours(2));
        assert_eq!(
            config.policy_file,
            Some(PathBuf::from("deploy/reorder-policies.toml"))
        );

        for (key, bad) in [
            ("BO_DEFAULT_LEAD_TIME_DAYS", "-1"),
            ("BO_DEFAULT_LEAD_TIME_DAYS", "two weeks"),
            ("BO_DEFAULT_LEAD_TIME_DAYS", "3651"),
            ("BO_REORDER_WINDOW_SECS", "-5"),
            ("BO_REORDER_RERAISE_HOURS", "0"),
        ] {
            let source = HashMap::from([(key, bad)]);
            let error = Config::from_source(&source).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
        let source = HashMap::from([("BO_PREFIX", "Bad Prefix")]);
        assert!(Config::from_source(&source).is_err());
    }
}
