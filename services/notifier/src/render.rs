//! A notice (one or several coalesced events) rendered into an email (subject, plain text, HTML) or an SMS
//! through the templates, in the customer's locale. Pure, no I/O.

use crate::coalesce::{Channel, Notice, message_id};
use crate::context::{sample_events, template_kind};
use crate::templates::Templates;
use backorder_proto::v1::{EmailMessage, SmsMessage};

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("rendering {template}: {detail}")]
pub struct RenderError {
    pub template: String,
    pub detail: String,
}

fn render_part(
    templates: &Templates,
    notice: &Notice,
    part: &str,
    subject: &str,
) -> Result<(String, String), RenderError> {
    let (name, dir) = templates.pick(&notice.customer.locale, &template_kind(notice), part);
    let value = crate::context::value(notice, &dir, subject);
    templates
        .render(&name, value)
        .map(|text| (text, dir))
        .map_err(|e| RenderError {
            template: name,
            detail: format!("{e:#}"),
        })
}

/// The email for `notice` to the customer's address; `None` without one.
pub fn email(templates: &Templates, notice: &Notice) -> Result<Option<EmailMessage>, RenderError> {
    let Some(to) = Channel::Email.address(&notice.customer) else {
        return Ok(None);
    };
    let (subject, dir) = render_part(templates, notice, "subject", "")?;
    // A subject is one line.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let (text_body, _) = render_part(templates, notice, "txt", &subject)?;
    let (html_body, _) = render_part(templates, notice, "html", &subject)?;
    Ok(Some(EmailMessage {
        message_id: message_id(Channel::Email, &notice.event_ids),
        to: to.to_string(),
        subject,
        text_body,
        html_body,
        locale: dir,
        order_id: notice.order_id.clone(),
        kind: notice.kind() as i32,
    }))
}

/// The SMS for `notice` to the customer's phone, GSM-7 and at most two segments; `None` without a phone.
pub fn sms(templates: &Templates, notice: &Notice) -> Result<Option<SmsMessage>, RenderError> {
    let Some(to) = Channel::Sms.address(&notice.customer) else {
        return Ok(None);
    };
    let (text, _) = render_part(templates, notice, "sms", "")?;
    Ok(Some(SmsMessage {
        message_id: message_id(Channel::Sms, &notice.event_ids),
        to: to.to_string(),
        text: crate::sms::fit(&text),
        order_id: notice.order_id.clone(),
        kind: notice.kind() as i32,
    }))
}

