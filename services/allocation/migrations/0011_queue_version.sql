-- The version of a SKU's waiting lines, kept by allocation's queue cache (engine/queues.rs): every batch that
-- writes a SKU's lines gives its stock row a new one. From a sequence, so a number is never given twice, also
-- when the transaction that drew it rolls back; every existing row gets one of its own.
create sequence stock_queue_version;
alter table stock add column queue_version bigint not null default nextval('stock_queue_version');
