-- name: error_before_abandonment
-- description: Abandoned carts whose last operation failed: one row per cart with the failed
--   operation, its status message and the exception its span recorded (exception.type and
--   exception.message of the span's last exception event), and how many abandoned carts
--   failed the same way (same operation and status message), the commonest failures first,
--   then by cart value.
WITH failed AS (
    -- the carts listed: abandoned, their last operation failed
    SELECT * FROM carts WHERE outcome = 'abandoned' AND last_op_status = 'error'
)
SELECT
    f.operation,
    f.status_message,
    count(*) OVER (PARTITION BY f.operation, f.status_message) AS carts_with_this_error,
    f.exception_type,
    f.exception_message,
    f.cart_id,
    f.user_id,
    f.cart_value,
    f.last_stage,
    f.duration_ms,
    f.trace_id,
    f.span_id,
    f.failed_at
FROM (
    SELECT
        c.cart_id,
        c.user_id,
        round(c.total_value, 2) AS cart_value,
        c.total_value,
        c.last_stage,
        c.last_operation AS operation,
        t.status_message,
        x.attributes['exception.type'] AS exception_type,
        x.attributes['exception.message'] AS exception_message,
        round(c.last_op_duration_ms, 3) AS duration_ms,
        l.trace_id,
        l.span_id,
        l.end_time AS failed_at
    FROM failed c
    JOIN (
        -- the cart's last span, ordered as the replay orders it
        SELECT cart_id, trace_id, span_id, end_time,
               row_number() OVER (PARTITION BY cart_id
                                  ORDER BY end_time DESC, time DESC, span_id DESC) AS rn
        FROM cart_events
        -- only the failed carts' events: numbering every cart's took 5.5 s at 1M carts
        WHERE cart_id IN (SELECT cart_id FROM failed)
    ) l ON l.cart_id = c.cart_id AND l.rn = 1
    LEFT JOIN observed_traces t
        ON t.trace_id = l.trace_id AND t.span_id = l.span_id
    LEFT JOIN (
        SELECT trace_id, span_id, attributes,
               row_number() OVER (PARTITION BY trace_id, span_id
                                  ORDER BY timestamp DESC, attributes['exception.type'] DESC,
                                           attributes['exception.message'] DESC) AS rn
        FROM span_events
        WHERE name = 'exception'
    ) x ON x.trace_id = l.trace_id AND x.span_id = l.span_id AND x.rn = 1
) f
ORDER BY carts_with_this_error DESC, f.operation, f.status_message NULLS LAST,
         f.total_value DESC NULLS LAST, f.cart_id
