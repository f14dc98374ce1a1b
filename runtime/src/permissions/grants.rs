//! What each role is granted under one prefix: the subjects and JetStream API its work needs.

use super::reader_consumer;
use crate::subjects::{StreamKind, Subjects};
use crate::topology;

/// One prefix's grants, built up by what a role does.
#[derive(Default)]
pub(super) struct Grants {
    pub(super) publish: Vec<String>,
    pub(super) subscribe: Vec<String>,
    pub(super) allow_responses: bool,
}

/// What a role may do under one prefix beyond what every role may (see [`Grants::for_role`]).
type RoleGrants = fn(&mut Grants, &Subjects, &str);

/// Each role's own grants, by name. `admin` is not here: it may do everything (see [`permissions`](super::permissions)).
const ROLE_GRANTS: &[(&str, RoleGrants)] = &[
    ("order-intake", Grants::order_intake),
    ("allocation", Grants::allocation),
    ("replenishment-trigger", Grants::replenishment_trigger),
    ("notifier", Grants::notifier),
    ("console", |g, s, _| g.asks_the_api(s)),
    ("oms", Grants::oms),
    ("wms", Grants::wms),
    ("purchasing", Grants::purchasing),
    ("product-master", |g, s, _| g.publish([s.sku_upserted()])),
    ("gateway", |g, s, role| {
        g.reads(s, role, &[format!("{}.out.notify.>", s.prefix())])
    }),
    ("operator", Grants::operator),
];

impl Grants {
    pub(super) fn for_role(role: &str, s: &Subjects) -> Self {
        let mut g = Grants::default();
        if let Some((_, grant)) = ROLE_GRANTS.iter().find(|(name, _)| *name == role) {
            grant(&mut g, s, role);
        }
        // Every role but admin publishes through JetStream and learns whether a stream exists (its config,
        // never its messages).
        g.publish(["$JS.API.INFO".to_string()]);
        g.publish(StreamKind::ALL.map(|k| format!("$JS.API.STREAM.INFO.{}", s.stream(k))));
        g
    }

    fn order_intake(&mut self, s: &Subjects, role: &str) {
        self.service(s, role);
        self.publish([s.order_accepted(), s.order_rejected(), s.dead_letter(role)]);
    }

    fn allocation(&mut self, s: &Subjects, role: &str) {
        self.service(s, role);
        // The outbox relay's events, its dead letters, and the query API's re-prioritisation.
        self.publish([
            s.order_status(),
            s.order_rejected(),
            s.allocation_created(),
            s.allocation_cancelled(),
            s.request_refused(),
            s.reorder_needed(),
            s.customer_event(),
            s.dead_letter(role),
            s.dead_letter("allocation-outbox"),
            s.order_priority(),
        ]);
        // Replaying a dead letter publishes its bytes to where it first went: any subject a stream of
        // the prefix captures, but never to another prefix.
        for kind in [StreamKind::Inbound, StreamKind::Internal] {
            self.publish(s.stream_subjects(kind));
        }
        // The dead letters it lists and replays are read by sequence.
        let dead_letters = s.stream(StreamKind::DeadLetter);
        self.publish([
            format!("$JS.API.STREAM.MSG.GET.{dead_letters}"),
            format!("$JS.API.DIRECT.GET.{dead_letters}"),
            format!("$JS.API.DIRECT.GET.{dead_letters}.>"),
        ]);
        // The query API, a NATS micro service: requests, discovery, replies to any asker.
        self.subscribe([format!("{}.api.>", s.prefix()), "$SRV.>".into()]);
        self.allow_responses = true;
    }

    fn replenishment_trigger(&mut self, s: &Subjects, role: &str) {
        self.service(s, role);
        self.publish([
            s.purchase_request(),
            s.replenishment_tick(),
            s.dead_letter(role),
            s.dead_letter(topology::consumer::REPLENISHMENT_POLICIES),
        ]);
    }

    fn notifier(&mut self, s: &Subjects, role: &str) {
        self.service(s, role);
        self.own_consumer(
            s,
            StreamKind::Outbound,
            topology::consumer::NOTIFIER_SMTP,
            None,
        );
        self.publish([
            s.notify_email(),
            s.notify_sms(),
            s.dead_letter(role),
            s.dead_letter(topology::consumer::NOTIFIER_PREFERENCES),
            s.dead_letter(topology::consumer::NOTIFIER_SMTP),
        ]);
    }

    fn oms(&mut self, s: &Subjects, role: &str) {
        self.publish([
            s.order_placed(),
            s.order_cancel(),
            s.delay_answer(),
            s.customer_preferences(),
            s.order_priority(),
        ]);
        self.reads(
            s,
            role,
            &[s.order_status(), s.order_rejected(), s.request_refused()],
        );
    }

