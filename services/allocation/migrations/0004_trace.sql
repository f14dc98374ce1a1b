-- Events leave in the trace of the message that caused them: its W3C traceparent, published as a header.
alter table outbox add column traceparent text;
