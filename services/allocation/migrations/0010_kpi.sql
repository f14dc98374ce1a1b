-- The KPIs (docs/kpis.md): a line's lost units are looked up per line (on time in full, ETA accuracy), and the
-- lines due against their first promise are found by its date.
create index lost_units_line on lost_units (order_id, line_no);
create index order_lines_promised_eta on order_lines (promised_eta) where first_backordered_at is not null;
