//! Query strings to API requests and back to links: what the filters, sorting and paging of a page mean,
//! as pure functions. A value that makes no sense is a message for the page (400), never a guess.

use backorder_proto::v1 as pb;
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;

/// Percent-encodes everything but the unreserved characters, for a path segment or a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Undoes [`encode`] (and any other percent-encoding); a broken escape is kept as it is.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path?k=v&...` with the non-empty values, in the order given.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

pub fn order_href(order_id: &str) -> String {
    format!("/orders/{}", encode(order_id))
}

pub fn sku_href(sku: &str) -> String {
    format!("/skus/{}", encode(sku))
}

/// A checkbox or flag: on, 1, true, yes.
fn flag(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "on" | "1" | "true" | "yes"
    )
}

/// "7", "7d", "12h", "2w" (days by default) as a duration.
pub fn parse_age(text: &str) -> Result<Option<prost_types::Duration>, String> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Ok(None);
    }
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let unit = text[digits.len()..].trim();
    let per_unit = match unit {
        "" | "d" | "day" | "days" => 86_400,
        "h" | "hour" | "hours" => 3_600,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => 0,
    };
    let count: i64 = digits.parse().unwrap_or(-1);
    if per_unit == 0 || !(0..=36_500).contains(&count) {
        return Err(format!(
            "\"older than\" must be a number of days (7 or 7d), hours (12h) or weeks (2w), not {text:?}"
        ));
    }
    Ok(Some(prost_types::Duration {
        seconds: count * per_unit,
        nanos: 0,
    }))
}

/// The worklist's sortable columns, by their name in the query string.
pub const SORTS: [(&str, pb::BackorderOrder); 6] = [
    ("age", pb::BackorderOrder::ByAge),
    ("eta", pb::BackorderOrder::ByEta),
    ("queue", pb::BackorderOrder::ByQueue),
    ("units", pb::BackorderOrder::ByUnits),
    ("order", pb::BackorderOrder::ByOrder),
    ("customer", pb::BackorderOrder::ByCustomer),
];

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const PAGE_SIZES: [u32; 4] = [25, 50, 100, 250];

/// `/`'s query string: filters, search, sorting and paging.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WorklistQuery {
    pub sku: String,
    pub customer: String,
    /// Waiting at least this long: "7d", "12h".
    pub older: String,
    pub late: String,
    pub estimated: String,
    /// Part of an order id, customer id or SKU.
    pub q: String,
    /// One of [`SORTS`]; empty: oldest first.
    pub sort: String,
    pub desc: String,
    pub size: String,
    /// The API's page token of this page; empty: the first.
    pub page: String,
    /// The row offset of this page, for "rows 51–100" (the token is opaque).
    pub at: String,
}

impl WorklistQuery {
    pub fn late_only(&self) -> bool {
        flag(&self.late)
    }

    pub fn estimated_only(&self) -> bool {
        flag(&self.estimated)
    }

    pub fn descending(&self) -> bool {
        flag(&self.desc)
    }

    pub fn offset(&self) -> u64 {
        self.at.trim().parse().unwrap_or(0)
    }

