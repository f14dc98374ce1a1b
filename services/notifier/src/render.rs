//! What the customer reads: an email (subject, plain text and HTML) and a short SMS for one `CustomerEvent`,
//! in English or German. Pure, no I/O.
//!
//! All wording lives in this module, so that template files can replace it without touching the service.

use backorder_proto::v1::customer_event::Kind;
use backorder_proto::v1::{CustomerEvent, CustomerEventLine, EmailMessage, SmsMessage};
use chrono::{DateTime, Utc};

/// The most characters (not bytes) an SMS text may have.
pub const SMS_MAX_CHARS: usize = 160;

/// The languages texts exist in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    /// German for a BCP 47 locale whose language is `de` (`de`, `de-DE`, `de_AT`), English for anything else,
    /// the empty locale included.
    pub fn from_locale(locale: &str) -> Self {
        let language = locale.trim().split(['-', '_']).next().unwrap_or_default();
        if language.eq_ignore_ascii_case("de") {
            Lang::De
        } else {
            Lang::En
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }
}

/// `email/<event_id>`: the same on every delivery of the event, so a redelivery is dropped as a duplicate.
pub fn email_message_id(event_id: &str) -> String {
    format!("email/{event_id}")
}

/// `sms/<event_id>`, see [`email_message_id`].
pub fn sms_message_id(event_id: &str) -> String {
    format!("sms/{event_id}")
}

/// The email for `event`; `None` when the customer has no email address or the event has no known kind.
pub fn email(event: &CustomerEvent) -> Option<EmailMessage> {
    let customer = event.customer.as_ref()?;
    let to = customer.email.trim();
    let kind = known_kind(event)?;
    if to.is_empty() {
        return None;
    }
    let lang = Lang::from_locale(&customer.locale);
    let order = event.order_id.as_str();
    let subject = subject(lang, kind, order, total(event));
    let intro = intro(lang, kind, order);
    let lines: Vec<String> = event
        .lines
        .iter()
        .map(|line| line_text(lang, kind, line))
        .collect();
    let respond_by = event
        .respond_by
        .as_ref()
        .and_then(backorder_runtime::time::from_proto);
    let closing = closing(lang, kind, respond_by);

    let mut text_body = format!("{}\n\n{intro}\n\n", greeting(lang));
    for line in &lines {
        text_body.push_str(&format!("- {line}\n"));
    }
    text_body.push('\n');
    for sentence in &closing {
        text_body.push_str(&format!("{sentence}\n"));
    }

    let mut html_body = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n\
         <p>{}</p>\n<p>{}</p>\n<ul>\n",
        lang.tag(),
        escape_html(&subject),
        escape_html(greeting(lang)),
        escape_html(&intro),
    );
    for line in &lines {
        html_body.push_str(&format!("<li>{}</li>\n", escape_html(line)));
    }
    html_body.push_str("</ul>\n");
    for sentence in &closing {
        html_body.push_str(&format!("<p>{}</p>\n", escape_html(sentence)));
    }
    html_body.push_str("</body>\n</html>\n");

    Some(EmailMessage {
        message_id: email_message_id(&event.event_id),
        to: to.to_string(),
        subject,
        text_body,
        html_body,
        locale: lang.tag().to_string(),
        order_id: event.order_id.clone(),
        kind: kind as i32,
    })
}

/// The SMS for `event`, at most [`SMS_MAX_CHARS`] characters; `None` when the customer has no phone number
/// or the event has no known kind.
pub fn sms(event: &CustomerEvent) -> Option<SmsMessage> {
    let customer = event.customer.as_ref()?;
    let to = customer.phone.trim();
    let kind = known_kind(event)?;
    if to.is_empty() {
        return None;
    }
    let lang = Lang::from_locale(&customer.locale);
    // An SMS has room only for the lines the event is about (the email lists them all).
    let details: Vec<String> = event
        .lines
        .iter()
        .filter(|line| line.quantity > 0)
        .map(|line| sms_line(lang, kind, line))
        .collect();
    let mut text = sms_headline(lang, kind, &event.order_id, total(event));
    if !details.is_empty() {
        text.push(' ');
        text.push_str(&details.join("; "));
    }
    Some(SmsMessage {
        message_id: sms_message_id(&event.event_id),
        to: to.to_string(),
        text: shorten(&text, SMS_MAX_CHARS),
        order_id: event.order_id.clone(),
        kind: kind as i32,
    })
}

