//! Order validation: bytes in, a valid order or every reason it is not one out. Pure, no I/O.

use std::collections::HashSet;

use backorder_proto::v1::{Customer, FieldError, OrderPlaced, ShipPolicy};
use backorder_runtime::config::{ConfigError, Source, parse_or};
use backorder_runtime::limits::{self, Check, MAX_ID_LEN};
use prost::Message;

/// The most field errors one rejection lists: enough to fix an order, and a rejection of a huge order stays
/// far below NATS's payload limit (each line could otherwise add an error larger than itself).
pub const MAX_ERRORS: usize = 100;
/// The highest `BO_MAX_ORDER_LINES`: 10^6 lines of at most 10^9 units still sum far below `i64::MAX`.
pub const MAX_MAX_LINES: usize = 1_000_000;

/// The bounds an operator can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `BO_MAX_ORDER_LINES`, default [`limits::DEFAULT_MAX_LINES`].
    pub max_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_lines: limits::DEFAULT_MAX_LINES,
        }
    }
}

impl Limits {
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let key = "BO_MAX_ORDER_LINES";
        let max_lines = parse_or(source, key, limits::DEFAULT_MAX_LINES)?;
        if !(1..=MAX_MAX_LINES).contains(&max_lines) {
            return Err(ConfigError::Invalid {
                key: key.into(),
                value: max_lines.to_string(),
                reason: format!("must be 1..={MAX_MAX_LINES}"),
            });
        }
        Ok(Self { max_lines })
    }
}

/// Why an order was refused. `order_id` is `None` when no usable id could be read from the bytes.
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

/// Decodes and checks an `OrderPlaced` within the default [`Limits`].
pub fn validate(bytes: &[u8]) -> Result<OrderPlaced, Rejection> {
    validate_with(bytes, &Limits::default())
}

/// Decodes and checks an `OrderPlaced`.
pub fn validate_with(bytes: &[u8], limits: &Limits) -> Result<OrderPlaced, Rejection> {
    let order = OrderPlaced::decode(bytes).map_err(|e| Rejection {
        order_id: salvage_order_id(bytes),
        errors: vec![decode_error(&e)],
    })?;
    let errors = check(&order, limits);
    if errors.is_empty() {
        Ok(order)
    } else {
        Err(Rejection {
            order_id: usable_id(order.order_id),
            errors,
        })
    }
}

/// An order id the rejection can carry back: not blank and bounded (a 10 KB "id" ties the rejection to no
/// order the OMS knows, so it is parked for an operator as well).
fn usable_id(id: String) -> Option<String> {
    Some(id).filter(|id| !id.trim().is_empty() && id.len() <= MAX_ID_LEN)
}

