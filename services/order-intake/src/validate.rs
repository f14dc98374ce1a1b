//! Order validation: bytes in, a valid order or every reason it is not one out. Pure, no I/O.

use std::collections::HashSet;

use backorder_proto::v1::{FieldError, OrderPlaced, ShipPolicy};
use prost::Message;

pub const MAX_LINES: usize = 1_000;
pub const MAX_QUANTITY: i64 = 1_000_000_000;
const MAX_ID_LEN: usize = 128;

/// Why an order was refused. `order_id` is `None` when no id could be read from the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub order_id: Option<String>,
    pub errors: Vec<FieldError>,
}

impl Rejection {
    /// One line for logs and dead letters.
    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Decodes and checks an `OrderPlaced`.
pub fn validate(bytes: &[u8]) -> Result<OrderPlaced, Rejection> {
    let order = OrderPlaced::decode(bytes).map_err(|e| Rejection {
        order_id: salvage_order_id(bytes),
        errors: vec![decode_error(&e)],
    })?;
    let errors = check(&order);
    if errors.is_empty() {
        Ok(order)
    } else {
        let order_id = Some(order.order_id.clone()).filter(|id| !id.trim().is_empty());
        Err(Rejection { order_id, errors })
    }
}

fn check(order: &OrderPlaced) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_id(&mut errors, "order_id", &order.order_id);
    if let Some(customer) = &order.customer {
        if !customer.email.is_empty() && !looks_like_email(&customer.email) {
            errors.push(error(
                "customer.email",
                format!("{:?} is not an email address", customer.email),
            ));
        }
        if !customer.phone.is_empty() && !looks_like_e164(&customer.phone) {
            errors.push(error(
                "customer.phone",
                format!(
                    "{:?} is not a phone number in E.164 form (+ and 8 to 15 digits)",
                    customer.phone
                ),
            ));
        }
    }
    if ShipPolicy::try_from(order.ship_policy).is_err() {
        errors.push(error(
            "ship_policy",
            format!("{} is not a known ship policy", order.ship_policy),
        ));
    }
    if order
        .placed_at
        .as_ref()
        .is_some_and(|at| backorder_runtime::time::from_proto(at).is_none())
    {
        errors.push(error("placed_at", "is not a valid timestamp"));
    }
    if order.lines.is_empty() {
        errors.push(error("lines", "an order needs at least one line"));
    }
    if order.lines.len() > MAX_LINES {
        errors.push(error(
            "lines",
            format!(
                "{} lines; at most {MAX_LINES} are accepted",
                order.lines.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, line) in order.lines.iter().enumerate() {
        let at = |field: &str| format!("lines[{i}].{field}");
        if line.line_no == 0 {
            errors.push(error(at("line_no"), "must be 1 or more"));
        } else if !seen.insert(line.line_no) {
            errors.push(error(
                at("line_no"),
                format!("line number {} appears more than once", line.line_no),
            ));
        }
        check_id(&mut errors, &at("sku"), &line.sku);
        if line.quantity <= 0 {
            errors.push(error(
                at("quantity"),
                format!("must be positive, got {}", line.quantity),
            ));
        } else if line.quantity > MAX_QUANTITY {
            errors.push(error(
                at("quantity"),
                format!("{} is more than {MAX_QUANTITY}", line.quantity),
            ));
        }
    }
    errors
}

fn check_id(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() {
        errors.push(error(field, "is missing"));
    } else if value.len() > MAX_ID_LEN {
        errors.push(error(
            field,
            format!("is {} bytes long; at most {MAX_ID_LEN}", value.len()),
        ));
    } else if value.chars().any(char::is_control) || value != value.trim() {
        errors.push(error(
            field,
            format!("{value:?} has control characters or surrounding spaces"),
        ));
    }
}

fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace))
}

