-- Outbox rows that can never be published (over the server's max payload, an invalid subject): moved here with
-- the error, in the transaction that deletes them from the outbox, so the rows behind them go out.
create table outbox_dead (
    id          bigint primary key,
    message_id  text not null,
    subject     text not null,
    payload     bytea not null,
    traceparent text,
    created_at  timestamptz not null,
    error       text not null,
    dead_at     timestamptz not null default now()
);
