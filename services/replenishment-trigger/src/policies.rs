//! Where a SKU's reorder policy comes from: the built-in default, the operator's file (re-read while the
//! service runs) and the product master's `SkuUpserted`, which is kept in the bucket under `policy.<sku>`.

use std::path::Path;
use std::sync::RwLock;
use std::time::Duration;

use async_nats::jetstream::kv as js_kv;
use backorder_proto::v1::{ReorderRule, SkuUpserted};
use backorder_runtime::consume::{Delivery, Handler, Outcome};
use backorder_runtime::digest;
use backorder_runtime::limits::Check;
use prost::Message as _;
use tracing::Instrument;

use crate::kv;
use crate::policy::{self, Origin, Partial, Policy, RuleName};
use crate::policy_file::Watched;
use crate::store::{MasterPolicy, Position, keys};

/// How often the policy file is checked for changes.
const FILE_CHECK: Duration = Duration::from_secs(5);

/// The default policy and the operator's file.
pub struct Policies {
    builtin: Policy,
    /// `None`: no file configured. A lock because the file is re-read while reports are handled.
    file: Option<RwLock<Watched>>,
}

impl Policies {
    /// Reads the file, if one is named; an unreadable or invalid one stops the start.
    pub fn load(builtin: Policy, file: Option<&Path>) -> anyhow::Result<Self> {
        let file = match file {
            None => None,
            Some(path) => Some(RwLock::new(
                Watched::load(path, &builtin).map_err(anyhow::Error::msg)?,
            )),
        };
        Ok(Self { builtin, file })
    }

    pub fn path(&self) -> Option<std::path::PathBuf> {
        self.file.as_ref().map(|f| read(f).path().to_path_buf())
    }

    /// The policy of `sku`: the file's entry over the product master's over the default.
    pub fn resolve(&self, sku: &str, upserted: Option<&Partial>) -> (Policy, Origin) {
        // An upsert with no reorder fields (a product master that keeps no purchasing data) configures
        // nothing: the line is still flagged as made by the default policy.
        let upserted = upserted.filter(|p| **p != Partial::default());
        match &self.file {
            None => policy::resolve(&self.builtin, upserted, None),
            Some(file) => {
                let file = read(file);
                let default = file.file.default_policy(&self.builtin);
                policy::resolve(&default, upserted, file.file.sku.get(sku))
            }
        }
    }

    /// Re-reads the file when it changes, until `shutdown`. A broken file keeps the policies as they were.
    pub async fn watch(&self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            shutdown.await;
            return Ok(());
        };
        tokio::pin!(shutdown);
        let mut every = tokio::time::interval(FILE_CHECK);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = every.tick() => {}
            }
            let mut watched = file
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match watched.refresh(&self.builtin) {
                Ok(true) => {
                    tracing::info!(path = %watched.path().display(), skus = watched.file.sku.len(), "reorder policies re-read")
                }
                Ok(false) => {}
                Err(error) => tracing::error!(
                    %error,
                    "reorder policy file not applied; the policies in effect stay until it is fixed"
                ),
            }
        }
    }
}

fn read(file: &RwLock<Watched>) -> std::sync::RwLockReadGuard<'_, Watched> {
    // A panic while holding the lock cannot leave a half-read file: refresh replaces it whole.
    file.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reorder fields of an upsert, as a policy layer; an error names each bad field, its value and the
