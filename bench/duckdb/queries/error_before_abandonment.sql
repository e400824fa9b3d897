-- DuckDB port of queries/error_before_abandonment.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: error_before_abandonment
-- description: Abandoned carts whose last operation failed: one row per cart with the failed
--   operation, its status message and the exception its span recorded (exception.type and
--   exception.message of the span's last exception event), and how many abandoned carts
--   failed the same way (same operation and status message), the commonest failures first,
--   then by cart value. last_log_severity and last_log_body: the cart's last error or warning
--   log line up to its abandonment (log records linked to the cart through its traces);
--   null when the export has no logs.
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
    f.last_log_severity,
    f.last_log_body,
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
        l.end_time AS failed_at,
        g.severity AS last_log_severity,
        g.body AS last_log_body
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
    LEFT JOIN traces t
        ON t.trace_id = l.trace_id AND t.span_id = l.span_id
    LEFT JOIN (
        SELECT trace_id, span_id, attributes,
               row_number() OVER (PARTITION BY trace_id, span_id
                                  ORDER BY timestamp DESC, attributes['exception.type'] DESC,
                                           attributes['exception.message'] DESC) AS rn
        FROM span_events
        WHERE name = 'exception'
    ) x ON x.trace_id = l.trace_id AND x.span_id = l.span_id AND x.rn = 1
    LEFT JOIN (
        -- the cart's last warning or error log line (WARN is severity 13 to 16, ERROR 17 to
        -- 20, FATAL 21 to 24; the text when a record has no number)
        SELECT c.cart_id, g.body,
               coalesce(g.severity_text, CASE WHEN g.severity_number >= 21 THEN 'FATAL'
                                              WHEN g.severity_number >= 17 THEN 'ERROR'
                                              ELSE 'WARN' END) AS severity,
               row_number() OVER (PARTITION BY c.cart_id
                                  ORDER BY g.timestamp DESC, g.severity_number DESC,
                                           g.body DESC) AS rn
        FROM logs g
        -- the failed carts' traces first: cart_logs pairs every cart's traces (4.45M
        -- events at 1M carts) before this query keeps the failed ones
        JOIN (SELECT DISTINCT trace_id, cart_id FROM cart_events
              WHERE cart_id IN (SELECT cart_id FROM failed)) ft ON g.trace_id = ft.trace_id
        JOIN failed c ON c.cart_id = ft.cart_id
        WHERE (g.severity_number >= 13
               OR (g.severity_number IS NULL
                   AND upper(g.severity_text) IN ('WARN', 'WARNING', 'ERROR', 'CRITICAL',
                                                  'FATAL', 'SEVERE')))
          AND g.timestamp <= c.abandoned_at
    ) g ON g.cart_id = c.cart_id AND g.rn = 1
) f
ORDER BY carts_with_this_error DESC, f.operation, f.status_message NULLS LAST,
         f.total_value DESC NULLS LAST, f.cart_id