/// `text` unchanged when it has at most `max` characters; else cut at the last word boundary that leaves room
/// for a closing "…" (mid-word only when the text has no boundary that early), trailing separators dropped.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let Some(keep) = max.checked_sub(1) else {
        return String::new();
    };
    // Byte offset of the first character that does not fit; it exists since the text is longer than `max`.
    let end = text
        .char_indices()
        .nth(keep)
        .map_or(text.len(), |(at, _)| at);
    let head = &text[..end];
    let cut = if text[end..].starts_with(char::is_whitespace) {
        head
    } else {
        match head.rfind(char::is_whitespace) {
            Some(at) => &head[..at],
            None => head,
        }
    };
    let cut = cut
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '.' | '-'));
    format!("{cut}…")
}

/// Escapes the five characters that are markup in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn known_kind(event: &CustomerEvent) -> Option<Kind> {
    Kind::try_from(event.kind)
        .ok()
        .filter(|kind| *kind != Kind::Unspecified)
}

/// The units the event is about, over all lines.
fn total(event: &CustomerEvent) -> i64 {
    event
        .lines
        .iter()
        .fold(0i64, |sum, line| sum.saturating_add(line.quantity.max(0)))
}

fn items(lang: Lang, n: i64) -> String {
    match lang {
        Lang::En if n == 1 => "1 item".to_string(),
        Lang::En => format!("{n} items"),
        Lang::De => format!("{n} Artikel"),
    }
}

fn eta(line: &CustomerEventLine) -> Option<DateTime<Utc>> {
    line.eta
        .as_ref()
        .and_then(backorder_runtime::time::from_proto)
}

fn greeting(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Hello,",
        Lang::De => "Guten Tag,",
    }
}

fn subject(lang: Lang, kind: Kind, order: &str, n: i64) -> String {
    let items = items(lang, n);
    match lang {
        Lang::En => match kind {
            Kind::Unspecified | Kind::Backordered => {
                format!("Your order {order}: {items} backordered")
            }
            Kind::EtaChanged => format!("Your order {order}: new expected date for {items}"),
            Kind::ReadyToShip => format!("Your order {order}: {items} ready to ship"),
            Kind::Shipped => format!("Your order {order}: {items} shipped"),
            Kind::Completed => format!("Your order {order} is complete"),
            Kind::Cancelled => format!("Your order {order}: {items} cancelled"),
            Kind::Preordered => format!("Your order {order}: {items} pre-ordered"),
            Kind::DelayConsentRequired => {
                format!("Your order {order}: {items} delayed, do you still want them?")
            }
        },
        Lang::De => match kind {
            Kind::Unspecified | Kind::Backordered => {
                format!("Ihre Bestellung {order}: {items} im Rückstand")
            }
            Kind::EtaChanged => format!("Ihre Bestellung {order}: neuer Liefertermin für {items}"),
            Kind::ReadyToShip => format!("Ihre Bestellung {order}: {items} versandbereit"),
            Kind::Shipped => format!("Ihre Bestellung {order}: {items} verschickt"),
            Kind::Completed => format!("Ihre Bestellung {order} ist vollständig"),
            Kind::Cancelled => format!("Ihre Bestellung {order}: {items} storniert"),
            Kind::Preordered => format!("Ihre Bestellung {order}: {items} vorbestellt"),
            Kind::DelayConsentRequired => {
                format!("Ihre Bestellung {order}: {items} verzögert, möchten Sie warten?")
            }
        },
    }
}