/// limit (`backorder_runtime::limits`: 0 is "the default's value", so every size is `0..=MAX_QUANTITY`).
pub fn from_upsert(upsert: &SkuUpserted, builtin: &Policy) -> Result<Partial, String> {
    let mut check = Check::new();
    check.id("sku", &upsert.sku);
    check.optional_id("supplier_id", &upsert.supplier_id);
    check.lead_time_days("lead_time_days", upsert.lead_time_days);
    for (field, value) in [
        ("pack_size", upsert.pack_size),
        ("min_order_quantity", upsert.min_order_quantity),
        ("min_level", upsert.min_level),
        ("max_level", upsert.max_level),
        ("safety_stock", upsert.safety_stock),
        ("urgent_shortage", upsert.urgent_shortage),
    ] {
        check.quantity(field, value, 0);
    }
    let rule = match ReorderRule::try_from(upsert.reorder_rule) {
        Ok(ReorderRule::Unspecified) => None,
        Ok(ReorderRule::Cover) => Some(RuleName::Cover),
        Ok(ReorderRule::MinMax) => Some(RuleName::MinMax),
        Err(_) => {
            check.fail(
                "reorder_rule",
                format!("{} is not a known ReorderRule", upsert.reorder_rule),
            );
            None
        }
    };
    if rule == Some(RuleName::MinMax) && upsert.max_level < upsert.min_level {
        check.fail(
            "max_level",
            format!(
                "{} is below min_level {}",
                upsert.max_level, upsert.min_level
            ),
        );
    }
    check.result()?;
    let given = |value: i64| (value > 0).then_some(value);
    let partial = Partial {
        supplier: Some(upsert.supplier_id.clone()).filter(|s| !s.is_empty()),
        lead_time_days: u32::try_from(upsert.lead_time_days).ok().filter(|d| *d > 0),
        pack_size: given(upsert.pack_size),
        min_order_quantity: given(upsert.min_order_quantity),
        rule,
        // With MIN_MAX, a level of 0 is a level.
        min: if rule == Some(RuleName::MinMax) {
            Some(upsert.min_level)
        } else {
            given(upsert.min_level)
        },
        max: if rule == Some(RuleName::MinMax) {
            Some(upsert.max_level)
        } else {
            given(upsert.max_level)
        },
        safety_stock: given(upsert.safety_stock),
        urgent_shortage: given(upsert.urgent_shortage),
    };
    let problems = partial.over(builtin).problems();
    if problems.is_empty() {
        Ok(partial)
    } else {
        Err(problems.join("; "))
    }
}

/// Keeps the product master's policies (`<p>.in.sku.upserted`): the newest upsert of a SKU by stream
/// [`Position`] (time, then sequence: a recreated stream's are newer) wins, so a redelivered older one changes
/// nothing, and the same upsert again (by digest, whatever its id and position) changes nothing either.
pub struct Upserts {
    pub bucket: js_kv::Store,
    pub builtin: Policy,
}

impl Handler for Upserts {
    async fn handle(&mut self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let span = tracing::info_span!(
                "sku_policy",
                sku = tracing::field::Empty,
                seq = delivery.stream_sequence
            );
            backorder_runtime::trace::follow(&span, &delivery.trace);
            outcomes.push(self.keep(delivery).instrument(span).await);
        }
        outcomes
    }
}

