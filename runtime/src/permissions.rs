//! Who may publish and subscribe where: one NATS user per role, each allowed only its input subjects, its
//! output subjects, the JetStream API of its own consumers and buckets, and its own inbox. A pure function of
//! the prefix and the [`topology`](crate::topology); `backorder-provision accounts` writes it out as a
//! nats-server configuration, and the tests check the server enforces it.
//!
//! Rules that hold for every role but `admin`:
//! - No stream is created, changed, purged or deleted (`$JS.API.STREAM.CREATE/UPDATE/PURGE/DELETE` are nobody's
//!   but `admin`'s), and no message is read from a stream except through the role's own durable consumers.
//! - Replies come to the user's own inbox, `_INBOX.<its public nkey>.>` ([`inbox_prefix`]); nobody may
//!   subscribe to another user's inbox, where pulled messages and API replies arrive.
//! - An outside system's consumer may only be created with the subject filter its role reads (the filter is
//!   part of the API subject, `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`): the gateway cannot widen its
//!   consumer to the orders.

use crate::subjects::{StreamKind, Subjects};
use crate::topology;

/// A NATS user and why it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    pub name: &'static str,
    pub about: &'static str,
}

/// Every role, services first, then the outside systems, then `admin`.
pub const ROLES: &[Role] = &[
    Role {
        name: "order-intake",
        about: "validates orders: OrderPlaced in, accepted or rejected out",
    },
    Role {
        name: "allocation",
        about: "the store: commands in, allocations, statuses, reorders, customer events out; the query API",
    },
    Role {
        name: "replenishment-trigger",
        about: "reorder reports in, purchase requests out",
    },
    Role {
        name: "notifier",
        about: "customer events in, email and SMS out",
    },
    Role {
        name: "console",
        about: "the web dashboard: asks the query API",
    },
    Role {
        name: "oms",
        about: "the order management system: orders, cancellations, delay answers, preferences in; statuses and rejections out",
    },
    Role {
        name: "wms",
        about: "the warehouse: receipts, adjustments, shipments in; allocations to pick out",
    },
    Role {
        name: "purchasing",
        about: "purchase orders in (SupplyUpdated); purchase requests out",
    },
    Role {
        name: "product-master",
        about: "SKU master data in (SkuUpserted)",
    },
    Role {
        name: "gateway",
        about: "email and SMS gateways: reads <p>.out.notify.> only",
    },
    Role {
        name: "operator",
        about: "the backorder CLI: the query API, customer preferences, the simulated clock",
    },
    Role {
        name: "admin",
        about: "provisioning (streams, buckets, consumers) and tests: everything",
    },
];

/// The durable consumer an outside system reads `filter` through: `<role>-<the filter after "<p>.out.">`, dots
/// as dashes, e.g. `wms-allocation-cancelled`, `gateway-notify` (for `<p>.out.notify.>`).
pub fn reader_consumer(role: &str, filter: &str) -> String {
    let rest = filter.splitn(3, '.').nth(2).unwrap_or(filter);
    let rest: Vec<&str> = rest.split('.').filter(|t| *t != ">" && *t != "*").collect();
    format!("{role}-{}", rest.join("-"))
}

/// What one user may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// May answer the requests it receives (the query API), whatever inbox they came from.
    pub allow_responses: bool,
}

/// The inbox prefix of the user with public key `public_key`: `_INBOX.<key>`.
pub fn inbox_prefix(public_key: &str) -> String {
    format!("_INBOX.{public_key}")
}

/// What `role` may do under each of `prefixes` (one [`Subjects`], several, or [`Subjects::any`]), with replies
/// on `inbox` ([`inbox_prefix`]). `None` for a name that is not a role.
pub fn permissions(role: &str, prefixes: &[Subjects], inbox: &str) -> Option<Permissions> {
    ROLES.iter().find(|r| r.name == role)?;
    let mut all = Permissions::default();
    if role == "admin" {
        all.publish.push(">".into());
        all.subscribe.push(">".into());
        return Some(all);
    }
    all.subscribe.push(format!("{inbox}.>"));
    for s in prefixes {
        let p = Grants::for_role(role, s);
        all.publish.extend(p.publish);
        all.subscribe.extend(p.subscribe);
        all.allow_responses |= p.allow_responses;
    }
    all.publish.sort();
    all.publish.dedup();
    all.subscribe.sort();
    all.subscribe.dedup();
    Some(all)
}

/// A user of the server configuration: its role and public nkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub role: &'static str,
    pub public_key: String,
}