fn intro(lang: Lang, kind: Kind, order: &str) -> String {
    match lang {
        Lang::En => match kind {
            Kind::Unspecified | Kind::Backordered => format!(
                "Some items of your order {order} are not in stock right now. We ship what we have and send \
                 the rest as soon as it arrives."
            ),
            Kind::EtaChanged => format!(
                "The expected date for backordered items of your order {order} has changed."
            ),
            Kind::ReadyToShip => {
                format!("More items of your order {order} are in stock and ready to ship.")
            }
            Kind::Shipped => format!("Part of your order {order} is on its way."),
            Kind::Completed => {
                format!(
                    "The last items of your order {order} are on their way. Your order is now complete."
                )
            }
            Kind::Cancelled => format!("Items of your order {order} have been cancelled."),
            Kind::Preordered => format!(
                "Some items of your order {order} are pre-orders: they are not released yet. We send them as \
                 soon as they arrive."
            ),
            Kind::DelayConsentRequired => format!(
                "Items of your order {order} will arrive much later than the date we first gave you. We are \
                 sorry. Below are the new dates."
            ),
        },
        Lang::De => match kind {
            Kind::Unspecified | Kind::Backordered => format!(
                "Einige Artikel Ihrer Bestellung {order} sind im Moment nicht vorrätig. Wir versenden, was da \
                 ist, und liefern den Rest, sobald er eintrifft."
            ),
            Kind::EtaChanged => format!(
                "Der voraussichtliche Liefertermin für Artikel im Rückstand aus Ihrer Bestellung {order} hat sich \
                 geändert."
            ),
            Kind::ReadyToShip => {
                format!("Weitere Artikel Ihrer Bestellung {order} sind vorrätig und versandbereit.")
            }
            Kind::Shipped => format!("Ein Teil Ihrer Bestellung {order} ist unterwegs."),
            Kind::Completed => format!(
                "Die letzten Artikel Ihrer Bestellung {order} sind unterwegs. Ihre Bestellung ist damit vollständig."
            ),
            Kind::Cancelled => format!("Artikel Ihrer Bestellung {order} wurden storniert."),
            Kind::Preordered => format!(
                "Einige Artikel Ihrer Bestellung {order} sind vorbestellt: Sie erscheinen erst noch. Wir liefern \
                 sie, sobald sie eintreffen."
            ),
            Kind::DelayConsentRequired => format!(
                "Artikel Ihrer Bestellung {order} kommen deutlich später als zuerst angekündigt. Das tut uns \
                 leid. Unten finden Sie die neuen Termine."
            ),
        },
    }
}

fn closing(lang: Lang, kind: Kind, respond_by: Option<DateTime<Utc>>) -> Vec<String> {
    let keep_posted = match lang {
        Lang::En => "We will let you know as soon as anything changes.",
        Lang::De => "Wir informieren Sie, sobald sich etwas ändert.",
    };
    let thanks = match lang {
        Lang::En => "Thank you for your order.",
        Lang::De => "Vielen Dank für Ihre Bestellung.",
    };
    match (kind, respond_by) {
        (Kind::Completed, _) => vec![thanks.into()],
        (Kind::DelayConsentRequired, Some(by)) => {
            let ask = match lang {
                Lang::En => format!(
                    "Please tell us by {} whether you want to wait for them. Without an answer we cancel the \
                     delayed items.",
                    by.format("%B %-d, %Y")
                ),
                Lang::De => format!(
                    "Bitte sagen Sie uns bis zum {}, ob Sie darauf warten möchten. Ohne Antwort stornieren wir \
                     die verzögerten Artikel.",
                    by.format("%d.%m.%Y")
                ),
            };
            vec![ask, thanks.into()]
        }
        _ => vec![keep_posted.into(), thanks.into()],
    }
}

