-- The customer's IANA time zone (Customer.time_zone), carried to the notifier for SMS quiet hours. Empty: the
-- notifier's default.
alter table orders add column time_zone text not null default '';
