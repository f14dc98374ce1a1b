-- The allocation store. Units are counted per SKU (stock) and per order line; CHECK constraints hold the
-- invariants so that a bug fails a transaction instead of corrupting the books.

create table stock (
    sku       text primary key,
    on_hand   bigint not null default 0,  -- physically in the warehouse
    allocated bigint not null default 0,  -- promised to order lines, not yet shipped
    received  bigint not null default 0,  -- all units ever received
    adjusted  bigint not null default 0,  -- net of all adjustments (initial load, counts)
    shipped   bigint not null default 0,  -- all units ever shipped
    constraint stock_on_hand_not_negative check (on_hand >= 0),
    constraint stock_allocated_within_on_hand check (allocated >= 0 and allocated <= on_hand),
    constraint stock_conserved check (received + adjusted = on_hand + shipped)
);

create table orders (
    order_id    text primary key,
    customer_id text not null,
    email       text not null,
    phone       text not null,
    locale      text not null,
    priority    integer not null,
    ship_policy smallint not null,
    placed_at   timestamptz not null,
    channel     text not null,
    status      text not null,
    version     bigint not null default 0,  -- of the last OrderStatus emitted
    accepted_at timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table order_lines (
    order_id    text not null references orders,
    line_no     integer not null,
    sku         text not null,
    -- Copied from the order so the backorder queue is one index scan.
    priority    integer not null,
    placed_at   timestamptz not null,
    ordered     bigint not null,
    allocated   bigint not null default 0,  -- allocated, not yet shipped
    backordered bigint not null default 0,
    shipped     bigint not null default 0,
    cancelled   bigint not null default 0,
    primary key (order_id, line_no),
    constraint order_lines_not_negative
        check (ordered > 0 and allocated >= 0 and backordered >= 0 and shipped >= 0 and cancelled >= 0),
    constraint order_lines_add_up check (ordered = allocated + backordered + shipped + cancelled)
);

-- The backorder queue of a SKU, in the order stock is given out.
create index order_lines_backorder_queue
    on order_lines (sku, priority desc, placed_at, order_id, line_no)
    where backordered > 0;

create table allocations (
    allocation_id text primary key,
    order_id      text not null references orders,
    cause         text not null,  -- the message that led to it
    created_at    timestamptz not null default now()
);

create table allocation_lines (
    allocation_id text not null references allocations,
    line_no       integer not null,
    sku           text not null,
    quantity      bigint not null check (quantity > 0),
    primary key (allocation_id, line_no)
);

create table shipments (
    shipment_id text primary key,
    order_id    text not null references orders,
    shipped_at  timestamptz not null
);

-- Every change of a line, with the message that caused it and why it went that way.
create table line_history (
    id       bigserial primary key,
    order_id text not null,
    line_no  integer not null,
    sku      text not null,
    change   text not null,  -- allocated, backordered, filled, shipped
    quantity bigint not null,
    cause    text not null,
    detail   text not null default '',
    at       timestamptz not null default now()
);
create index line_history_order on line_history (order_id, line_no, id);
create index line_history_sku on line_history (sku, id);

-- Messages whose effects are stored: a redelivery finds its id here and does nothing.
create table processed_messages (
    message_id   text primary key,
    processed_at timestamptz not null default now()
);

-- Events committed with the state change that caused them, relayed to JetStream with message_id as
-- Nats-Msg-Id, then deleted.
create table outbox (
    id         bigserial primary key,
    message_id text not null unique,
    subject    text not null,
    payload    bytea not null,
    created_at timestamptz not null default now()
);