/// One email line: what the event did to the line (omitted for BACKORDERED, where the line's state says it),
/// then the line as it stands: shipped, shipping now, backordered with its date, cancelled.
fn line_text(lang: Lang, kind: Kind, line: &CustomerEventLine) -> String {
    let q = line.quantity;
    let change = match lang {
        Lang::En => match kind {
            Kind::Unspecified | Kind::Backordered | Kind::Preordered => None,
            Kind::EtaChanged => Some(format!("new date for {q}")),
            Kind::ReadyToShip => Some(format!("{q} now ready to ship")),
            Kind::Shipped => Some(format!("{q} shipped in this shipment")),
            Kind::Completed => Some(format!("{q} shipped in this final shipment")),
            Kind::Cancelled => Some(format!("{q} cancelled")),
            Kind::DelayConsentRequired => Some(format!("{q} delayed")),
        },
        Lang::De => match kind {
            Kind::Unspecified | Kind::Backordered | Kind::Preordered => None,
            Kind::EtaChanged => Some(format!("neuer Termin für {q}")),
            Kind::ReadyToShip => Some(format!("{q} jetzt versandbereit")),
            Kind::Shipped => Some(format!("{q} in dieser Sendung verschickt")),
            Kind::Completed => Some(format!("{q} in der letzten Sendung verschickt")),
            Kind::Cancelled => Some(format!("{q} storniert")),
            Kind::DelayConsentRequired => Some(format!("{q} verzögert")),
        },
    };
    let state = line_state(lang, line);
    match change {
        Some(change) => format!("{}: {change}; {state}", line.sku),
        None => format!("{}: {state}", line.sku),
    }
}

/// E.g. "20 of 100 shipped, 50 ship now, 30 backordered (expected date not known yet)".
fn line_state(lang: Lang, line: &CustomerEventLine) -> String {
    let mut parts: Vec<String> = Vec::new();
    // The first part says "of <ordered>", the ones after it do not repeat it.
    let count = |parts: &Vec<String>, n: i64| match (parts.is_empty(), lang) {
        (true, Lang::En) => format!("{n} of {}", line.ordered),
        (true, Lang::De) => format!("{n} von {}", line.ordered),
        (false, _) => n.to_string(),
    };
    if line.shipped > 0 {
        let n = count(&parts, line.shipped);
        parts.push(match lang {
            Lang::En => format!("{n} shipped"),
            Lang::De => format!("{n} verschickt"),
        });
    }
    if line.allocated > 0 || (parts.is_empty() && line.backordered > 0) {
        let n = count(&parts, line.allocated);
        parts.push(match lang {
            Lang::En => format!("{n} ship now"),
            Lang::De => format!("{n} jetzt lieferbar"),
        });
    }
    if line.backordered > 0 {
        let n = line.backordered;
        let waits = match (lang, line.preorder) {
            (Lang::En, false) => "backordered",
            (Lang::En, true) => "pre-ordered",
            (Lang::De, false) => "im Rückstand",
            (Lang::De, true) => "vorbestellt",
        };
        let note = match (lang, line.eta_estimated, line.eta_late) {
            (Lang::En, true, _) => ", an estimate",
            (Lang::En, _, true) => ", the supplier is late",
            (Lang::De, true, _) => ", geschätzt",
            (Lang::De, _, true) => ", der Lieferant ist verspätet",
            _ => "",
        };
        parts.push(match (lang, eta(line)) {
            (Lang::En, Some(at)) => {
                format!("{n} {waits} (expected {}{note})", at.format("%B %-d, %Y"))
            }
            (Lang::En, None) => format!("{n} {waits} (expected date not known yet)"),
            (Lang::De, Some(at)) => {
                format!(
                    "{n} {waits} (voraussichtlich {}{note})",
                    at.format("%d.%m.%Y")
                )
            }
            (Lang::De, None) => format!("{n} {waits} (Termin noch unbekannt)"),
        });
    }
    if line.cancelled > 0 {
        let n = count(&parts, line.cancelled);
        parts.push(match lang {
            Lang::En => format!("{n} cancelled"),
            Lang::De => format!("{n} storniert"),
        });
    }
    if parts.is_empty() {
        return match lang {
            Lang::En => format!("{} ordered", line.ordered),
            Lang::De => format!("{} bestellt", line.ordered),
        };
    }
    parts.join(", ")
}