    pub fn page_size(&self) -> Result<u32, String> {
        match self.size.trim() {
            "" => Ok(DEFAULT_PAGE_SIZE),
            text => text
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    format!("the page size must be a number from 1 to 1000, not {text:?}")
                }),
        }
    }

    /// The sort column's name ("age" when none is given).
    pub fn sort_name(&self) -> &str {
        match self.sort.trim() {
            "" => "age",
            name => name,
        }
    }

    pub fn to_request(&self) -> Result<pb::ListBackordersRequest, String> {
        let order_by = SORTS
            .iter()
            .find(|(name, _)| *name == self.sort_name())
            .map(|(_, order)| *order)
            .ok_or_else(|| {
                let names: Vec<&str> = SORTS.iter().map(|(n, _)| *n).collect();
                format!(
                    "cannot sort by {:?}: by {} only",
                    self.sort,
                    names.join(", ")
                )
            })?;
        Ok(pb::ListBackordersRequest {
            sku: self.sku.trim().to_string(),
            customer_id: self.customer.trim().to_string(),
            older_than: parse_age(&self.older)?,
            late_only: self.late_only(),
            estimated_only: self.estimated_only(),
            page_size: self.page_size()?,
            page_token: self.page.trim().to_string(),
            order_by: order_by as i32,
            descending: self.descending(),
            search: self.q.trim().to_string(),
        })
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let on = |b: bool| if b { "on".to_string() } else { String::new() };
        vec![
            ("sku", self.sku.trim().to_string()),
            ("customer", self.customer.trim().to_string()),
            ("older", self.older.trim().to_string()),
            ("late", on(self.late_only())),
            ("estimated", on(self.estimated_only())),
            ("q", self.q.trim().to_string()),
            ("sort", self.sort.trim().to_string()),
            ("desc", on(self.descending())),
            ("size", self.size.trim().to_string()),
            ("page", self.page.trim().to_string()),
            ("at", self.at.trim().to_string()),
        ]
    }

    pub fn href(&self) -> String {
        let params = self.params();
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        link("/", &borrowed)
    }

    /// The same filters on the first page.
    pub fn first_page(&self) -> Self {
        Self {
            page: String::new(),
            at: String::new(),
            ..self.clone()
        }
    }

    /// The link a column heading gives: sort by it, or reverse the order when it already sorts.
    pub fn sorted_by(&self, column: &str) -> Self {
        let same = self.sort_name() == column;
        Self {
            sort: if column == "age" {
                String::new()
            } else {
                column.to_string()
            },
            desc: if same && !self.descending() {
                "on".into()
            } else {
                String::new()
            },
            ..self.first_page()
        }
    }

    pub fn next_page(&self, token: &str, rows_on_this_page: usize) -> Self {
        Self {
            page: token.to_string(),
            at: (self.offset() + rows_on_this_page as u64).to_string(),
            ..self.clone()
        }
    }

    /// Filtered by one more thing (a customer or SKU clicked in a row).
    pub fn only(&self, key: &str, value: &str) -> Self {
        let mut next = self.first_page();
        match key {
            "sku" => next.sku = value.to_string(),
            "customer" => next.customer = value.to_string(),
            _ => {}
        }
        next
    }

    /// Whether any filter or search narrows the list.
    pub fn is_filtered(&self) -> bool {
        [&self.sku, &self.customer, &self.older, &self.q]
            .iter()
            .any(|v| !v.trim().is_empty())
            || self.late_only()
            || self.estimated_only()
    }
}

/// `/kpis`'s query string: the window as dates (both days included) and the narrowing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct KpiQuery {
    pub from: String,
    pub to: String,
    pub customer: String,
    pub sku: String,
}

fn parse_day(field: &str, text: &str) -> Result<Option<NaiveDate>, String> {
    match text.trim() {
        "" => Ok(None),
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("\"{field}\" must be a date like 2026-11-23, not {text:?}")),
    }
}

fn midnight(day: NaiveDate) -> prost_types::Timestamp {
    backorder_runtime::time::to_proto(Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN)))
}

impl KpiQuery {
    /// The window [from's midnight, the midnight after `to`) in UTC; a side not given is the API's default.
    pub fn to_request(&self) -> Result<pb::GetKpisRequest, String> {
        let from = parse_day("from", &self.from)?;
        let to = parse_day("to", &self.to)?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(format!("\"from\" ({from}) is after \"to\" ({to})"));
        }
        Ok(pb::GetKpisRequest {
            from: from.map(midnight),
            to: to.and_then(|d| d.succ_opt()).map(midnight),
            customer_id: self.customer.trim().to_string(),
            sku: self.sku.trim().to_string(),
        })
    }

    pub fn href(&self) -> String {
        link(
            "/kpis",
            &[
                ("from", self.from.trim()),
                ("to", self.to.trim()),
                ("customer", self.customer.trim()),
                ("sku", self.sku.trim()),
            ],
        )
    }
}

