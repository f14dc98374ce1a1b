//! What an operator asks the store from the command line: `allocation check` (are the books straight?) and
//! `allocation history order <id>` / `allocation history sku <sku>` (the audit trail, explained).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::invariants;

/// One row of the audit trail.
#[derive(Debug, sqlx::FromRow)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub order_id: String,
    pub line_no: i32,
    pub sku: String,
    pub change: String,
    pub quantity: i64,
    pub cause: String,
    pub detail: String,
}

pub enum Subject<'a> {
    Order(&'a str),
    Sku(&'a str),
}

/// The audit trail of an order or a SKU, oldest first.
pub async fn history(pool: &PgPool, of: Subject<'_>) -> Result<Vec<Entry>, sqlx::Error> {
    let (query, key) = match of {
        Subject::Order(id) => (
            "select at, order_id, line_no, sku, change, quantity, cause, detail from line_history
             where order_id = $1 order by id",
            id,
        ),
        Subject::Sku(sku) => (
            "select at, order_id, line_no, sku, change, quantity, cause, detail from line_history
             where sku = $1 order by id",
            sku,
        ),
    };
    sqlx::query_as(query).bind(key).fetch_all(pool).await
}

/// E.g. `2026-11-30 16:03:03  SO-1/1  SKU-A  filled 30  receipt/R-1  queue position 1 at priority 0`.
pub fn line(entry: &Entry) -> String {
    format!(
        "{}  {}/{}  {}  {} {}  {}  {}",
        entry.at.format("%Y-%m-%d %H:%M:%S"),
        entry.order_id,
        entry.line_no,
        entry.sku,
        entry.change,
        entry.quantity,
        entry.cause,
        entry.detail
    )
}

/// Runs an operator command; `Ok(false)` when it found something wrong (the process exits non-zero).
pub async fn run(pool: &PgPool, args: &[String]) -> anyhow::Result<bool> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["check"] => {
            let found = invariants::violations(pool).await?;
            for violation in &found {
                println!("{violation}");
            }
            if found.is_empty() {
                println!("the books are straight: every invariant holds");
            }
            Ok(found.is_empty())
        }
        ["history", kind @ ("order" | "sku"), key] => {
            let of = if *kind == "order" {
                Subject::Order(key)
            } else {
                Subject::Sku(key)
            };
            for entry in history(pool, of).await? {
                println!("{}", line(&entry));
            }
            Ok(true)
        }
        _ => anyhow::bail!(
            "usage: allocation                       run the service\n       \
             allocation check                 check the books' invariants\n       \
             allocation history order <id>    the audit trail of an order\n       \
             allocation history sku <sku>     the audit trail of a SKU"
        ),
    }
}