fn sms_headline(lang: Lang, kind: Kind, order: &str, n: i64) -> String {
    let items = items(lang, n);
    match lang {
        Lang::En => match kind {
            Kind::Unspecified | Kind::Backordered => format!("Order {order}: {items} backordered."),
            Kind::EtaChanged => format!("Order {order}: new date for {items}."),
            Kind::ReadyToShip => format!("Order {order}: {items} ready to ship."),
            Kind::Shipped => format!("Order {order}: {items} shipped."),
            Kind::Completed => format!("Order {order} is complete."),
            Kind::Cancelled => format!("Order {order}: {items} cancelled."),
            Kind::Preordered => format!("Order {order}: {items} pre-ordered."),
            Kind::DelayConsentRequired => {
                format!("Order {order}: {items} delayed. Reply to keep them.")
            }
        },
        Lang::De => match kind {
            Kind::Unspecified | Kind::Backordered => {
                format!("Bestellung {order}: {items} im Rückstand.")
            }
            Kind::EtaChanged => format!("Bestellung {order}: neuer Termin für {items}."),
            Kind::ReadyToShip => format!("Bestellung {order}: {items} versandbereit."),
            Kind::Shipped => format!("Bestellung {order}: {items} verschickt."),
            Kind::Completed => format!("Bestellung {order} ist vollständig."),
            Kind::Cancelled => format!("Bestellung {order}: {items} storniert."),
            Kind::Preordered => format!("Bestellung {order}: {items} vorbestellt."),
            Kind::DelayConsentRequired => {
                format!("Bestellung {order}: {items} verzögert. Antworten Sie, um zu warten.")
            }
        },
    }
}

