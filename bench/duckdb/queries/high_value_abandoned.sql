-- DuckDB port of queries/high_value_abandoned.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: high_value_abandoned
-- description: The most valuable abandoned carts: the top `limit` abandoned carts by cart value
--   (as a number), with the last operation before the cart went idle, its duration, status and
--   trace id, and the replay's suspected cause.
-- param: limit = 20  -- how many carts to list
SELECT
    cart_id,
    user_id,
    round(total_value, 2) AS cart_value,
    item_count,
    last_stage,
    last_operation,
    round(last_op_duration_ms, 3) AS last_op_duration_ms,
    last_op_status,
    last_trace_id,
    coalesce(suspected_cause, 'none') AS suspected_cause,
    last_activity,
    abandoned_at
FROM carts
WHERE outcome = 'abandoned'
ORDER BY total_value DESC NULLS LAST, cart_id
LIMIT 20