/// The email and SMS of the sample order for template kind `kind` in `locale`.
pub fn sample(
    templates: &Templates,
    kind: &str,
    locale: &str,
) -> Result<(EmailMessage, SmsMessage), RenderError> {
    let mut events = sample_events(kind);
    for event in &mut events {
        if let Some(customer) = event.customer.as_mut() {
            customer.locale = locale.to_string();
        }
    }
    let missing = || RenderError {
        template: kind.to_string(),
        detail: "the sample has nothing to tell".into(),
    };
    let notice = crate::coalesce::coalesce(&events).ok_or_else(missing)?;
    let email = email(templates, &notice)?.ok_or_else(missing)?;
    let sms = sms(templates, &notice)?.ok_or_else(missing)?;
    Ok((email, sms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::coalesce;
    use crate::templates::KINDS;
    use backorder_proto::v1::customer_event::Kind;
    use backorder_proto::v1::{Customer, CustomerEvent, CustomerEventLine};

    fn templates() -> &'static Templates {
        static TEMPLATES: std::sync::OnceLock<Templates> = std::sync::OnceLock::new();
        TEMPLATES.get_or_init(|| Templates::shipped().unwrap())
    }

    fn line(
        line_no: u32,
        sku: &str,
        quantity: i64,
        allocated: i64,
        backordered: i64,
    ) -> CustomerEventLine {
        CustomerEventLine {
            line_no,
            sku: sku.into(),
            quantity,
            ordered: allocated + backordered,
            allocated,
            backordered,
            ..Default::default()
        }
    }

    fn event(kind: Kind, locale: &str, lines: Vec<CustomerEventLine>) -> CustomerEvent {
        CustomerEvent {
            event_id: "ev-1".into(),
            kind: kind as i32,
            order_id: "SO-1".into(),
            customer: Some(Customer {
                id: "C-1".into(),
                email: "buyer@example.com".into(),
                phone: "+4915112345678".into(),
                locale: locale.into(),
                time_zone: String::new(),
            }),
            lines,
            ..Default::default()
        }
    }

    #[test]
    fn every_kind_renders_in_every_locale_for_both_channels() {
        let templates = templates();
        for locale in ["en", "de", "de-AT", "fr", ""] {
            let mut subjects = std::collections::HashSet::new();
            for kind in KINDS {
                let (email, sms) = sample(templates, kind, locale).unwrap();
                let lang = if locale.starts_with("de") { "de" } else { "en" };
                assert_eq!(email.locale, lang, "{kind} {locale}");
                assert!(
                    email.subject.contains("SO-1042"),
                    "{kind} {locale}: {}",
                    email.subject
                );
                assert!(!email.subject.contains('\n'));
                assert!(
                    subjects.insert(email.subject.clone()),
                    "{kind} {locale}: subject used twice"
                );
                // Every line says what ships now and what waits, with its date.
                for sku in ["CHAIR-OAK", "TABLE-ASH"] {
                    assert!(
                        email.text_body.contains(sku),
                        "{kind} {locale}: {}",
                        email.text_body
                    );
                    assert!(
                        email.html_body.contains(&format!("<li>{sku}")),
                        "{kind} {locale}: {}",
                        email.html_body
                    );
                }
                let (ships, waits, date, estimated, unknown) = match lang {
                    "de" => (
                        "700 jetzt lieferbar",
                        "500 im Rückstand",
                        "14. Dezember 2026",
                        "geschätzt 21. Dezember 2026",
                        "Termin noch unbekannt",
                    ),
                    _ => (
                        "700 ship now",
                        "500 backordered",
                        "December 14, 2026",
                        "estimated December 21, 2026",
                        "expected date not known yet",
                    ),
                };
                for expected in [ships, waits, date, unknown] {
                    assert!(
                        email.text_body.contains(expected),
                        "{kind} {locale}: {expected:?} in {}",
                        email.text_body
                    );
                    assert!(
                        email.html_body.contains(expected),
                        "{kind} {locale}: {expected:?} in {}",
                        email.html_body
                    );
                }
                if kind != "delay_consent_required" && kind != "update" {
                    assert!(
                        email.text_body.contains(estimated),
                        "{kind} {locale}: {}",
                        email.text_body
                    );
                }
                assert!(
                    email
                        .text_body
                        .contains(if lang == "de" { "1.200" } else { "1,200" })
                );
                assert!(email.html_body.starts_with("<!DOCTYPE html>"));
                assert!(email.html_body.contains(&format!("<html lang=\"{lang}\">")));
                // The SKU with markup is escaped in HTML and kept in the plain text.
                assert!(
                    email
                        .html_body
                        .contains("LAMP-&lt;b&gt;&amp;&quot;BRASS&quot;"),
                    "{}",
                    email.html_body
                );
                assert!(!email.html_body.contains("<b>"));
                assert!(email.text_body.contains("LAMP-<b>&\"BRASS\""));
                let order_word = if lang == "de" {
                    "Bestellung SO-1042"
                } else {
                    "Order SO-1042"
                };
                assert!(
                    sms.text.starts_with(order_word),
                    "{kind} {locale}: {}",
                    sms.text
                );
                assert!(crate::sms::units(&sms.text) <= crate::sms::MAX_UNITS);
                assert!(
                    sms.text.chars().all(|c| crate::sms::units_of(c).is_some()),
                    "{}",
                    sms.text
                );
                assert_eq!(sms.to, "+4915112345678");
            }
        }
    }

    #[test]
    fn the_german_backorder_email() {
        let e = event(
            Kind::Backordered,
            "de-DE",
            vec![line(1, "SKU-A", 30, 70, 30)],
        );
        let notice = coalesce(&[e]).unwrap();
        let email = email(templates(), &notice).unwrap().unwrap();
        assert_eq!(
            email.subject,
            "Ihre Bestellung SO-1: 30 Artikel im Rückstand"
        );
        assert!(
            email.text_body.contains("- SKU-A (100 bestellt): 70 jetzt lieferbar, 30 im Rückstand (Termin noch unbekannt)\n"),
            "{}",
            email.text_body
        );
        assert_eq!(email.message_id, "email/ev-1");
        assert_eq!(email.kind, Kind::Backordered as i32);
        let sms = sms(templates(), &notice).unwrap().unwrap();
        assert_eq!(
            sms.text,
            "Bestellung SO-1: 30 Artikel im Rückstand. SKU-A: 30 (Termin offen)"
        );
        assert_eq!(sms.message_id, "sms/ev-1");
    }

    #[test]
    fn absurd_dates_and_quantities_still_render_the_message() {
        // A date chrono holds but no calendar page does (year 10000), one before the epoch of the bounds, and
        // the largest quantities: the customer still hears, the date reads as not known.
        let far = prost_types::Timestamp {
            seconds: 253_402_300_800,
            nanos: 0,
        };
        let mut l = line(1, "SKU-A", i64::MAX, 0, 0);
        (l.ordered, l.allocated, l.backordered) = (i64::MAX, i64::MAX, i64::MAX);
        l.eta = Some(far);
        l.promised_eta = Some(prost_types::Timestamp {
            seconds: -62_135_596_801,
            nanos: 0,
        });
        let mut e = event(Kind::DelayConsentRequired, "de", vec![l.clone()]);
        e.respond_by = Some(far);
        let mut other = event(Kind::Backordered, "en", vec![l]);
        other.event_id = "ev-2".into();
        for events in [vec![e.clone()], vec![e, other]] {
            let notice = coalesce(&events).unwrap();
            let email = email(templates(), &notice).unwrap().unwrap();
            assert!(email.text_body.contains("SKU-A"), "{}", email.text_body);
            assert!(!email.text_body.contains("10000"), "{}", email.text_body);
            let sms = sms(templates(), &notice).unwrap().unwrap();
            assert!(sms.text.contains("SO-1"), "{}", sms.text);
        }
    }

    #[test]
    fn one_item_is_singular_in_english() {
        let e = event(Kind::Shipped, "en", vec![line(1, "SKU-A", 1, 0, 0)]);
        let email = email(templates(), &coalesce(&[e]).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(email.subject, "Your order SO-1: 1 item shipped");
    }

    #[test]
    fn no_email_without_an_address_and_no_sms_without_a_phone() {
        let mut e = event(Kind::Backordered, "en", vec![line(1, "SKU-A", 3, 0, 3)]);
        e.customer.as_mut().unwrap().email = " ".into();
        e.customer.as_mut().unwrap().phone = String::new();
        let notice = coalesce(&[e]).unwrap();
        assert_eq!(email(templates(), &notice).unwrap(), None);
        assert_eq!(sms(templates(), &notice).unwrap(), None);
    }

    #[test]
    fn a_coalesced_message_has_a_coalesced_id_and_lists_every_line() {
        let events: Vec<CustomerEvent> = (1..=3)
            .map(|i| {
                let mut e = event(
                    Kind::Backordered,
                    "en",
                    vec![line(i, &format!("SKU-{i}"), 2, 0, 2)],
                );
                e.event_id = format!("ev-{i}");
                e
            })
            .collect();
        let notice = coalesce(&events).unwrap();
        let email = email(templates(), &notice).unwrap().unwrap();
        assert!(email.message_id.starts_with("email/coalesced-"));
        assert_eq!(email.subject, "Your order SO-1: 6 items backordered");
        for i in 1..=3 {
            assert!(
                email
                    .text_body
                    .contains(&format!("SKU-{i} (2 ordered): 2 backordered")),
                "{}",
                email.text_body
            );
        }
    }

    fn hostile_timestamp()
    -> impl proptest::strategy::Strategy<Value = Option<prost_types::Timestamp>> {
        use proptest::prelude::*;
        proptest::option::of(
            (
                prop_oneof![
                    Just(i64::MIN),
                    Just(i64::MAX),
                    Just(253_402_300_800i64),
                    Just(-62_135_596_801i64),
                    any::<i64>()
                ],
                prop_oneof![
                    Just(-1i32),
                    Just(1_000_000_000i32),
                    Just(0i32),
                    any::<i32>()
                ],
            )
                .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
        )
    }

    fn hostile_quantity() -> impl proptest::strategy::Strategy<Value = i64> {
        use proptest::prelude::*;
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            Just(0i64),
            any::<i64>()
        ]
    }

    proptest::proptest! {
        /// No content of a customer event (allocation's, so trusted, but not to the point of a panic) stops
        /// rendering: extreme quantities and timestamps, template syntax, markup and control characters in the
        /// strings. The message renders.
        #[test]
        fn no_customer_event_makes_rendering_panic(
            sku in "(\\{\\{ order_id \\}\\}|\\{%|<script>|\\r\\n|\\u{0}|[a-zä😀 ]){0,20}",
            order in "(\\{\\{|\\r\\nBcc: x@y.z|[A-Z0-9-]){1,20}",
            locale in "(en|de|xx-YY|\\.\\./\\.\\.|\\u{0}|)",
            kind in 1i32..=8,
            quantities in proptest::collection::vec((hostile_quantity(), hostile_quantity(), hostile_quantity(), hostile_quantity()), 1..4),
            eta in hostile_timestamp(),
            promised in hostile_timestamp(),
            respond_by in hostile_timestamp(),
        ) {
            let lines = quantities
                .iter()
                .enumerate()
                .map(|(i, (q, a, b, s))| CustomerEventLine {
                    line_no: i as u32,
                    sku: sku.clone(),
                    quantity: *q,
                    ordered: a.wrapping_add(*b),
                    allocated: *a,
                    backordered: *b,
                    shipped: *s,
                    cancelled: *q,
                    eta,
                    promised_eta: promised,
                    eta_late: *q % 2 == 0,
                    ..Default::default()
                })
                .collect();
            let mut e = event(Kind::try_from(kind).unwrap(), &locale, lines);
            e.order_id = order;
            e.respond_by = respond_by;
            e.occurred_at = eta;
            if let Some(notice) = coalesce(&[e.clone(), e]) {
                let email = email(templates(), &notice);
                proptest::prop_assert!(email.is_ok(), "{email:?}");
                let sms = sms(templates(), &notice);
                proptest::prop_assert!(sms.is_ok(), "{sms:?}");
            }
        }
    }

    proptest::proptest! {
        /// However many and however long the SKUs and order id, the SMS fits two segments and starts with the
        /// order.
        #[test]
        fn an_sms_never_exceeds_two_segments(
            skus in proptest::collection::vec("[A-Za-z0-9äöüß€😀 ./-]{1,60}", 1..30),
            order in "[A-Za-z0-9-]{1,40}",
            locale in "(en|de|de-AT|fr|)",
            kind in 1i32..=8,
            quantity in 1i64..1_000_000_000,
        ) {
            let lines = skus.iter().enumerate().map(|(i, sku)| line(i as u32 + 1, sku, quantity, 0, quantity)).collect();
            let mut e = event(Kind::try_from(kind).unwrap(), &locale, lines);
            e.order_id = order.clone();
            let notice = coalesce(&[e]).unwrap();
            let text = sms(templates(), &notice).unwrap().unwrap().text;
            proptest::prop_assert!(crate::sms::units(&text) <= crate::sms::MAX_UNITS, "{text}");
            proptest::prop_assert!(text.contains(&order), "{text}");
        }
    }
}
