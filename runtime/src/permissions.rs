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

mod grants;

use crate::subjects::Subjects;
use grants::Grants;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology;

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
