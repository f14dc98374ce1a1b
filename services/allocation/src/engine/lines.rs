//! An order line as the engine reads it, and the reads and the one update of lines every command shares.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Work;
use crate::decide::promises::Dates;
use crate::events::LineState;
use crate::rules::{LineUnits, LineView};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct LineRow {
    pub order_id: String,
    pub line_no: i32,
    pub sku: String,
    pub ordered: i64,
    pub allocated: i64,
    pub backordered: i64,
    pub shipped: i64,
    pub cancelled: i64,
    pub released: i64,
    pub preorder: bool,
    pub eta: Option<DateTime<Utc>>,
    pub eta_estimated: bool,
    pub eta_late: bool,
    pub eta_told: Option<DateTime<Utc>>,
    pub promised_eta: Option<DateTime<Utc>>,
}

impl LineRow {
    pub fn units(&self) -> LineUnits {
        LineUnits {
            ordered: self.ordered,
            allocated: self.allocated,
            backordered: self.backordered,
            shipped: self.shipped,
            cancelled: self.cancelled,
        }
    }

    pub fn state(&self) -> LineState {
        LineState {
            line_no: self.line_no,
            sku: self.sku.clone(),
            units: self.units(),
            preorder: self.preorder,
            held: self.allocated - self.released,
            eta: self.eta,
            eta_estimated: self.eta_estimated,
            eta_late: self.eta_late,
            promised_eta: self.promised_eta,
        }
    }

    pub fn dates(&self) -> Dates {
        Dates {
            backordered: self.backordered,
            eta: self.eta,
            told: self.eta_told,
            promised: self.promised_eta,
        }
    }

    pub fn view(&self) -> LineView {
        LineView {
            units: self.units(),
            released: self.released,
            preorder: self.preorder,
        }
    }
}

/// The columns of a [`LineRow`], as a literal so queries stay static strings.
macro_rules! line_columns {
    ($t:literal) => {
        concat!(
            $t,
            "order_id, ",
            $t,
            "line_no, ",
            $t,
            "sku, ",
            $t,
            "ordered, ",
            $t,
            "allocated, ",
            $t,
            "backordered, ",
            $t,
            "shipped, ",
            $t,
            "cancelled, ",
            $t,
            "released, ",
            $t,
            "preorder, ",
            $t,
            "eta, ",
            $t,
            "eta_estimated, ",
            $t,
            "eta_late, ",
            $t,
            "eta_told, ",
            $t,
            "promised_eta"
        )
    };
}

/// A change of a line's units, as differences.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Delta {
    pub allocated: i64,
    pub backordered: i64,
    pub shipped: i64,
    pub cancelled: i64,
    pub released: i64,
}

impl Work<'_> {
    /// The lines of `order_ids` as they are now, by order and line.
    pub(super) async fn lines_of_orders(
        &mut self,
        order_ids: &[String],
    ) -> Result<Vec<LineRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = any($1) order by order_id, line_no"
        ))
        .bind(order_ids)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// The lines of one order as they are now.
    pub(super) async fn lines_of(&mut self, order_id: &str) -> Result<Vec<LineRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "select ",
            line_columns!(""),
            " from order_lines where order_id = $1 order by line_no"
        ))
        .bind(order_id)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// Adds `changes` to the lines; a line that gets allocated units is stamped as allocated now. A SKU whose
    /// queue changed is marked for a new projection, caused by `cause`.
    pub(super) async fn change_lines(
        &mut self,
        changes: &[(String, i32, Delta)],
        cause: &str,
    ) -> Result<Vec<LineRow>, sqlx::Error> {
        let column = |f: fn(&Delta) -> i64| changes.iter().map(|c| f(&c.2)).collect::<Vec<_>>();
        let rows: Vec<LineRow> = sqlx::query_as(concat!(
            "update order_lines l set
                 allocated = l.allocated + d.allocated, backordered = l.backordered + d.backordered,
                 shipped = l.shipped + d.shipped, cancelled = l.cancelled + d.cancelled,
                 released = l.released + d.released,
                 allocated_at = case when d.allocated > 0 then $8 else l.allocated_at end,
                 eta = case when l.backordered + d.backordered = 0 then null else l.eta end,
                 backordered_since = case when l.backordered + d.backordered = 0 then null
                                          when l.backordered = 0 then $8
                                          else l.backordered_since end,
                 first_backordered_at = case when l.backordered + d.backordered > 0
                                             then coalesce(l.first_backordered_at, $8)
                                             else l.first_backordered_at end,
                 ready_at = case when l.backordered + d.backordered > 0 then null
                                 when l.backordered > 0
                                      and l.allocated + d.allocated + l.shipped + d.shipped > 0 then $8
                                 else l.ready_at end
             from unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
                  as d(order_id, line_no, allocated, backordered, shipped, cancelled, released)
             where l.order_id = d.order_id and l.line_no = d.line_no
             returning ",
            line_columns!("l.")
        ))
        .bind(changes.iter().map(|c| c.0.clone()).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(column(|d| d.allocated))
        .bind(column(|d| d.backordered))
        .bind(column(|d| d.shipped))
        .bind(column(|d| d.cancelled))
        .bind(column(|d| d.released))
        .bind(self.now)
        .fetch_all(&mut *self.tx)
        .await?;
        self.lines_written(rows.iter().map(|row| row.sku.clone()));
        // `returning` comes in no particular order: pair each row with its change by key.
        let waiting: HashMap<(&str, i32), i64> = changes
            .iter()
            .map(|(order_id, line_no, delta)| ((order_id.as_str(), *line_no), delta.backordered))
            .collect();
        for row in &rows {
            let change = waiting[&(row.order_id.as_str(), row.line_no)];
            if change != 0 {
                self.stock_mut(&row.sku).backordered += change;
                self.skus.reproject(&row.sku, cause, true);
            }
        }
        Ok(rows)
    }
}
