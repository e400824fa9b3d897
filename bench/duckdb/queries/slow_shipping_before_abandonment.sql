-- DuckDB port of queries/slow_shipping_before_abandonment.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: slow_shipping_before_abandonment
-- description: Carts abandoned right after a slow shipping quote: the abandoned carts whose
--   last operation (the replay's attribution, so quotes without cart.id on the span count too)
--   is the shipping quote and took longer than threshold_ms, with the quote's duration, ranked
--   by cart value (as a number, highest first).
-- param: threshold_ms = 2000  -- quotes slower than this, in milliseconds
-- param: operation = shipping.calculate_rates  -- the span name of the shipping quote
SELECT
    c.cart_id,
    c.user_id,
    round(c.total_value, 2) AS cart_value,
    c.item_count,
    c.last_operation AS operation,
    round(c.last_op_duration_ms, 3) AS quote_duration_ms,
    c.last_op_status AS quote_status,
    c.last_trace_id AS trace_id,
    c.last_activity,
    c.abandoned_at
FROM carts c
WHERE c.outcome = 'abandoned'
  AND c.last_operation = 'shipping.calculate_rates'
  AND c.last_op_duration_ms > 2000
ORDER BY c.total_value DESC NULLS LAST, c.cart_id
