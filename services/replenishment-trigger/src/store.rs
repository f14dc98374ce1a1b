//! What replenishment-trigger keeps in its key-value bucket (named by `Subjects::replenishment_bucket`), and
//! how: small JSON values under keys that name their kind (`sku.`, `policy.`, `batch.`, `sent.`). Pure, no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::policy::Partial;

/// The key of a SKU. Keys may only hold `[-/_=.a-zA-Z0-9]`, so a SKU made of letters, digits, `-` and `_`
/// is its own key (readable in `nats kv` output), and any other is `=` and the hex of its UTF-8 bytes. A
/// plain key never holds `=`, so the two kinds never meet, and the mapping is one to one (see [`sku_of`]).
pub fn key(sku: &str) -> String {
    let plain = !sku.is_empty()
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return sku.to_string();
    }
    let mut key = String::with_capacity(1 + 2 * sku.len());
    key.push('=');
    for byte in sku.bytes() {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The SKU a [`key`] stands for; `None` for a string no SKU maps to.
pub fn sku_of(key: &str) -> Option<String> {
    let Some(hex) = key.strip_prefix('=') else {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return plain.then(|| key.to_string());
    };
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|sku| key == self::key(sku))
}

/// The bucket's keys: what each kind of value is stored under.
pub mod keys {
    /// A SKU's requests ([`SkuState`](super::SkuState)).
    pub fn sku(sku: &str) -> String {
        format!("sku.{}", super::key(sku))
    }
    /// A SKU's policy from the product master ([`MasterPolicy`](super::MasterPolicy)).
    pub fn policy(sku: &str) -> String {
        format!("policy.{}", super::key(sku))
    }
    /// The request being gathered for a supplier ([`Batch`](super::Batch)).
    pub fn batch(supplier_id: &str) -> String {
        format!("batch.{}", super::key(supplier_id))
    }
    /// A sent request awaiting its answer ([`Sent`](super::Sent)).
    pub fn sent(request_id: &str) -> String {
        format!("sent.{}", super::key(request_id))
    }
    pub const BATCHES: &str = "batch.";
    pub const SENT: &str = "sent.";
}

/// Where a stream stored a message: when, then at which sequence. A recreated stream numbers its messages
/// from 1 again but stores them later, so the time decides first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub published: DateTime<Utc>,
    pub seq: u64,
}

/// Whether the message at `at` is the one stored at (`seq`, `published`) or older. A value written before
/// the time was kept (`published` `None`) can only be compared by sequence.
fn at_or_before(at: Position, seq: u64, published: Option<DateTime<Utc>>) -> bool {
    match published {
        Some(published) => at <= Position { published, seq },
        None => at.seq <= seq,
    }
}

/// How many applied reports a SKU remembers by event id: a report stored again beyond the stream's
/// duplicate window (a publisher retrying after an outage) comes back long before this many newer ones.
pub const RECENT_EVENTS: usize = 64;

/// What was requested for a SKU and not answered yet, and the reorder events applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuState {
    /// Stream sequence of the last `ReorderNeeded` applied; with `last_published` its [`Position`].
    pub last_seq: u64,
    /// When the stream stored it (absent in values written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_published: Option<DateTime<Utc>>,
    /// Event ids of the last [`RECENT_EVENTS`] reports applied, oldest first.
    #[serde(default)]
    pub applied: Vec<String>,
    pub open: Vec<OpenRequest>,
}

/// Units of a SKU asked for in a request (being gathered or sent) that purchasing has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub request_id: String,
    pub supplier_id: String,
    pub quantity: i64,
    pub requested_at: DateTime<Utc>,
}

impl SkuState {
    /// Whether the report `event_id` stored at `at` was applied: it is at or before the last one applied
    /// (a redelivery, a replay of the stream), or it is one of the recent ones stored again.
    pub fn applied(&self, event_id: &str, at: Position) -> bool {
        at_or_before(at, self.last_seq, self.last_published)
            || self.applied.iter().any(|e| e == event_id)
    }

    /// Records the report `event_id` stored at `at` as applied.
    pub fn mark_applied(&mut self, event_id: &str, at: Position) {
        self.last_seq = at.seq;
        self.last_published = Some(at.published);
        self.applied.push(event_id.to_string());
        let extra = self.applied.len().saturating_sub(RECENT_EVENTS);
        self.applied.drain(..extra);
    }