impl Upserts {
    async fn keep(&self, delivery: &Delivery) -> Outcome {
        let upsert = match SkuUpserted::decode(delivery.payload.as_ref()) {
            Ok(upsert) => upsert,
            Err(error) => return Outcome::Reject(format!("cannot decode SkuUpserted: {error}")),
        };
        tracing::Span::current().record("sku", upsert.sku.as_str());
        let partial = match from_upsert(&upsert, &self.builtin) {
            Ok(partial) => partial,
            Err(reason) => {
                tracing::warn!(%reason, "reorder policy refused");
                return Outcome::Reject(reason);
            }
        };
        let key = keys::policy(&upsert.sku);
        let stored = match kv::read::<MasterPolicy>(&self.bucket, &key).await {
            Ok(stored) => stored,
            Err(error) => return Outcome::Retry(error),
        };
        let at = Position {
            published: delivery.published,
            seq: delivery.stream_sequence,
        };
        let digest = digest::of(&upsert);
        if let Some(stored) = &stored.value
            && !stored.replaced_by(&digest, at)
        {
            tracing::debug!(seq = stored.seq, "upsert in effect or superseded");
            return Outcome::Done;
        }
        let value = MasterPolicy {
            seq: at.seq,
            published: Some(at.published),
            digest,
            policy: partial,
        };
        match kv::write(&self.bucket, &key, &value, stored.revision).await {
            Ok(_) => {
                tracing::info!(policy = ?value.policy, "reorder policy kept");
                Outcome::Done
            }
            Err(error) => Outcome::Retry(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rule;

    fn builtin() -> Policy {
        Policy::cover("unassigned", 14)
    }

    #[test]
    fn an_upsert_without_reorder_fields_configures_nothing() {
        let upsert = SkuUpserted {
            sku: "SKU-A".into(),
            backorderable: true,
            ..Default::default()
        };
        let partial = from_upsert(&upsert, &builtin()).unwrap();
        assert_eq!(partial, Partial::default());
        let policies = Policies::load(builtin(), None).unwrap();
        assert_eq!(
            policies.resolve("SKU-A", Some(&partial)),
            (builtin(), Origin::Default)
        );
    }

    #[test]
    fn an_upsert_gives_its_fields_and_the_default_the_rest() {
        let upsert = SkuUpserted {
            sku: "SKU-A".into(),
            supplier_id: "ACME".into(),
            pack_size: 12,
            reorder_rule: ReorderRule::MinMax as i32,
            min_level: 0,
            max_level: 48,
            ..Default::default()
        };
        let partial = from_upsert(&upsert, &builtin()).unwrap();
        let policies = Policies::load(builtin(), None).unwrap();
        let (policy, origin) = policies.resolve("SKU-A", Some(&partial));
        assert_eq!(origin, Origin::Configured);
        assert_eq!(
            policy,
            Policy {
                supplier_id: "ACME".into(),
                pack_size: 12,
                rule: Rule::MinMax { min: 0, max: 48 },
                ..builtin()
            }
        );
    }

    #[test]
    fn bad_upserts_are_refused_by_field() {
        let upsert = SkuUpserted {
            sku: "SKU-A".into(),
            pack_size: -12,
            lead_time_days: -1,
            reorder_rule: 7,
            ..Default::default()
        };
        assert_eq!(
            from_upsert(&upsert, &builtin()).unwrap_err(),
            "lead_time_days: -1 days is outside 0..=3650; pack_size: must be 0 or more, got -12; \
             reorder_rule: 7 is not a known ReorderRule"
        );
        let upsert = SkuUpserted {
            sku: "SKU-A".into(),
            reorder_rule: ReorderRule::MinMax as i32,
            min_level: 50,
            max_level: 10,
            ..Default::default()
        };
        assert_eq!(
            from_upsert(&upsert, &builtin()).unwrap_err(),
            "max_level: 10 is below min_level 50"
        );
    }

    #[test]
    fn upserts_beyond_the_limits_are_refused_by_field_value_and_limit() {
        use backorder_runtime::limits::MAX_QUANTITY;
        let max = MAX_QUANTITY;
        let refused = |change: fn(&mut SkuUpserted)| {
            let mut upsert = SkuUpserted {
                sku: "SKU-A".into(),
                ..Default::default()
            };
            change(&mut upsert);
            from_upsert(&upsert, &builtin()).unwrap_err()
        };
        assert_eq!(
            refused(|u| u.lead_time_days = 3651),
            "lead_time_days: 3651 days is outside 0..=3650"
        );
        assert_eq!(
            refused(|u| u.pack_size = i64::MAX),
            "pack_size: 9223372036854775807 is more than 1000000000"
        );
        type Change = fn(&mut SkuUpserted);
        let beyond: [(&str, Change); 5] = [
            ("min_order_quantity", |u| {
                u.min_order_quantity = MAX_QUANTITY + 1
            }),
            ("min_level", |u| u.min_level = MAX_QUANTITY + 1),
            ("max_level", |u| u.max_level = MAX_QUANTITY + 1),
            ("safety_stock", |u| u.safety_stock = MAX_QUANTITY + 1),
            ("urgent_shortage", |u| u.urgent_shortage = MAX_QUANTITY + 1),
        ];
        for (field, change) in beyond {
            assert_eq!(
                refused(change),
                format!("{field}: 1000000001 is more than 1000000000")
            );
        }
        assert!(refused(|u| u.supplier_id = "S".repeat(200)).starts_with("supplier_id: \"SSSS"),);
        assert!(refused(|u| u.supplier_id = " ACME".into()).contains("surrounding spaces"));
        assert!(refused(|u| u.sku = "K".repeat(129)).starts_with("sku: "));
        // At the limits: taken.
        let upsert = SkuUpserted {
            sku: "SKU-A".into(),
            supplier_id: "S".repeat(128),
            lead_time_days: 3650,
            pack_size: max,
            min_order_quantity: max,
            reorder_rule: ReorderRule::MinMax as i32,
            min_level: max,
            max_level: max,
            safety_stock: max,
            urgent_shortage: max,
            ..Default::default()
        };
        assert!(from_upsert(&upsert, &builtin()).is_ok());
    }

    #[test]
    fn the_file_entry_overrides_the_upsert_field_by_field() {
        let dir = std::env::temp_dir().join(format!("bo-policies-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policies.toml");
        std::fs::write(
            &path,
            "[default]\nlead_time_days = 10\n[sku.SKU-A]\nmoq = 100\n",
        )
        .unwrap();
        let policies = Policies::load(builtin(), Some(&path)).unwrap();
        let upserted = Partial {
            supplier: Some("ACME".into()),
            min_order_quantity: Some(20),
            ..Default::default()
        };
        let (policy, origin) = policies.resolve("SKU-A", Some(&upserted));
        assert_eq!(origin, Origin::Configured);
        assert_eq!(
            (
                policy.supplier_id.as_str(),
                policy.min_order_quantity,
                policy.lead_time_days
            ),
            ("ACME", 100, 10)
        );
        let (policy, origin) = policies.resolve("SKU-B", None);
        assert_eq!((origin, policy.lead_time_days), (Origin::Default, 10));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
