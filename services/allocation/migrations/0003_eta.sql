-- Honest delivery promises: inbound supply, a projected ETA per backordered line, coalesced ETA notices and the
-- customer's consent to long delays.

-- Open purchase-order lines (from <p>.in.supply.updated; receipts naming the PO reduce them).
create table supply (
    po_id           text not null,
    line_no         integer not null,
    sku             text not null,
    quantity_open   bigint not null check (quantity_open >= 0),
    expected_at     timestamptz not null,
    cancelled       boolean not null,
    stream_sequence bigint not null,  -- of the update applied: an older redelivery never wins
    updated_at      timestamptz not null default now(),
    primary key (po_id, line_no)
);
create index supply_open on supply (sku, expected_at) where quantity_open > 0 and not cancelled;

-- When the SKU's projection would change by itself (a supply date passing, an estimate falling due).
alter table stock add column eta_check_at timestamptz;
create index stock_eta_check on stock (eta_check_at) where eta_check_at is not null;

alter table order_lines
    add column eta           timestamptz,  -- while backordered: when the line is expected ready to ship
    add column eta_estimated boolean not null default false,
    add column eta_late      boolean not null default false,
    add column eta_told      timestamptz,  -- the ETA the customer was last told
    add column promised_eta  timestamptz;  -- the first ETA the customer was told (or agreed to)

alter table orders
    add column eta_notify_due   timestamptz,  -- an ETA_CHANGED is owed at this time (coalesced)
    add column eta_notified_at  timestamptz,  -- the last ETA_CHANGED
    add column consent_due      timestamptz;  -- DELAY_CONSENT_REQUIRED was sent; the answer is needed by then
create index orders_eta_notify_due on orders (eta_notify_due) where eta_notify_due is not null;
create index orders_consent_due on orders (consent_due) where consent_due is not null;