    /// Units requested and not answered.
    pub fn requested(&self) -> i64 {
        sum(self.open.iter().map(|r| r.quantity))
    }

    /// Units of `request_id` not answered.
    pub fn unanswered(&self, request_id: &str) -> i64 {
        sum(self
            .open
            .iter()
            .filter(|r| r.request_id == request_id)
            .map(|r| r.quantity))
    }

    /// Sets the units of the SKU in request `request_id` (0: none), in place of what it held.
    pub fn set_open(
        &mut self,
        request_id: &str,
        supplier_id: &str,
        quantity: i64,
        at: DateTime<Utc>,
    ) {
        self.open.retain(|r| r.request_id != request_id);
        if quantity > 0 {
            self.open.push(OpenRequest {
                request_id: request_id.to_string(),
                supplier_id: supplier_id.to_string(),
                quantity,
                requested_at: at,
            });
        }
    }

    /// Purchasing answered: the named requests are closed, and `supply_added` units of PO lines that name no
    /// request close the oldest open requests first (a request partly covered keeps the rest open). Returns the
    /// units closed per request.
    pub fn answer(&mut self, requests: &[String], supply_added: i64) -> Vec<(String, i64)> {
        let mut closed: Vec<(String, i64)> = Vec::new();
        let mut close =
            |request_id: &str, units: i64| match closed.iter_mut().find(|(id, _)| id == request_id)
            {
                Some((_, sum)) => *sum = sum.saturating_add(units),
                None => closed.push((request_id.to_string(), units)),
            };
        self.open.retain(|r| {
            let named = requests.contains(&r.request_id);
            if named {
                close(&r.request_id, r.quantity);
            }
            !named
        });
        let mut left = supply_added.max(0);
        for request in &mut self.open {
            if left == 0 {
                break;
            }
            let take = left.min(request.quantity);
            request.quantity -= take;
            left -= take;
            close(&request.request_id, take);
        }
        self.open.retain(|r| r.quantity > 0);
        closed
    }
}

/// The units of `quantities` that are positive, saturating.
pub fn sum(quantities: impl Iterator<Item = i64>) -> i64 {
    quantities.fold(0, |sum, q| sum.saturating_add(q.max(0)))
}

/// A SKU's reorder policy as the product master's last `SkuUpserted` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterPolicy {
    /// Stream sequence of the upsert; with `published` its [`Position`]: the newest wins.
    pub seq: u64,
    /// When the stream stored it (absent in values written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
    /// `digest::of` the upsert: the same upsert again changes nothing.
    #[serde(default)]
    pub digest: String,
    pub policy: Partial,
}

impl MasterPolicy {
    /// Whether the upsert with `digest` stored at `at` replaces this one: it is another upsert, stored later.
    pub fn replaced_by(&self, digest: &str, at: Position) -> bool {
        self.digest != digest && !at_or_before(at, self.seq, self.published)
    }
}

/// The request gathered for one supplier until `due_at`: which SKUs are in it and what the buyer is told
/// about each. The quantities are not here but in each SKU's [`SkuState`] (entries naming `request_id`), so a
/// SKU is requested in one place only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub request_id: String,
    pub supplier_id: String,
    pub opened_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// A line reached its urgent threshold: due at once.
    pub urgent: bool,
    pub lines: BTreeMap<String, LineNote>,
}

/// What a request line says besides its quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineNote {
    pub need_by: DateTime<Utc>,
    pub expedite: bool,
    pub default_policy: bool,
    pub orders_waiting: i64,
    pub backordered: i64,
    pub reason: String,
}

/// A request sent to purchasing: kept until every line is answered, to re-raise it once if it is not
/// answered by `reraise_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub request_id: String,
    pub supplier_id: String,
    pub sent_at: DateTime<Utc>,
    pub reraise_at: DateTime<Utc>,
    pub reraised: bool,
    pub lines: BTreeMap<String, LineNote>,
}

impl Sent {
    /// `batch` sent at `at`, to be re-raised `after` that (saturating: an hour count from the environment
    /// is no reason to panic).
    pub fn of(batch: &Batch, at: DateTime<Utc>, after: TimeDelta) -> Self {
        Self {
            request_id: batch.request_id.clone(),
            supplier_id: batch.supplier_id.clone(),
            sent_at: at,
            reraise_at: backorder_runtime::limits::add(at, after),
            reraised: false,
            lines: batch.lines.clone(),
        }
    }
}