/// Every violation, in the .proto's field order with the lines last, cut at [`MAX_ERRORS`].
fn check(order: &OrderPlaced, limits: &Limits) -> Vec<FieldError> {
    let mut check = Check::new();
    check.id("order_id", &order.order_id);
    if let Some(customer) = &order.customer {
        check_customer(&mut check, customer);
    }
    check.priority("priority", order.priority);
    if ShipPolicy::try_from(order.ship_policy).is_err() {
        check.fail(
            "ship_policy",
            format!("{} is not a known ship policy", order.ship_policy),
        );
    }
    check.date("placed_at", order.placed_at.as_ref());
    check.name("channel", &order.channel);
    if order.lines.is_empty() {
        check.fail("lines", "an order needs at least one line");
    }
    if order.lines.len() > limits.max_lines {
        check.fail(
            "lines",
            format!(
                "{} lines; at most {} are accepted (BO_MAX_ORDER_LINES)",
                order.lines.len(),
                limits.max_lines
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, line) in order.lines.iter().enumerate() {
        if check.violations.len() > MAX_ERRORS {
            break;
        }
        let at = |field: &str| format!("lines[{i}].{field}");
        if line.line_no == 0 {
            check.fail(at("line_no"), "must be 1 or more");
        } else if !seen.insert(line.line_no) {
            check.fail(
                at("line_no"),
                format!("line number {} appears more than once", line.line_no),
            );
        }
        check.id(&at("sku"), &line.sku);
        check.quantity(&at("quantity"), line.quantity, 1);
    }
    let mut errors: Vec<FieldError> = check
        .violations
        .into_iter()
        .map(|v| error(v.field, v.message))
        .collect();
    if errors.len() > MAX_ERRORS {
        errors.truncate(MAX_ERRORS);
        errors.push(error(
            "",
            format!("more errors not listed: at most {MAX_ERRORS} are, fix these and send the order again"),
        ));
    }
    errors
}

fn check_customer(check: &mut Check, customer: &Customer) {
    // Optional: an OMS may place orders of guests, and the notifier copes with customers without an id.
    check.optional_id("customer.id", &customer.id);
    check.email("customer.email", &customer.email);
    check.phone("customer.phone", &customer.phone);
    check.locale("customer.locale", &customer.locale);
    check.time_zone("customer.time_zone", &customer.time_zone);
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
            _ => return found.and_then(usable_id),
        }
    }
    found.and_then(usable_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backorder_proto::v1::OrderLine;
    use backorder_runtime::limits::MAX_QUANTITY;

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

    fn ts(year: i32) -> backorder_proto::Timestamp {
        backorder_runtime::time::to_proto(limits::start_of_year(year))
    }

    /// The order with `change` made is refused with exactly one error, on `field`, saying `says`.
    #[track_caller]
    fn refused(change: impl FnOnce(&mut OrderPlaced), field: &str, says: &str) {
        let mut o = order();
        change(&mut o);
        let rejection = validate(&o.encode_to_vec()).unwrap_err();
        let got: Vec<_> = rejection.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, [field], "{}", rejection.summary());
        assert!(
            rejection.errors[0].message.contains(says),
            "{field}: {:?} does not say {says:?}",
            rejection.errors[0].message
        );
    }

    fn customer(o: &mut OrderPlaced) -> &mut Customer {
        o.customer.as_mut().unwrap()
    }

    fn lines(count: usize) -> Vec<OrderLine> {
        (1..=count)
            .map(|i| OrderLine {
                line_no: i as u32,
                sku: format!("SKU-{i}"),
                quantity: 1,
            })
            .collect()
    }

    #[test]
    fn ids_are_bounded() {
        refused(
            |o| o.order_id = "O".repeat(129),
            "order_id",
            "is 129 bytes long; at most 128",
        );
        refused(
            |o| o.order_id = "SO-1\n".into(),
            "order_id",
            "\"SO-1\\n\" has control characters",
        );
        refused(
            |o| o.lines[1].sku = "S".repeat(1000),
            "lines[1].sku",
            "... (1000 characters) is 1000 bytes long; at most 128",
        );
        refused(
            |o| customer(o).id = "C".repeat(10_240),
            "customer.id",
            "is 10240 bytes long; at most 128",
        );
        refused(
            |o| customer(o).id = " C-1".into(),
            "customer.id",
            "surrounding spaces",
        );
    }

    #[test]
    fn contact_fields_are_bounded() {
        refused(
            |o| customer(o).email = format!("{}@example.com", "a".repeat(250)),
            "customer.email",
            "is 262 bytes long; at most 254",
        );
        refused(
            |o| customer(o).email = "a@.".into(),
            "customer.email",
            "is not an email address",
        );
        refused(
            |o| customer(o).phone = "+0049151123456".into(),
            "customer.phone",
            "E.164",
        );
        refused(
            |o| customer(o).phone = "0151 1234567".into(),
            "customer.phone",
            "E.164",
        );
        refused(
            |o| customer(o).locale = "not a locale".into(),
            "customer.locale",
            "is not a BCP 47 language tag",
        );
        refused(
            |o| customer(o).locale = format!("en-{}", ["abcdefgh"; 4].join("-")),
            "customer.locale",
            "at most 35 characters",
        );
        refused(
            |o| customer(o).time_zone = "Mars/Olympus_Mons".into(),
            "customer.time_zone",
            "\"Mars/Olympus_Mons\" is not an IANA time zone",
        );
        refused(
            |o| customer(o).time_zone = "+02:00".into(),
            "customer.time_zone",
            "is not an IANA time zone",
        );
    }

    #[test]
    fn channel_priority_and_date_are_bounded() {
        refused(
            |o| o.channel = "c".repeat(65),
            "channel",
            "is 65 bytes long; at most 64",
        );
        refused(
            |o| o.channel = "web\u{7}".into(),
            "channel",
            "control characters",
        );
        refused(
            |o| o.priority = 1_000_001,
            "priority",
            "1000001 is outside -1000000..=1000000",
        );
        refused(
            |o| o.priority = i32::MIN,
            "priority",
            "-2147483648 is outside",
        );
        refused(
            |o| o.placed_at = Some(ts(2200)),
            "placed_at",
            "2200-01-01T00:00:00+00:00 is outside the years 2000..=2199",
        );
        refused(
            |o| o.placed_at = Some(ts(1999)),
            "placed_at",
            "outside the years",
        );
        refused(
            |o| {
                o.placed_at = Some(backorder_proto::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                })
            },
            "placed_at",
            "is not a valid timestamp",
        );
    }

    #[test]
    fn lines_and_quantities_are_bounded() {
        refused(
            |o| o.lines = lines(1_001),
            "lines",
            "1001 lines; at most 1000 are accepted (BO_MAX_ORDER_LINES)",
        );
        refused(
            |o| o.lines[0].quantity = MAX_QUANTITY + 1,
            "lines[0].quantity",
            "1000000001 is more than 1000000000",
        );
        refused(
            |o| o.lines[1].quantity = i64::MIN,
            "lines[1].quantity",
            "must be positive",
        );
        refused(|o| o.ship_policy = -1, "ship_policy", "not a known");
    }

    #[test]
    fn values_at_the_bounds_pass() {
        let mut o = order();
        o.order_id = "O".repeat(128);
        o.lines = lines(1_000);
        o.lines[0].quantity = MAX_QUANTITY;
        o.lines[1].sku = "S".repeat(128);
        o.priority = -1_000_000;
        o.channel = "c".repeat(64);
        o.placed_at = Some(backorder_proto::Timestamp {
            seconds: limits::start_of_year(2200).timestamp() - 1,
            nanos: 999_999_999,
        });
        let c = customer(&mut o);
        c.id = "C".repeat(128);
        c.email = format!("{}@example.com", "a".repeat(242));
        c.locale = "zh-Hant-TW".into();
        c.time_zone = "America/Argentina/Buenos_Aires".into();
        assert_eq!(validate(&o.encode_to_vec()), Ok(o.clone()));
        o.priority = 1_000_000;
        o.placed_at = Some(ts(2000));
        assert!(validate(&o.encode_to_vec()).is_ok());
    }

    #[test]
    fn the_customer_and_its_id_are_optional() {
        let mut o = order();
        customer(&mut o).id.clear();
        assert!(validate(&o.encode_to_vec()).is_ok());
        o.customer = None;
        assert!(validate(&o.encode_to_vec()).is_ok());
    }

    #[test]
    fn bo_max_order_lines_sets_the_bound() {
        use std::collections::HashMap;
        let none = HashMap::<&str, &str>::new();
        assert_eq!(Limits::from_source(&none).unwrap().max_lines, 1_000);
        let two = Limits::from_source(&HashMap::from([("BO_MAX_ORDER_LINES", "2")])).unwrap();
        let mut o = order();
        assert!(validate_with(&o.encode_to_vec(), &two).is_ok());
        o.lines = lines(3);
        let rejection = validate_with(&o.encode_to_vec(), &two).unwrap_err();
        assert_eq!(rejection.errors[0].field, "lines");
        assert!(rejection.errors[0].message.contains("3 lines; at most 2"));
        for bad in ["0", "1000001", "-1", "many"] {
            let error = Limits::from_source(&HashMap::from([("BO_MAX_ORDER_LINES", bad)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains("BO_MAX_ORDER_LINES"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_id_too_long_to_tie_the_rejection_to_an_order_is_not_echoed() {
        let mut o = order();
        o.order_id = "O".repeat(10_000);
        assert_eq!(validate(&o.encode_to_vec()).unwrap_err().order_id, None);
        // Nor when salvaged from bytes that do not decode.
        let mut bytes = o.encode_to_vec();
        bytes.extend_from_slice(&[3 << 3, 42]);
        assert_eq!(validate(&bytes).unwrap_err().order_id, None);
    }

    #[test]
    fn a_huge_bad_order_gets_a_bounded_rejection() {
        let mut o = order();
        o.lines = lines(50_000);
        for line in &mut o.lines {
            line.quantity = 0;
        }
        let bytes = o.encode_to_vec();
        let rejection = validate(&bytes).unwrap_err();
        assert_eq!(rejection.errors.len(), MAX_ERRORS + 1);
        assert_eq!(rejection.errors[0].field, "lines");
        assert_eq!(rejection.errors[MAX_ERRORS].field, "");
        assert!(rejection.errors[MAX_ERRORS].message.contains("more errors"));
        let size: usize = rejection.errors.iter().map(|e| e.encoded_len()).sum();
        assert!(
            size < 10_000,
            "{size} bytes of errors for {} bytes",
            bytes.len()
        );
    }

    /// The dotted paths of `OrderPlaced` a `FieldError` may name, with `[i]` for line indices; empty for the
    /// message as a whole.
    fn is_known_field(field: &str) -> bool {
        const KNOWN: [&str; 18] = [
            "",
            "order_id",
            "customer",
            "customer.id",
            "customer.email",
            "customer.phone",
            "customer.locale",
            "customer.time_zone",
            "lines",
            "lines.line_no",
            "lines.sku",
            "lines.quantity",
            "priority",
            "ship_policy",
            "placed_at",
            "placed_at.seconds",
            "placed_at.nanos",
            "channel",
        ];
        // Checks index lines (`lines[12].sku`); decode errors cannot (`lines.sku`).
        match field
            .strip_prefix("lines[")
            .and_then(|rest| rest.split_once("]."))
        {
            Some((index, tail)) => {
                !index.is_empty()
                    && index.bytes().all(|b| b.is_ascii_digit())
                    && KNOWN.contains(&format!("lines.{tail}").as_str())
            }
            None => KNOWN.contains(&field),
        }
    }

    #[test]
    fn known_fields() {
        for good in [
            "",
            "order_id",
            "lines[3].quantity",
            "customer.time_zone",
            "lines.quantity",
        ] {
            assert!(is_known_field(good), "{good}");
        }
        for bad in [
            "lines[x].sku",
            "lines[3]",
            "customer[1].id",
            "foo",
            "lines[].sku",
        ] {
            assert!(!is_known_field(bad), "{bad}");
        }
    }

    fn any_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            ".{0,40}",
            "[A-Za-z0-9@.+/_ -]{0,12}",
            (0..400usize).prop_map(|n| "x".repeat(n)),
            Just(String::new()),
            Just("Europe/Berlin".to_string()),
            Just("+4915112345678".to_string()),
            Just("a@b.co".to_string()),
        ]
    }

    fn any_order() -> impl proptest::strategy::Strategy<Value = OrderPlaced> {
        use proptest::prelude::*;
        let customer = proptest::option::of(
            (any_text(), any_text(), any_text(), any_text(), any_text()).prop_map(
                |(id, email, phone, locale, time_zone)| Customer {
                    id,
                    email,
                    phone,
                    locale,
                    time_zone,
                },
            ),
        );
        let line = (0..4u32, any_text(), prop_oneof![any::<i64>(), -2..5i64]).prop_map(
            |(line_no, sku, quantity)| OrderLine {
                line_no,
                sku,
                quantity,
            },
        );
        let placed_at = proptest::option::of(
            (any::<i64>(), any::<i32>())
                .prop_map(|(seconds, nanos)| backorder_proto::Timestamp { seconds, nanos }),
        );
        (
            any_text(),
            customer,
            proptest::collection::vec(line, 0..6),
            any::<i32>(),
            -1..3i32,
            placed_at,
            any_text(),
        )
            .prop_map(
                |(order_id, customer, lines, priority, ship_policy, placed_at, channel)| {
                    OrderPlaced {
                        order_id,
                        customer,
                        lines,
                        priority,
                        ship_policy,
                        placed_at,
                        channel,
                    }
                },
            )
    }

    proptest::proptest! {
        /// Whatever the bytes, validation answers and never panics; a refusal always says why.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Err(rejection) = validate(&bytes) {
                proptest::prop_assert!(!rejection.errors.is_empty());
            }
        }

        /// Whatever the order, every rejection names only fields of `OrderPlaced`, each once per problem, and
        /// an accepted order is within every bound.
        #[test]
        fn every_rejection_names_only_known_fields(order in any_order(), max_lines in 1..5usize, junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4)) {
            let limits = Limits { max_lines };
            let mut bytes = order.encode_to_vec();
            let whole = validate_with(&bytes, &limits);
            match &whole {
                Ok(accepted) => {
                    proptest::prop_assert_eq!(accepted, &order);
                    proptest::prop_assert!((1..=max_lines).contains(&order.lines.len()));
                    proptest::prop_assert!(order.order_id.len() <= MAX_ID_LEN);
                }
                Err(rejection) => {
                    proptest::prop_assert!(!rejection.errors.is_empty());
                    for e in &rejection.errors {
                        proptest::prop_assert!(is_known_field(&e.field), "unknown field {:?}", e.field);
                        proptest::prop_assert!(!e.message.is_empty());
                        proptest::prop_assert!(e.message.len() < 400, "{:?} is not cut", e.message);
                    }
                }
            }
            // Trailing junk makes most orders undecodable: the decode error names a known field as well.
            bytes.extend_from_slice(&junk);
            if let Err(rejection) = validate_with(&bytes, &limits) {
                for e in &rejection.errors {
                    proptest::prop_assert!(is_known_field(&e.field), "unknown field {:?}", e.field);
                }
            }
        }
    }
}
