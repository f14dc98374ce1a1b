-- Hardening against careless and hostile senders.

-- The digest of each handled message's content, and what it asked for in a few words: the same id with the same
-- digest is a duplicate, the same id with another digest a conflict that is refused (naming the first).
alter table processed_messages add column digest text, add column summary text not null default '';

-- Upserts are ordered by where their stream stored them: the stored time first, the sequence second, so the
-- updates of a recreated stream (sequences from 1 again) are newer than what came before.
alter table skus add column stream_published timestamptz not null default '-infinity';
alter table supply add column stream_published timestamptz not null default '-infinity';

-- Cancellations and delay answers for orders allocation has not seen yet, however long the order takes: applied
-- in the transaction that accepts the order.
create table pending_requests (
    message_id  text primary key,
    order_id    text not null,
    kind        text not null,  -- cancel, delay-answer
    payload     bytea not null,
    received_at timestamptz not null
);
create index pending_requests_order on pending_requests (order_id, received_at);