fn looks_like_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Turns prost's "failed to decode Protobuf message: OrderLine.quantity: OrderPlaced.lines: invalid wire
/// type: ..." into field `lines.quantity` and the description.
fn decode_error(e: &prost::DecodeError) -> FieldError {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut path = Vec::new();
    let mut rest = text;
    while let Some((head, tail)) = rest.split_once(": ") {
        match head.split_once('.') {
            Some((message, field)) if is_ident(message) && is_ident(field) => {
                path.push(field);
                rest = tail;
            }
            _ => break,
        }
    }
    // prost lists the innermost field first.
    path.reverse();
    error(path.join("."), format!("cannot decode OrderPlaced: {rest}"))
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads field 1 (`order_id`) from bytes that do not decode as a whole, so the OMS still hears which order
/// was refused. Walks the top-level fields and stops at the first that cannot be parsed.
pub fn salvage_order_id(mut bytes: &[u8]) -> Option<String> {
    let mut found = None;
    while !bytes.is_empty() {
        let key = prost::encoding::decode_varint(&mut bytes).ok()?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut bytes).ok()?;
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                bytes = bytes.get(width..)?;
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut bytes).ok()?).ok()?;
                let value = bytes.get(..len)?;
                if field == 1 {
                    found = std::str::from_utf8(value).ok().map(str::to_string);
                }
                bytes = &bytes[len..];
            }
            _ => return found.filter(|id| !id.trim().is_empty()),
        }
    }
    found.filter(|id| !id.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::{Customer, OrderLine};

    fn order() -> OrderPlaced {
        OrderPlaced {
            order_id: "SO-1".into(),
            customer: Some(Customer {
                id: "C-1".into(),
                email: "buyer@example.com".into(),
                phone: "+4915112345678".into(),
                locale: "de".into(),
                ..Default::default()
            }),
            lines: vec![
                OrderLine {
                    line_no: 1,
                    sku: "SKU-A".into(),
                    quantity: 100,
                },
                OrderLine {
                    line_no: 2,
                    sku: "SKU-B".into(),
                    quantity: 1,
                },
            ],
            ..Default::default()
        }
    }

    fn fields(bytes: &[u8]) -> Vec<String> {
        validate(bytes)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_good_order_passes_unchanged() {
        assert_eq!(validate(&order().encode_to_vec()), Ok(order()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut o = order();
        o.order_id = String::new();
        o.lines[0].quantity = 0;
        o.lines[1].line_no = 1;
        o.lines[1].sku = " ".into();
        o.ship_policy = 9;
        o.customer.as_mut().unwrap().email = "nobody".into();
        let rejection = validate(&o.encode_to_vec()).unwrap_err();
        assert_eq!(rejection.order_id, None);
        let fields: Vec<_> = rejection.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "order_id",
                "customer.email",
                "ship_policy",
                "lines[0].quantity",
                "lines[1].line_no",
                "lines[1].sku"
            ]
        );
    }

    #[test]
    fn no_lines_and_negative_quantities_are_refused() {
        let mut o = order();
        o.lines.clear();
        assert_eq!(fields(&o.encode_to_vec()), ["lines"]);
        let mut o = order();
        o.lines[1].quantity = -5;
        let rejection = validate(&o.encode_to_vec()).unwrap_err();
        assert_eq!(rejection.order_id.as_deref(), Some("SO-1"));
        assert_eq!(rejection.errors[0].message, "must be positive, got -5");
    }

    #[test]
    fn a_field_of_the_wrong_wire_type_is_named_and_the_order_id_salvaged() {
        let mut bytes = order().encode_to_vec();
        // Field 3 (lines) sent as a varint instead of a message.
        bytes.extend_from_slice(&[3 << 3, 42]);
        let rejection = validate(&bytes).unwrap_err();
        assert_eq!(rejection.order_id.as_deref(), Some("SO-1"));
        assert_eq!(rejection.errors[0].field, "lines");
        assert!(
            rejection.errors[0].message.contains("wire type"),
            "{:?}",
            rejection.errors[0]
        );

        // The same inside a line: quantity (field 3 of OrderLine) as a string.
        let mut o = order();
        o.lines.truncate(0);
        let mut bytes = o.encode_to_vec();
        let line = [1 << 3, 1, (3 << 3) | 2, 1, b'x'];
        bytes.extend_from_slice(&[(3 << 3) | 2, line.len() as u8]);
        bytes.extend_from_slice(&line);
        let rejection = validate(&bytes).unwrap_err();
        assert_eq!(rejection.errors[0].field, "lines.quantity");
    }

    #[test]
    fn garbage_has_no_order_id() {
        for bytes in [
            &b"\xff\xff\xff"[..],
            b"{\"order_id\":\"SO-1\"}",
            b"\x0a\x05ab",
        ] {
            let rejection = validate(bytes).unwrap_err();
            assert_eq!(rejection.order_id, None, "{bytes:?}");
            assert!(!rejection.summary().is_empty());
        }
    }

    #[test]
    fn emails_and_phones() {
        assert!(looks_like_email("a@b.co"));
        assert!(!looks_like_email("a@b"));
        assert!(!looks_like_email("a b@c.de"));
        assert!(looks_like_e164("+4915112345678"));
        assert!(!looks_like_e164("015112345678"));
        assert!(!looks_like_e164("+49 151"));
    }

    proptest::proptest! {
        /// Whatever the bytes, validation answers and never panics; a refusal always says why.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Err(rejection) = validate(&bytes) {
                proptest::prop_assert!(!rejection.errors.is_empty());
            }
        }
    }
}
