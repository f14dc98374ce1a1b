-- The allocation-engine rules: ship-complete holds, cancellation, stock corrections that take units back, SKU
-- rules, the demand signal and refusals that are kept.

-- Of a line's allocated units, those the WMS has been told to pick (AllocationCreated) and not yet shipped or
-- withdrawn. A SHIP_COMPLETE order keeps its units reserved but unreleased until every line is allocated.
alter table order_lines add column released bigint not null default 0;
update order_lines set released = allocated;
alter table order_lines add constraint order_lines_released_within_allocated
    check (released >= 0 and released <= allocated);

-- When the line last got units: a stock correction takes back from the most recently allocated first.
alter table order_lines add column allocated_at timestamptz;
update order_lines set allocated_at = placed_at where allocated > 0;

-- The line waits as a pre-order (its SKU was a pre-order SKU when the order arrived).
alter table order_lines add column preorder boolean not null default false;

-- Units given back by a stock correction leave from the lowest priority, most recently allocated lines.
create index order_lines_allocated_tail
    on order_lines (sku, priority, allocated_at desc, placed_at desc, order_id desc, line_no desc)
    where allocated > 0;

-- Product master rules per SKU (from <p>.in.sku.upserted). A SKU without a row follows the configured default.
create table skus (
    sku                    text primary key,
    backorderable          boolean not null,
    max_backorder_quantity bigint not null check (max_backorder_quantity >= 0),  -- 0: no limit
    preorder               boolean not null,
    supplier_id            text not null,
    lead_time_days         integer not null,
    stream_sequence        bigint not null,  -- of the upsert applied: an older redelivery never wins
    updated_at             timestamptz not null default now()
);

-- True demand per SKU and day (of placed_at, UTC): what was ordered, and what of it could not be allocated at
-- once, split into what was backordered and what was cancelled for lack of stock or by a SKU rule.
create table demand (
    sku             text not null,
    day             date not null,
    ordered         bigint not null default 0,
    short           bigint not null default 0,
    backordered     bigint not null default 0,
    cancelled_short bigint not null default 0,
    primary key (sku, day),
    constraint demand_short_adds_up check (short = backordered + cancelled_short and short <= ordered)
);

-- A refused message stays claimed, with why: a redelivery is not refused (or announced) twice.
alter table processed_messages add column refusal text;

-- What the WMS was told to stop picking.
create table allocation_cancellations (
    cancellation_id text primary key,
    order_id        text not null references orders,
    cause           text not null,
    reason          text not null,
    created_at      timestamptz not null default now()
);

create table allocation_cancellation_lines (
    cancellation_id text not null references allocation_cancellations,
    line_no         integer not null,
    sku             text not null,
    quantity        bigint not null check (quantity > 0),
    primary key (cancellation_id, line_no)
);