/// A stored value as JSON (readable with `nats kv get`).
pub fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    serde_json::to_vec(value)
        .expect("plain data serializes")
        .into()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "stored value under {key} is not what this version writes ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule of the NATS clients: `[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`.
    fn valid_key(key: &str) -> bool {
        !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    }

    #[test]
    fn keys() {
        assert_eq!(key("SKU-A_1"), "SKU-A_1");
        assert_eq!(key("a.b"), "=612e62");
        assert_eq!(key("ä"), "=c3a4");
        assert_eq!(key("=61"), "=3d3631");
        assert_eq!(key(""), "=");
        assert_eq!(key("*"), "=2a");
        for sku in ["SKU-A_1", "a.b", "ä", "=61", "", "a b>c*"] {
            assert!(valid_key(&key(sku)), "{sku:?}");
            assert_eq!(sku_of(&key(sku)).as_deref(), Some(sku));
        }
        for not_a_key in ["=6", "=zz", "=ff", "=41", "a.b", "=C3A4"] {
            assert_eq!(sku_of(not_a_key), None, "{not_a_key:?}");
        }
    }

    fn open(request_id: &str, quantity: i64) -> OpenRequest {
        OpenRequest {
            request_id: request_id.into(),
            supplier_id: "ACME".into(),
            quantity,
            requested_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn named_answers_close_their_requests() {
        let mut state = SkuState {
            last_seq: 1,
            open: vec![open("pr/1", 30), open("pr/2", 20)],
            ..Default::default()
        };
        assert_eq!(
            state.answer(&["pr/2".into()], 0),
            [("pr/2".to_string(), 20)]
        );
        assert_eq!(state.open, [open("pr/1", 30)]);
        assert_eq!(state.answer(&["pr/2".into()], 0), []);
    }

    #[test]
    fn unnamed_supply_closes_the_oldest_first() {
        let mut state = SkuState {
            last_seq: 1,
            open: vec![open("pr/1", 30), open("pr/2", 20)],
            ..Default::default()
        };
        assert_eq!(
            state.answer(&[], 40),
            [("pr/1".to_string(), 30), ("pr/2".to_string(), 10)]
        );
        assert_eq!(state.open, [open("pr/2", 10)]);
        assert_eq!(state.requested(), 10);
        assert_eq!(state.unanswered("pr/2"), 10);
        assert_eq!(state.answer(&[], 100), [("pr/2".to_string(), 10)]);
        assert!(state.open.is_empty());
    }

    #[test]
    fn a_gathered_line_is_replaced_not_added_to() {
        let mut state = SkuState {
            last_seq: 1,
            open: vec![open("pr/1", 30), open("pr/2", 20)],
            ..Default::default()
        };
        state.set_open("pr/2", "ACME", 12, DateTime::UNIX_EPOCH);
        assert_eq!(state.open, [open("pr/1", 30), open("pr/2", 12)]);
        state.set_open("pr/2", "ACME", 0, DateTime::UNIX_EPOCH);
        assert_eq!(state.open, [open("pr/1", 30)]);
        state.set_open("pr/3", "ACME", 5, DateTime::UNIX_EPOCH);
        assert_eq!(state.requested(), 35);
    }

    #[test]
    fn values_round_trip_and_bad_ones_are_named() {
        let state = SkuState {
            last_seq: 7,
            open: vec![open("pr/1", 3)],
            ..Default::default()
        };
        assert_eq!(decode::<SkuState>(&encode(&state), "sku.A"), Ok(state));
        let error = decode::<SkuState>(b"30", "sku.A").unwrap_err();
        assert!(error.starts_with("stored value under sku.A"), "{error}");
    }

    fn at(published: &str, seq: u64) -> Position {
        Position {
            published: published.parse().unwrap(),
            seq,
        }
    }

    #[test]
    fn a_report_is_applied_once_by_position_and_by_event_id() {
        let mut state = SkuState::default();
        let first = at("2026-11-02T09:00:00Z", 500);
        assert!(!state.applied("ev-1", first));
        state.mark_applied("ev-1", first);
        // Redelivered, or replayed with the stream: at or before the last one applied.
        assert!(state.applied("ev-1", first));
        assert!(state.applied("ev-0", at("2026-11-02T08:59:00Z", 499)));
        // Stored again beyond the duplicate window: later, but its event id was applied.
        assert!(state.applied("ev-1", at("2026-11-02T10:00:00Z", 900)));
        // A recreated stream starts at sequence 1, later: new.
        let recreated = at("2026-11-02T10:00:00Z", 1);
        assert!(!state.applied("ev-2", recreated));
        state.mark_applied("ev-2", recreated);
        assert!(state.applied("ev-1", at("2026-11-02T10:00:01Z", 2)));
        assert_eq!((state.last_seq, state.applied.len()), (1, 2));
    }

    #[test]
    fn the_event_ids_kept_are_the_most_recent_ones() {
        let mut state = SkuState::default();
        for n in 0..RECENT_EVENTS + 10 {
            state.mark_applied(&format!("ev-{n}"), at("2026-11-02T09:00:00Z", n as u64 + 1));
        }
        assert_eq!(state.applied.len(), RECENT_EVENTS);
        assert_eq!(state.applied[0], "ev-10");
        let later = at("2026-11-03T09:00:00Z", 1);
        assert!(state.applied(&format!("ev-{}", RECENT_EVENTS + 9), later));
        assert!(!state.applied("ev-9", later));
    }

    #[test]
    fn values_written_before_times_were_kept_compare_by_sequence() {
        let old: SkuState = decode(br#"{"last_seq":7,"open":[]}"#, "sku.A").unwrap();
        assert!(old.applied("ev-1", at("2026-11-02T09:00:00Z", 7)));
        assert!(!old.applied("ev-1", at("2026-11-02T09:00:00Z", 8)));
        let old: MasterPolicy = decode(br#"{"seq":7,"policy":{}}"#, "policy.A").unwrap();
        assert!(!old.replaced_by("d", at("2026-11-02T09:00:00Z", 7)));
        assert!(old.replaced_by("d", at("2026-11-02T09:00:00Z", 8)));
    }

    #[test]
    fn a_later_other_upsert_replaces_the_policy() {
        let stored = MasterPolicy {
            seq: 500,
            published: Some("2026-11-02T09:00:00Z".parse().unwrap()),
            digest: "d1".into(),
            policy: Partial::default(),
        };
        let recreated = at("2026-11-02T10:00:00Z", 1);
        assert!(stored.replaced_by("d2", recreated));
        assert!(
            !stored.replaced_by("d1", recreated),
            "the same upsert again"
        );
        assert!(!stored.replaced_by("d2", at("2026-11-02T09:00:00Z", 500)));
        assert!(!stored.replaced_by("d2", at("2026-11-02T08:00:00Z", 900)));
    }

    #[test]
    fn the_longest_reraise_time_the_environment_allows_does_not_overflow() {
        let batch = Batch {
            request_id: "pr/ev-1".into(),
            supplier_id: "ACME".into(),
            opened_at: DateTime::UNIX_EPOCH,
            due_at: DateTime::UNIX_EPOCH,
            urgent: false,
            lines: BTreeMap::new(),
        };
        let at: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().unwrap();
        // BO_REORDER_RERAISE_HOURS=4294967295: about 490,000 years, beyond chrono's last date.
        let sent = Sent::of(&batch, at, TimeDelta::hours(u32::MAX.into()));
        assert_eq!(sent.reraise_at, DateTime::<Utc>::MAX_UTC);
        let sent = Sent::of(&batch, at, TimeDelta::hours(48));
        assert_eq!(sent.reraise_at, at + TimeDelta::hours(48));
    }

    #[test]
    fn sums_saturate() {
        let state = SkuState {
            open: vec![
                open("pr/1", i64::MAX),
                open("pr/2", i64::MAX),
                open("pr/3", -5),
            ],
            ..Default::default()
        };
        assert_eq!(state.requested(), i64::MAX);
    }

    proptest! {
        /// Every SKU gets a valid key, and the SKU can be read back from it, so no two SKUs share a key.
        #[test]
        fn every_sku_has_its_own_valid_key(sku in any::<String>()) {
            let key = key(&sku);
            prop_assert!(valid_key(&key), "{key:?}");
            prop_assert_eq!(sku_of(&key), Some(sku));
        }

        #[test]
        fn two_skus_never_share_a_key(a in "[a-zA-Z0-9=._ -]{0,6}", b in "[a-zA-Z0-9=._ -]{0,6}") {
            prop_assert_eq!(a == b, key(&a) == key(&b));
        }
    }
}