/// "SKU-A: 30", with the date for the kinds that are about a backorder.
fn sms_line(lang: Lang, kind: Kind, line: &CustomerEventLine) -> String {
    let mut text = format!("{}: {}", line.sku, line.quantity);
    if matches!(
        kind,
        Kind::Backordered | Kind::Preordered | Kind::EtaChanged | Kind::DelayConsentRequired
    ) {
        text.push_str(&match (lang, eta(line)) {
            (Lang::En, Some(at)) => format!(" (expected {})", at.format("%b %-d, %Y")),
            (Lang::En, None) => " (date not known yet)".to_string(),
            (Lang::De, Some(at)) => format!(" (voraussichtlich {})", at.format("%d.%m.%Y")),
            (Lang::De, None) => " (Termin noch unbekannt)".to_string(),
        });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::Customer;
    use chrono::TimeZone;

    const KINDS: [Kind; 6] = [
        Kind::Backordered,
        Kind::EtaChanged,
        Kind::ReadyToShip,
        Kind::Shipped,
        Kind::Completed,
        Kind::Cancelled,
    ];

    fn event(kind: Kind, locale: &str) -> CustomerEvent {
        CustomerEvent {
            event_id: "ev-1".into(),
            kind: kind as i32,
            order_id: "SO-1".into(),
            customer: Some(Customer {
                id: "C-1".into(),
                email: "buyer@example.com".into(),
                phone: "+4915112345678".into(),
                locale: locale.into(),
            }),
            lines: vec![
                CustomerEventLine {
                    line_no: 1,
                    sku: "SKU-A".into(),
                    quantity: 30,
                    eta: None,
                    ordered: 100,
                    allocated: 70,
                    backordered: 30,
                    shipped: 0,
                    cancelled: 0,
                    ..Default::default()
                },
                CustomerEventLine {
                    line_no: 2,
                    sku: "SKU-B".into(),
                    quantity: 5,
                    eta: Some(backorder_runtime::time::to_proto(
                        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
                    )),
                    ordered: 5,
                    allocated: 0,
                    backordered: 5,
                    shipped: 0,
                    cancelled: 0,
                    ..Default::default()
                },
            ],
            occurred_at: None,
            respond_by: None,
        }
    }

    #[test]
    fn an_sms_names_only_the_lines_the_event_is_about() {
        let mut e = event(Kind::Backordered, "en");
        e.lines[1].quantity = 0;
        let text = sms(&e).unwrap().text;
        assert!(text.contains("SKU-A") && !text.contains("SKU-B"), "{text}");
        // The email still says what ships now for every line.
        assert!(email(&e).unwrap().text_body.contains("SKU-B"));
    }

    #[test]
    fn the_backorder_email_says_what_ships_now_and_what_waits() {
        let email = email(&event(Kind::Backordered, "en")).unwrap();
        assert_eq!(email.subject, "Your order SO-1: 35 items backordered");
        assert!(
            email.text_body.contains(
                "SKU-A: 70 of 100 ship now, 30 backordered (expected date not known yet)"
            ),
            "{}",
            email.text_body
        );
        assert!(
            email
                .text_body
                .contains("SKU-B: 0 of 5 ship now, 5 backordered (expected December 1, 2026)"),
            "{}",
            email.text_body
        );
        assert_eq!(email.to, "buyer@example.com");
        assert_eq!(email.locale, "en");
        assert_eq!(email.order_id, "SO-1");
        assert_eq!(email.kind, Kind::Backordered as i32);
    }

    #[test]
    fn the_german_backorder_email() {
        let email = email(&event(Kind::Backordered, "de-DE")).unwrap();
        assert_eq!(
            email.subject,
            "Ihre Bestellung SO-1: 35 Artikel im Rückstand"
        );
        assert!(
            email.text_body.contains(
                "SKU-A: 70 von 100 jetzt lieferbar, 30 im Rückstand (Termin noch unbekannt)"
            ),
            "{}",
            email.text_body
        );
        assert!(
            email.text_body.contains("(voraussichtlich 01.12.2026)"),
            "{}",
            email.text_body
        );
        assert_eq!(email.locale, "de");
    }

    #[test]
    fn every_kind_renders_in_both_languages() {
        let mut subjects = std::collections::HashSet::new();
        for kind in KINDS {
            let en = email(&event(kind, "en-US")).unwrap();
            let de = email(&event(kind, "de")).unwrap();
            for (message, lang) in [(&en, Lang::En), (&de, Lang::De)] {
                assert!(
                    message.subject.contains("SO-1"),
                    "{kind:?}: {}",
                    message.subject
                );
                assert!(
                    message.text_body.contains("SKU-A"),
                    "{kind:?}: {}",
                    message.text_body
                );
                assert!(
                    message.html_body.contains("<li>SKU-B"),
                    "{kind:?}: {}",
                    message.html_body
                );
                assert_eq!(message.locale, lang.tag());
                assert_eq!(message.kind, kind as i32);
                // Every line tells what is backordered and until when.
                let (waiting, unknown) = match lang {
                    Lang::En => ("30 backordered", "not known yet"),
                    Lang::De => ("30 im Rückstand", "noch unbekannt"),
                };
                assert!(
                    message.text_body.contains(waiting),
                    "{kind:?}: {}",
                    message.text_body
                );
                assert!(
                    message.text_body.contains(unknown),
                    "{kind:?}: {}",
                    message.text_body
                );
                assert!(
                    subjects.insert(message.subject.clone()),
                    "{kind:?}: subject used twice"
                );
            }
            assert_ne!(en.text_body, de.text_body);
            for locale in ["en", "de"] {
                let sms = sms(&event(kind, locale)).unwrap();
                assert!(sms.text.contains("SO-1"), "{kind:?}: {}", sms.text);
                assert!(sms.text.chars().count() <= SMS_MAX_CHARS);
                assert_eq!(sms.kind, kind as i32);
            }
        }
    }

    #[test]
    fn each_kind_names_its_change_per_line() {
        let line = |kind, locale| {
            let email = email(&event(kind, locale)).unwrap();
            email
                .text_body
                .lines()
                .find(|l| l.starts_with("- SKU-A"))
                .unwrap()
                .to_string()
        };
        assert_eq!(
            line(Kind::ReadyToShip, "en"),
            "- SKU-A: 30 now ready to ship; 70 of 100 ship now, 30 backordered (expected date not known yet)"
        );
        assert_eq!(
            line(Kind::Shipped, "en"),
            "- SKU-A: 30 shipped in this shipment; 70 of 100 ship now, 30 backordered (expected date not known yet)"
        );
        assert_eq!(
            line(Kind::Cancelled, "de"),
            "- SKU-A: 30 storniert; 70 von 100 jetzt lieferbar, 30 im Rückstand (Termin noch unbekannt)"
        );

        let mut done = event(Kind::Completed, "en");
        done.lines[0] = CustomerEventLine {
            line_no: 1,
            sku: "SKU-A".into(),
            quantity: 30,
            ordered: 100,
            shipped: 90,
            cancelled: 10,
            ..Default::default()
        };
        let email = email(&done).unwrap();
        assert_eq!(email.subject, "Your order SO-1 is complete");
        assert!(
            email.text_body.contains(
                "- SKU-A: 30 shipped in this final shipment; 90 of 100 shipped, 10 cancelled\n"
            ),
            "{}",
            email.text_body
        );
    }

    #[test]
    fn one_item_is_singular() {
        let mut one = event(Kind::Shipped, "");
        one.lines.truncate(1);
        one.lines[0].quantity = 1;
        assert_eq!(
            email(&one).unwrap().subject,
            "Your order SO-1: 1 item shipped"
        );
    }

    #[test]
    fn locales() {
        for (locale, lang) in [
            ("", Lang::En),
            ("en", Lang::En),
            ("de", Lang::De),
            ("DE-at", Lang::De),
            ("de_CH", Lang::De),
            ("fr", Lang::En),
            ("del", Lang::En),
        ] {
            assert_eq!(Lang::from_locale(locale), lang, "{locale:?}");
        }
    }

    #[test]
    fn customer_strings_are_escaped_in_html() {
        let mut e = event(Kind::Backordered, "en");
        e.order_id = "<b>SO&1</b>".into();
        e.lines[0].sku = "\"><script>alert('x')</script>".into();
        let email = email(&e).unwrap();
        assert!(!email.html_body.contains("<script>"), "{}", email.html_body);
        assert!(!email.html_body.contains("<b>"), "{}", email.html_body);
        assert!(
            email.html_body.contains("&lt;b&gt;SO&amp;1&lt;/b&gt;"),
            "{}",
            email.html_body
        );
        assert!(
            email
                .html_body
                .contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{}",
            email.html_body
        );
        // The plain text is not HTML: it keeps the strings as they are.
        assert!(
            email
                .text_body
                .contains("\"><script>alert('x')</script>: 70 of 100"),
            "{}",
            email.text_body
        );
        assert_eq!(
            escape_html("a&b<c>d\"e'f"),
            "a&amp;b&lt;c&gt;d&quot;e&#39;f"
        );
    }

    #[test]
    fn no_email_without_an_address_and_no_sms_without_a_phone() {
        let mut e = event(Kind::Backordered, "en");
        e.customer.as_mut().unwrap().email = String::new();
        assert_eq!(email(&e), None);
        assert!(sms(&e).is_some());
        e.customer.as_mut().unwrap().email = "  ".into();
        assert_eq!(email(&e), None);

        let mut e = event(Kind::Backordered, "en");
        e.customer.as_mut().unwrap().phone = String::new();
        assert_eq!(sms(&e), None);
        assert!(email(&e).is_some());

        let mut e = event(Kind::Backordered, "en");
        e.customer = None;
        assert_eq!((email(&e), sms(&e)), (None, None));
        let mut e = event(Kind::Unspecified, "en");
        assert_eq!((email(&e), sms(&e)), (None, None));
        e.kind = 42;
        assert_eq!((email(&e), sms(&e)), (None, None));
    }

    #[test]
    fn ids_come_from_the_event_and_nothing_else() {
        let e = event(Kind::Shipped, "de");
        let (email1, sms1) = (email(&e).unwrap(), sms(&e).unwrap());
        assert_eq!(email1.message_id, "email/ev-1");
        assert_eq!(sms1.message_id, "sms/ev-1");
        // Rendering again (a redelivery) gives the very same messages.
        assert_eq!(email(&e).unwrap(), email1);
        assert_eq!(sms(&e).unwrap(), sms1);
    }

    #[test]
    fn a_short_sms_is_left_whole() {
        let sms = sms(&event(Kind::Backordered, "en")).unwrap();
        assert_eq!(
            sms.text,
            "Order SO-1: 35 items backordered. SKU-A: 30 (date not known yet); SKU-B: 5 (expected Dec 1, 2026)"
        );
        assert_eq!(sms.to, "+4915112345678");
    }

    #[test]
    fn a_long_sms_is_cut_at_a_word() {
        let mut e = event(Kind::Shipped, "de");
        e.lines = (0..20)
            .map(|i| CustomerEventLine {
                sku: format!("ÄÖÜÄÖÜ-{i:03}"),
                quantity: 1,
                ..Default::default()
            })
            .collect();
        let text = sms(&e).unwrap().text;
        assert!(text.chars().count() <= SMS_MAX_CHARS, "{text}");
        assert!(
            text.len() > SMS_MAX_CHARS,
            "multi-byte characters count once: {text}"
        );
        let head = text.strip_suffix('…').expect("cut text ends with …");
        assert!(
            head.ends_with(|c: char| c.is_alphanumeric()),
            "cut inside a separator: {text}"
        );
    }

    #[test]
    fn shorten_cases() {
        assert_eq!(shorten("abc def", 7), "abc def");
        assert_eq!(shorten("abc def ghi", 9), "abc def…");
        // The word ending right at the limit stays whole.
        assert_eq!(shorten("abc def ghi", 8), "abc def…");
        assert_eq!(shorten("abc, def", 7), "abc…");
        // One word longer than the limit is cut inside.
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
        assert_eq!(shorten("äöüäöüäöü", 4), "äöü…");
        assert_eq!(shorten("abc", 0), "");
    }

    proptest::proptest! {
        /// However many and however long the SKUs and order id, the SMS fits, and a cut one ends with "…".
        #[test]
        fn an_sms_never_exceeds_160_characters(
            skus in proptest::collection::vec("[A-Za-z0-9äöüß€😀 ./-]{1,80}", 0..40),
            order in "[A-Za-z0-9ä€ -]{1,120}",
            locale in "(en|de|de-DE|)",
            kind in 1i32..=6,
            quantity in 0i64..1_000_000_000,
        ) {
            let mut e = event(Kind::try_from(kind).unwrap(), &locale);
            e.order_id = order;
            e.lines = skus
                .into_iter()
                .map(|sku| CustomerEventLine { sku, quantity, backordered: quantity, ..Default::default() })
                .collect();
            let text = sms(&e).unwrap().text;
            proptest::prop_assert!(text.chars().count() <= SMS_MAX_CHARS, "{} chars: {text}", text.chars().count());
        }

        /// A shortened text is the start of the original followed by "…".
        #[test]
        fn shorten_keeps_a_prefix(text in "[a-zä€ ,.]{0,300}", max in 1usize..200) {
            let short = shorten(&text, max);
            proptest::prop_assert!(short.chars().count() <= max);
            if text.chars().count() <= max {
                proptest::prop_assert_eq!(short, text);
            } else {
                let head = short.strip_suffix('…').unwrap();
                proptest::prop_assert!(text.starts_with(head), "{head:?} is not a prefix of {text:?}");
            }
        }
    }
}