/// The nats-server configuration block that lists `users` with their permissions under `prefixes`: an
/// `authorization` block to include in the server's configuration. Anonymous clients are refused, since
/// every user is listed and there is no `no_auth_user`.
pub fn server_config(users: &[User], prefixes: &[Subjects]) -> String {
    let quoted = |list: &[String]| {
        let items: Vec<String> = list
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        format!("[{}]", items.join(", "))
    };
    let names: Vec<&str> = prefixes.iter().map(Subjects::prefix).collect();
    let mut out = format!(
        "# NATS users of backorder, one per role, for prefix {}.\n\
         # Written by `backorder-provision accounts`; run it again rather than editing this file.\n\
         authorization {{\n  users = [\n",
        names.join(", ")
    );
    for user in users {
        let Some(role) = ROLES.iter().find(|r| r.name == user.role) else {
            continue;
        };
        let p = permissions(user.role, prefixes, &inbox_prefix(&user.public_key))
            .expect("a role of ROLES");
        out.push_str(&format!(
            "    # {}: {}\n    {{\n      nkey: {}\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n",
            role.name,
            role.about,
            serde_json::to_string(&user.public_key).unwrap(),
            quoted(&p.publish),
            quoted(&p.subscribe),
        ));
        if p.allow_responses {
            out.push_str("        allow_responses: true\n");
        }
        out.push_str("      }\n    }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

/// One prefix's grants, built up by what a role does.
#[derive(Default)]
struct Grants {
    publish: Vec<String>,
    subscribe: Vec<String>,
    allow_responses: bool,
}

impl Grants {
    fn for_role(role: &str, s: &Subjects) -> Self {
        let mut g = Grants::default();
        let stream = |kind| s.stream(kind);
        match role {
            "order-intake" => {
                g.service(s, role);
                g.publish([s.order_accepted(), s.order_rejected(), s.dead_letter(role)]);
            }
            "allocation" => {
                g.service(s, role);
                // The outbox relay's events, its dead letters, and the query API's re-prioritisation.
                g.publish([
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
                    g.publish(s.stream_subjects(kind));
                }
                // The dead letters it lists and replays are read by sequence.
                g.publish([
                    format!("$JS.API.STREAM.MSG.GET.{}", stream(StreamKind::DeadLetter)),
                    format!("$JS.API.DIRECT.GET.{}", stream(StreamKind::DeadLetter)),
                    format!("$JS.API.DIRECT.GET.{}.>", stream(StreamKind::DeadLetter)),
                ]);
                // The query API, a NATS micro service: requests, discovery, replies to any asker.
                g.subscribe([format!("{}.api.>", s.prefix()), "$SRV.>".into()]);
                g.allow_responses = true;
            }
            "replenishment-trigger" => {
                g.service(s, role);
                g.publish([
                    s.purchase_request(),
                    s.replenishment_tick(),
                    s.dead_letter(role),
                    s.dead_letter(topology::consumer::REPLENISHMENT_POLICIES),
                ]);
            }
            "notifier" => {
                g.service(s, role);
                g.own_consumer(
                    s,
                    StreamKind::Outbound,
                    topology::consumer::NOTIFIER_SMTP,
                    None,
                );
                g.publish([
                    s.notify_email(),
                    s.notify_sms(),
                    s.dead_letter(role),
                    s.dead_letter(topology::consumer::NOTIFIER_PREFERENCES),
                    s.dead_letter(topology::consumer::NOTIFIER_SMTP),
                ]);
            }
            "console" => g.asks_the_api(s),
            "oms" => {
                g.publish([
                    s.order_placed(),
                    s.order_cancel(),
                    s.delay_answer(),
                    s.customer_preferences(),
                    s.order_priority(),
                ]);
                g.reads(
                    s,
                    role,
                    &[s.order_status(), s.order_rejected(), s.request_refused()],
                );
            }
            "wms" => {
                g.publish([
                    s.stock_received(),
                    s.stock_adjusted(),
                    s.shipment_confirmed(),
                ]);
                g.reads(s, role, &[s.allocation_created(), s.allocation_cancelled()]);
            }
            "purchasing" => {
                g.publish([s.supply_updated()]);
                g.reads(s, role, &[s.purchase_request()]);
            }
            "product-master" => g.publish([s.sku_upserted()]),
            "gateway" => g.reads(s, role, &[format!("{}.out.notify.>", s.prefix())]),
            "operator" => {
                g.asks_the_api(s);
                g.publish([s.customer_preferences(), s.clock()]);
            }
            _ => {}
        }
        // Every role but admin publishes through JetStream and learns whether a stream exists (its config,
        // never its messages).
        g.publish(["$JS.API.INFO".to_string()]);
        g.publish(StreamKind::ALL.map(|k| format!("$JS.API.STREAM.INFO.{}", stream(k))));
        g
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
    /// `None`, else only with that one, which the API subject then names), read its info, pull, ack.
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

    /// NATS subject matching: `*` one token, `>` one or more at the end.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn may(list: &[String], subject: &str) -> bool {
        list.iter().any(|p| matches(p, subject))
    }

    fn of(role: &str) -> Permissions {
        permissions(role, &[Subjects::new("bo").unwrap()], "_INBOX.UKEY").unwrap()
    }

    #[test]
    fn the_matcher_follows_nats() {
        assert!(matches("bo.in.>", "bo.in.order.placed"));
        assert!(!matches("bo.in.>", "bo.in"));
        assert!(matches("*.out.notify.>", "bo.out.notify.email"));
        assert!(!matches("bo.out.notify.email", "bo.out.notify.sms"));
    }

    #[test]
    fn only_admin_creates_changes_or_deletes_streams() {
        for role in ROLES.iter().filter(|r| r.name != "admin") {
            let p = of(role.name);
            for verb in ["CREATE", "UPDATE", "DELETE", "PURGE"] {
                for stream in ["BO_IN", "BO_OUT", "KV_BO_NOTIFIER"] {
                    let subject = format!("$JS.API.STREAM.{verb}.{stream}");
                    assert!(!may(&p.publish, &subject), "{} may {subject}", role.name);
                }
            }
            assert!(
                !may(&p.subscribe, "_INBOX.UOTHER.x"),
                "{} reads another inbox",
                role.name
            );
            assert!(
                may(&p.subscribe, "_INBOX.UKEY.x"),
                "{} cannot read its inbox",
                role.name
            );
        }
        assert!(may(&of("admin").publish, "$JS.API.STREAM.DELETE.BO_IN"));
    }

    #[test]
    fn each_inbound_subject_has_the_publishers_the_contract_names() {
        let s = Subjects::new("bo").unwrap();
        let expected = [
            (s.order_placed(), vec!["allocation", "oms"]),
            (s.order_cancel(), vec!["allocation", "oms"]),
            (s.stock_received(), vec!["allocation", "wms"]),
            (s.shipment_confirmed(), vec!["allocation", "wms"]),
            (s.supply_updated(), vec!["allocation", "purchasing"]),
            (s.sku_upserted(), vec!["allocation", "product-master"]),
            (
                s.customer_preferences(),
                vec!["allocation", "oms", "operator"],
            ),
            (s.notify_email(), vec!["notifier"]),
            (s.purchase_request(), vec!["replenishment-trigger"]),
            (s.order_accepted(), vec!["order-intake", "allocation"]),
        ];
        for (subject, roles) in expected {
            let actual: Vec<&str> = ROLES
                .iter()
                .filter(|r| r.name != "admin" && may(&of(r.name).publish, &subject))
                .map(|r| r.name)
                .collect();
            assert_eq!(actual, roles, "who publishes {subject}");
        }
    }

    #[test]
    fn the_gateway_reads_notifications_only() {
        let gateway = of("gateway");
        assert!(may(&gateway.subscribe, "bo.out.notify.sms"));
        for subject in [
            "bo.in.order.placed",
            "bo.order.accepted",
            "bo.customer.event",
            "bo.out.order.status",
            ">",
        ] {
            assert!(
                !may(&gateway.subscribe, subject),
                "the gateway reads {subject}"
            );
        }
        for api in [
            "$JS.API.CONSUMER.CREATE.BO_IN.gateway-notify.bo.in.order.placed",
            "$JS.API.CONSUMER.CREATE.BO_OUT.gateway-notify",
            "$JS.API.CONSUMER.CREATE.BO_OUT.gateway-notify.bo.out.>",
            "$JS.API.CONSUMER.MSG.NEXT.BO_IN.allocation",
            "$JS.API.DIRECT.GET.BO_IN",
            "$JS.API.STREAM.MSG.GET.BO_IN",
        ] {
            assert!(!may(&gateway.publish, api), "the gateway may {api}");
        }
        assert!(may(
            &gateway.publish,
            "$JS.API.CONSUMER.CREATE.BO_OUT.gateway-notify.bo.out.notify.>"
        ));
    }

    #[test]
    fn every_service_pulls_its_own_consumers_and_no_one_else_s() {
        let s = Subjects::new("bo").unwrap();
        for consumer in topology::consumers(&s) {
            let next = format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                s.stream(consumer.stream),
                consumer.name
            );
            for role in ROLES.iter().filter(|r| r.name != "admin") {
                assert_eq!(
                    may(&of(role.name).publish, &next),
                    role.name == consumer.role,
                    "{} on {next}",
                    role.name
                );
            }
        }
    }

    #[test]
    fn readers_consumers_are_named_after_their_filter() {
        assert_eq!(
            reader_consumer("wms", "bo.out.allocation.cancelled"),
            "wms-allocation-cancelled"
        );
        assert_eq!(
            reader_consumer("gateway", "bo.out.notify.>"),
            "gateway-notify"
        );
    }
}
