-- The backorder desk: what the worklist, the order page and the KPIs need that the store did not keep.

alter table order_lines
    -- What the order got from stock when it arrived (null: accepted before this was kept).
    add column placed_allocated   bigint,
    add column placed_backordered bigint,
    -- Since when the line waits: set when it starts waiting, cleared when nothing waits any more.
    add column backordered_since    timestamptz,
    -- The first time it ever waited (kept): the line counts as a backorder line for on time in full.
    add column first_backordered_at timestamptz,
    -- When its last waiting unit was allocated (it is ready to ship); cleared if it waits again.
    add column ready_at timestamptz;
update order_lines set backordered_since = placed_at, first_backordered_at = placed_at where backordered > 0;
create index order_lines_backordered_since on order_lines (backordered_since) where backordered > 0;
create index order_lines_ready_at on order_lines (ready_at) where first_backordered_at is not null;
create index order_lines_placed_at on order_lines (placed_at);

-- Demand lost for lack of stock: units cancelled because the SKU takes no backorders or no more of them, the
-- customer did not agree to a delay, or the customer cancelled them while they waited.
create table lost_units (
    id          bigserial primary key,
    order_id    text not null,
    line_no     integer not null,
    sku         text not null,
    customer_id text not null,
    reason      text not null
        check (reason in ('not_backorderable', 'over_cap', 'no_consent', 'customer_cancelled')),
    units       bigint not null check (units > 0),
    cause       text not null,
    at          timestamptz not null
);
create index lost_units_at on lost_units (at);

-- Dead letters an operator published again: who, when, why, and where the copy went.
create table dead_letter_replays (
    id              bigserial primary key,
    dlq_stream      text not null,
    dlq_sequence    bigint not null,
    operator        text not null,
    reason          text not null default '',
    message_id      text not null unique,
    subject         text not null,
    stream_sequence bigint not null,
    at              timestamptz not null
);
create index dead_letter_replays_letter on dead_letter_replays (dlq_stream, dlq_sequence, id);