/// `/deadletters`'s query string, and what a replay just did (after its redirect).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeadLetterQuery {
    pub service: String,
    pub page: String,
    /// The sequence just replayed, and the message id it went out with.
    pub replayed: String,
    pub id: String,
}

impl DeadLetterQuery {
    pub fn to_request(&self) -> pb::ListDeadLettersRequest {
        pb::ListDeadLettersRequest {
            service: self.service.trim().to_string(),
            sequence: 0,
            page_size: 50,
            page_token: self.page.trim().to_string(),
        }
    }
}

/// `/skus/{sku}`'s query string (or the what-if form posted): a receipt to preview.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SkuQuery {
    pub preview: String,
    pub po: String,
}

impl SkuQuery {
    /// `None` when no preview is asked for.
    pub fn to_preview(&self, sku: &str) -> Option<Result<pb::PreviewReceiptRequest, String>> {
        let text = self.preview.trim();
        if text.is_empty() {
            return None;
        }
        Some(
            text.parse::<i64>()
                .ok()
                .filter(|q| (1..=1_000_000_000).contains(q))
                .map(|quantity| pb::PreviewReceiptRequest {
                    sku: sku.to_string(),
                    quantity,
                    po_id: self.po.trim().to_string(),
                })
                .ok_or_else(|| {
                    format!("the quantity to preview must be a whole number of units from 1, not {text:?}")
                }),
        )
    }
}

/// `/orders/{id}`'s query string after a re-prioritisation (its redirect).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct OrderQuery {
    pub reprioritised: String,
    pub applied: String,
}

impl OrderQuery {
    pub fn applied(&self) -> bool {
        flag(&self.applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &str) -> WorklistQuery {
        serde_urlencoded_like(pairs)
    }

    /// What axum's `Query` does with a query string (serde_urlencoded), for the tests.
    fn serde_urlencoded_like(pairs: &str) -> WorklistQuery {
        let mut q = WorklistQuery::default();
        for pair in pairs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            match k {
                "sku" => q.sku = v,
                "customer" => q.customer = v,
                "older" => q.older = v,
                "late" => q.late = v,
                "estimated" => q.estimated = v,
                "q" => q.q = v,
                "sort" => q.sort = v,
                "desc" => q.desc = v,
                "size" => q.size = v,
                "page" => q.page = v,
                "at" => q.at = v,
                _ => {}
            }
        }
        q
    }

    #[test]
    fn an_empty_query_is_the_whole_list_oldest_first() {
        let request = WorklistQuery::default().to_request().unwrap();
        assert_eq!(
            request,
            pb::ListBackordersRequest {
                page_size: DEFAULT_PAGE_SIZE,
                order_by: pb::BackorderOrder::ByAge as i32,
                ..Default::default()
            }
        );
    }

