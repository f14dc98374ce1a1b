//! Subject, stream and dead-letter names, all derived from the one prefix (`BO_PREFIX`), so that two
//! prefixes on one NATS server never share a stream, a consumer or a message.

/// The names of everything on the bus for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// The JetStream streams, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `<p>.in.>`: what the OMS, WMS and purchasing publish.
    Inbound,
    /// Between the services.
    Internal,
    /// `<p>.out.>`: what the OMS, WMS, purchasing and gateways consume.
    Outbound,
    /// `<p>.dlq.>`: messages parked for an operator.
    DeadLetter,
    /// `<p>.ctl.>`: control messages (the simulated clock); the last one per subject is kept.
    Control,
}

impl StreamKind {
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Inbound,
        StreamKind::Internal,
        StreamKind::Outbound,
        StreamKind::DeadLetter,
        StreamKind::Control,
    ];

    fn suffix(self) -> &'static str {
        match self {
            StreamKind::Inbound => "IN",
            StreamKind::Internal => "INTERNAL",
            StreamKind::Outbound => "OUT",
            StreamKind::DeadLetter => "DLQ",
            StreamKind::Control => "CTL",
        }
    }
}

impl Subjects {
    /// A prefix is one subject token of lowercase letters, digits, `-` and `_`; stream names are its upper
    /// case, so a prefix maps to exactly one set of streams.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err("must be 1 to 64 characters of a-z, 0-9, '-' and '_'".into());
        }
        Ok(Self {
            prefix: prefix.to_string(),
        })
    }

    /// Every prefix at once, for NATS permissions: subjects start with the wildcard `*`, and stream and bucket
    /// names (which embed the prefix inside a token, where a wildcard cannot stand) are `*` as a whole.
    pub fn any() -> Self {
        Self {
            prefix: "*".to_string(),
        }
    }

    pub fn is_any(&self) -> bool {
        self.prefix == "*"
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<PREFIX>_<suffix>`, or `*` for [`any`](Self::any).
    fn upper(&self, suffix: &str) -> String {
        if self.is_any() {
            return "*".into();
        }
        format!("{}_{suffix}", self.prefix.to_ascii_uppercase())
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    pub fn order_placed(&self) -> String {
        self.subject("in.order.placed")
    }
    pub fn order_cancel(&self) -> String {
        self.subject("in.order.cancel")
    }
    pub fn stock_received(&self) -> String {
        self.subject("in.stock.received")
    }
    pub fn stock_adjusted(&self) -> String {
        self.subject("in.stock.adjusted")
    }
    pub fn shipment_confirmed(&self) -> String {
        self.subject("in.shipment.confirmed")
    }
    pub fn supply_updated(&self) -> String {
        self.subject("in.supply.updated")
    }
    pub fn sku_upserted(&self) -> String {
        self.subject("in.sku.upserted")
    }
    pub fn delay_answer(&self) -> String {
        self.subject("in.order.delay-answer")
    }
    pub fn customer_preferences(&self) -> String {
        self.subject("in.customer.preferences")
    }
    pub fn order_priority(&self) -> String {
        self.subject("in.order.priority")
    }
    pub fn clock(&self) -> String {
        self.subject("ctl.clock")
    }

    pub fn order_accepted(&self) -> String {
        self.subject("order.accepted")
    }
    /// replenishment-trigger to itself: due requests and reminders are handled in order with the shortages.
    pub fn replenishment_tick(&self) -> String {
        self.subject("replenishment.tick")
    }
    pub fn reorder_needed(&self) -> String {
        self.subject("reorder.needed")
    }
    pub fn customer_event(&self) -> String {
        self.subject("customer.event")
    }

    pub fn order_rejected(&self) -> String {
        self.subject("out.order.rejected")
    }
    pub fn order_status(&self) -> String {
        self.subject("out.order.status")
    }
    pub fn allocation_created(&self) -> String {
        self.subject("out.allocation")
    }
    pub fn allocation_cancelled(&self) -> String {
        self.subject("out.allocation.cancelled")
    }
    pub fn request_refused(&self) -> String {
        self.subject("out.request.refused")
    }
    pub fn purchase_request(&self) -> String {
        self.subject("out.purchase.request")
    }
    pub fn notify_email(&self) -> String {
        self.subject("out.notify.email")
    }
    pub fn notify_sms(&self) -> String {
        self.subject("out.notify.sms")
    }

    /// The query API's subjects: `<p>.api.<endpoint>`, e.g. `api("order.get")`. Core NATS request/reply: no
    /// stream captures them.
    pub fn api(&self, endpoint: &str) -> String {
        self.subject(&format!("api.{endpoint}"))
    }

    /// Where `service` parks the messages it could not handle.
    pub fn dead_letter(&self, service: &str) -> String {
        self.subject(&format!("dlq.{service}"))
    }

    /// replenishment-trigger's key-value bucket, e.g. `BO_REPLENISHMENT`: one per prefix, like the streams.
    pub fn replenishment_bucket(&self) -> String {
        self.upper("REPLENISHMENT")
    }

    /// notifier's key-value bucket, e.g. `BO_NOTIFIER`: messages waiting to be sent, customer preferences.
    pub fn notifier_bucket(&self) -> String {
        self.upper("NOTIFIER")
    }

    /// notifier's record of what it sent, e.g. `BO_NOTIFIER_SENT`, so a replayed event is not sent again.
    pub fn notifier_sent_bucket(&self) -> String {
        self.upper("NOTIFIER_SENT")
    }

    /// Every key-value bucket the services keep under the prefix.
    pub fn buckets(&self) -> Vec<String> {
        vec![
            self.replenishment_bucket(),
            self.notifier_bucket(),
            self.notifier_sent_bucket(),
        ]
    }

    /// The stream's name, e.g. `BO_IN` for prefix `bo`.
    pub fn stream(&self, kind: StreamKind) -> String {
        self.upper(kind.suffix())
    }

    /// The subjects a stream captures.
    pub fn stream_subjects(&self, kind: StreamKind) -> Vec<String> {
        match kind {
            StreamKind::Inbound => vec![self.subject("in.>")],
            StreamKind::Internal => vec![
                self.order_accepted(),
                self.reorder_needed(),
                self.customer_event(),
                self.replenishment_tick(),
            ],
            StreamKind::Outbound => vec![self.subject("out.>")],
            StreamKind::DeadLetter => vec![self.subject("dlq.>")],
            StreamKind::Control => vec![self.subject("ctl.>")],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_prefix() {
        let s = Subjects::new("bo").unwrap();
        assert_eq!(s.order_placed(), "bo.in.order.placed");
        assert_eq!(s.order_accepted(), "bo.order.accepted");
        assert_eq!(s.notify_sms(), "bo.out.notify.sms");
        assert_eq!(s.dead_letter("allocation"), "bo.dlq.allocation");
        assert_eq!(s.api("order.get"), "bo.api.order.get");
        assert_eq!(s.order_priority(), "bo.in.order.priority");
        assert_eq!(s.stream(StreamKind::Inbound), "BO_IN");
        assert_eq!(s.stream(StreamKind::DeadLetter), "BO_DLQ");
    }

    #[test]
    fn buckets_follow_the_prefix() {
        let bucket = |p: &str| Subjects::new(p).unwrap().replenishment_bucket();
        assert_eq!(bucket("bo"), "BO_REPLENISHMENT");
        assert_eq!(bucket("shop-1"), "SHOP-1_REPLENISHMENT");
        assert_ne!(bucket("t-1"), bucket("t_1"));
    }

    #[test]
    fn two_prefixes_share_no_stream_or_subject() {
        let (a, b) = (Subjects::new("t-1").unwrap(), Subjects::new("t_1").unwrap());
        for kind in StreamKind::ALL {
            assert_ne!(a.stream(kind), b.stream(kind));
            for subject in a.stream_subjects(kind) {
                assert!(!b.stream_subjects(kind).contains(&subject));
            }
        }
    }
}
