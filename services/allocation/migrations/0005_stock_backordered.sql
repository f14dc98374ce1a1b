-- The SKU's open backordered units, kept beside the stock figures so a shortage needs no scan of its queue.
alter table stock add column backordered bigint not null default 0;
update stock s set backordered = coalesce(
    (select sum(l.backordered) from order_lines l where l.sku = s.sku and l.backordered > 0), 0);
alter table stock add constraint stock_backordered_not_negative check (backordered >= 0);