    #[test]
    fn filters_map_onto_the_request() {
        let request =
            query("sku=%20WIDGET%20&customer=C-1&older=7d&late=on&estimated=1&q=so-&sort=eta&desc=on&size=25&page=tok")
                .to_request()
                .unwrap();
        assert_eq!(request.sku, "WIDGET");
        assert_eq!(request.customer_id, "C-1");
        assert_eq!(request.older_than.unwrap().seconds, 7 * 86_400);
        assert!(request.late_only && request.estimated_only && request.descending);
        assert_eq!(request.search, "so-");
        assert_eq!(request.order_by, pb::BackorderOrder::ByEta as i32);
        assert_eq!(
            (request.page_size, request.page_token.as_str()),
            (25, "tok")
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_message() {
        for (q, word) in [
            ("sort=price", "sort"),
            ("older=soon", "older than"),
            ("older=-3d", "older than"),
            ("size=0", "page size"),
            ("size=5000", "page size"),
        ] {
            let error = query(q).to_request().unwrap_err();
            assert!(error.contains(word), "{q}: {error}");
        }
    }

    #[test]
    fn ages_read_days_hours_and_weeks() {
        let secs = |t: &str| parse_age(t).unwrap().map(|d| d.seconds);
        assert_eq!(secs(""), None);
        assert_eq!(secs("3"), Some(3 * 86_400));
        assert_eq!(secs("3 days"), Some(3 * 86_400));
        assert_eq!(secs("12h"), Some(12 * 3_600));
        assert_eq!(secs("2W"), Some(14 * 86_400));
        assert!(parse_age("3x").is_err());
        assert!(parse_age("d").is_err());
    }

    #[test]
    fn column_links_sort_then_reverse_and_start_again_at_the_first_page() {
        let on_page_two = query("sku=A&page=tok&at=50");
        let by_eta = on_page_two.sorted_by("eta");
        assert_eq!(by_eta.href(), "/?sku=A&sort=eta");
        assert_eq!(by_eta.sorted_by("eta").href(), "/?sku=A&sort=eta&desc=on");
        assert_eq!(
            by_eta.sorted_by("eta").sorted_by("eta").href(),
            "/?sku=A&sort=eta"
        );
        // Age is the default order: its link has no sort at all.
        assert_eq!(by_eta.sorted_by("age").href(), "/?sku=A");
        assert_eq!(query("").sorted_by("age").href(), "/?desc=on");
    }

    #[test]
    fn paging_carries_the_token_and_the_offset() {
        let next = query("late=on").next_page("abc/=", 50);
        assert_eq!(next.href(), "/?late=on&page=abc%2F%3D&at=50");
        assert_eq!(next.offset(), 50);
        assert_eq!(next.next_page("t2", 20).offset(), 70);
        assert_eq!(next.first_page().href(), "/?late=on");
        assert_eq!(
            next.only("customer", "C 1").href(),
            "/?customer=C%201&late=on"
        );
    }

    #[test]
    fn links_escape_what_they_carry() {
        assert_eq!(order_href("SO/1 ä"), "/orders/SO%2F1%20%C3%A4");
        assert_eq!(decode("SO%2F1%20%C3%A4"), "SO/1 ä");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(sku_href("A&B"), "/skus/A%26B");
        assert_eq!(link("/x", &[("a", ""), ("b", "<")]), "/x?b=%3C");
    }

    #[test]
    fn the_kpi_window_includes_both_days() {
        let q = KpiQuery {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            customer: " C-1 ".into(),
            sku: String::new(),
        };
        let request = q.to_request().unwrap();
        let day = |ts: &prost_types::Timestamp| {
            backorder_runtime::time::from_proto(ts)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(
            day(request.from.as_ref().unwrap()),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            day(request.to.as_ref().unwrap()),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(request.customer_id, "C-1");
        assert_eq!(
            KpiQuery::default().to_request().unwrap(),
            pb::GetKpisRequest::default()
        );
        let backwards = KpiQuery {
            from: "2026-11-30".into(),
            to: "2026-11-01".into(),
            ..Default::default()
        };
        assert!(backwards.to_request().unwrap_err().contains("after"));
        let bad = KpiQuery {
            from: "yesterday".into(),
            ..Default::default()
        };
        assert!(bad.to_request().unwrap_err().contains("from"));
    }

    #[test]
    fn a_preview_needs_a_positive_whole_quantity() {
        let ask = |q: &str| {
            SkuQuery {
                preview: q.into(),
                po: "PO-1".into(),
            }
            .to_preview("WIDGET")
        };
        assert_eq!(ask(""), None);
        let request = ask(" 12 ").unwrap().unwrap();
        assert_eq!(
            (
                request.sku.as_str(),
                request.quantity,
                request.po_id.as_str()
            ),
            ("WIDGET", 12, "PO-1")
        );
        for bad in ["0", "-4", "1.5", "ten"] {
            assert!(ask(bad).unwrap().is_err(), "{bad}");
        }
    }
}