    fn wms(&mut self, s: &Subjects, role: &str) {
        self.publish([
            s.stock_received(),
            s.stock_adjusted(),
            s.shipment_confirmed(),
        ]);
        self.reads(s, role, &[s.allocation_created(), s.allocation_cancelled()]);
    }

    fn purchasing(&mut self, s: &Subjects, role: &str) {
        self.publish([s.supply_updated()]);
        self.reads(s, role, &[s.purchase_request()]);
    }

    fn operator(&mut self, s: &Subjects, _role: &str) {
        self.asks_the_api(s);
        self.publish([s.customer_preferences(), s.clock()]);
    }

    fn publish(&mut self, subjects: impl IntoIterator<Item = String>) {
        self.publish.extend(subjects);
    }

    fn subscribe(&mut self, subjects: impl IntoIterator<Item = String>) {
        self.subscribe.extend(subjects);
    }

    /// A service of ours: its durable consumers and buckets from the topology, the simulated clock (an
    /// ordered consumer on the control stream), and the server's advisories about its consumers.
    fn service(&mut self, s: &Subjects, role: &str) {
        for consumer in topology::consumers(s)
            .into_iter()
            .filter(|c| c.role == role)
        {
            self.own_consumer(s, consumer.stream, consumer.name, None);
            self.subscribe([format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                s.stream(consumer.stream),
                consumer.name
            )]);
        }
        for bucket in topology::buckets(s).into_iter().filter(|b| b.role == role) {
            self.bucket(&bucket.name);
        }
        let ctl = s.stream(StreamKind::Control);
        self.publish([
            format!("$JS.API.CONSUMER.CREATE.{ctl}"),
            format!("$JS.API.CONSUMER.CREATE.{ctl}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{ctl}.*"),
            format!("$JS.API.CONSUMER.INFO.{ctl}.*"),
            format!("$JS.API.CONSUMER.DELETE.{ctl}.*"),
            format!("$JS.ACK.{ctl}.>"),
            format!("$JS.FC.{ctl}.>"),
        ]);
    }

    /// The durable consumer `name` on `kind`'s stream: create or update it (with any filters when `filter` is
    /// `None`, else only with that one, which the API subject then names), read its info, pull, give up its
    /// pin (a pinned consumer, on shutdown), ack.
    fn own_consumer(&mut self, s: &Subjects, kind: StreamKind, name: &str, filter: Option<&str>) {
        let stream = s.stream(kind);
        match filter {
            None => self.publish([
                format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
                format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.>"),
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}"),
            ]),
            Some(filter) => {
                self.publish([format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}")])
            }
        }
        self.publish([
            format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
            format!("$JS.API.CONSUMER.UNPIN.{stream}.{name}"),
            format!("$JS.ACK.{stream}.{name}.>"),
        ]);
    }

    /// An outside system reading `filters` from the outbound stream: live by a core subscription, or each
    /// through a durable consumer of its own, [`reader_consumer`] `(role, filter)`, that can only be made with
    /// that filter.
    fn reads(&mut self, s: &Subjects, role: &str, filters: &[String]) {
        for filter in filters {
            self.own_consumer(
                s,
                StreamKind::Outbound,
                &reader_consumer(role, filter),
                Some(filter),
            );
        }
        self.subscribe(filters.iter().cloned());
    }

    /// A key-value bucket: its entries, and the ordered consumers that read keys and watch it.
    fn bucket(&mut self, bucket: &str) {
        let kv_stream = if bucket == "*" {
            "*".to_string()
        } else {
            format!("KV_{bucket}")
        };
        self.publish([
            format!("$KV.{bucket}.>"),
            format!("$JS.API.STREAM.INFO.{kv_stream}"),
            format!("$JS.API.STREAM.MSG.GET.{kv_stream}"),
            format!("$JS.API.DIRECT.GET.{kv_stream}"),
            format!("$JS.API.DIRECT.GET.{kv_stream}.>"),
            format!("$JS.API.CONSUMER.CREATE.{kv_stream}"),
            format!("$JS.API.CONSUMER.CREATE.{kv_stream}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{kv_stream}.*"),
            format!("$JS.API.CONSUMER.INFO.{kv_stream}.*"),
            format!("$JS.API.CONSUMER.DELETE.{kv_stream}.*"),
            format!("$JS.ACK.{kv_stream}.>"),
            format!("$JS.FC.{kv_stream}.>"),
        ]);
    }

    /// The query API: requests on `<p>.api.>` and the micro service discovery.
    fn asks_the_api(&mut self, s: &Subjects) {
        self.publish([format!("{}.api.>", s.prefix()), "$SRV.>".into()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::ROLES;

    #[test]
    fn every_role_but_admin_has_its_grants() {
        let granted: Vec<&str> = ROLE_GRANTS.iter().map(|(name, _)| *name).collect();
        let roles: Vec<&str> = ROLES
            .iter()
            .map(|r| r.name)
            .filter(|name| *name != "admin")
            .collect();
        assert_eq!(granted, roles);
    }
}
