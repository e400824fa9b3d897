-- name: error_before_abandonment
-- description: Abandoned carts whose last operation failed: one row per cart with the failed
--   operation, its status message and the exception its span recorded (exception.type and
--   exception.message of the span's last exception event), and how many abandoned carts
--   failed the same way (same operation and status message), the commonest failures first,
--   then by cart value. last_log_severity and last_log_body: the cart's last error or warning
--   log line up to its abandonment (log records linked to the cart through its traces, in
--   cart_logs); null when the export has no logs.
WITH failed AS (
    -- the carts listed: abandoned, their last operation failed
    SELECT * FROM carts WHERE outcome = 'abandoned' AND last_op_status = 'error'
),
last AS (
    -- per failed cart, one pass over its events: its last span, and its last warning or
    -- error log line of their traces up to its abandonment. One scan of cart_events, not
    -- one for the spans and one for the logs' traces. Where NULLs go is part of each
    -- pick's keys (below), so that DuckDB's port (bench/duckdb) reads the same.
    SELECT
        p.cart_id,
        -- the last span as the replay orders them (the reverse of its EVENT_ORDER): the
        -- last of its traces' last spans; of spans that tie on all that (no span id), one
        -- with a status message. One pick of a struct, so that its fields come from one
        -- row. last_by keeps the row with the greatest keys, a NULL key greater than any
        -- value (first_value ORDER BY each key DESC NULLS FIRST, but one byte comparison
        -- per row, not a vector of values: 1.14x-1.16x on the whole query at 1M carts); a key
        -- whose NULLs must lose is written as `k IS NOT NULL, k`.
        last_by(named_struct('trace_id', p.trace_id, 'span_id', p.span_id,
                             'end_time', p.end_time, 'status_message', p.status_message),
                p.end_time, p.time, p.span_id, p.trace_id,
                p.status_message IS NOT NULL, p.status_message)
            AS span,
        -- the last log line; a row without one (the LEFT JOIN's NULLs) after every row
        -- with one
        last_by(named_struct('severity', g.severity, 'body', g.body),
                g.timestamp IS NOT NULL, g.timestamp, g.severity_rank, g.body, g.severity)
            AS log
    FROM (
        -- per failed cart and trace, its last span: a trace's log lines meet one row of
        -- the cart's, however many of its spans the trace holds. Joined to every event
        -- instead, a trace of 200 spans and 200 warnings made 40,000 rows of its cart:
        -- 12.6x slower on such traces (bench/log-heavy); that form was 1.1x faster on
        -- generated traces of a few spans. The failed carts' events are kept before the
        -- join to `failed`: joined straight away, every event was shuffled across the
        -- cores first (1.2x slower at 1M carts).
        SELECT cart_id, trace_id, span_id, time, end_time, status_message
        FROM (SELECT cart_id, trace_id, span_id, time, end_time, status_message,
                     row_number() OVER (PARTITION BY cart_id, trace_id
                                        ORDER BY end_time DESC NULLS FIRST,
                                                 time DESC NULLS FIRST,
                                                 span_id DESC NULLS FIRST,
                                                 status_message DESC NULLS LAST) AS n
              FROM cart_events
              WHERE cart_id IN (SELECT cart_id FROM failed))
        WHERE n = 1
    ) p
    JOIN failed c ON c.cart_id = p.cart_id
    LEFT JOIN (
        -- warning and error log lines (WARN is severity 13 to 16, ERROR 17 to 20, FATAL 21
        -- to 24; the text when a record has no number), ranked by the number, else by the
        -- text's, so that of two lines at one time the worse is taken whichever way each
        -- says its severity
        SELECT trace_id, timestamp, body,
               coalesce(severity_text, CASE WHEN severity_number >= 21 THEN 'FATAL'
                                            WHEN severity_number >= 17 THEN 'ERROR'
                                            ELSE 'WARN' END) AS severity,
               coalesce(severity_number,
                        CASE WHEN upper(severity_text) IN ('CRITICAL', 'FATAL') THEN 21
                             WHEN upper(severity_text) IN ('ERROR', 'SEVERE') THEN 17
                             ELSE 13 END) AS severity_rank
        FROM logs
        WHERE severity_number >= 13
           OR (severity_number IS NULL
               AND upper(severity_text) IN ('WARN', 'WARNING', 'ERROR', 'CRITICAL', 'FATAL',
                                            'SEVERE'))
    ) g ON g.trace_id = p.trace_id AND g.timestamp <= c.abandoned_at
    GROUP BY p.cart_id
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
        l.span['status_message'] AS status_message,
        x.attributes['exception.type'] AS exception_type,
        x.attributes['exception.message'] AS exception_message,
        round(c.last_op_duration_ms, 3) AS duration_ms,
        l.span['trace_id'] AS trace_id,
        l.span['span_id'] AS span_id,
        l.span['end_time'] AS failed_at,
        l.log['severity'] AS last_log_severity,
        l.log['body'] AS last_log_body
    FROM failed c
    JOIN last l ON l.cart_id = c.cart_id
    LEFT JOIN (
        SELECT trace_id, span_id, attributes,
               row_number() OVER (PARTITION BY trace_id, span_id
                                  ORDER BY timestamp DESC NULLS FIRST,
                                           attributes['exception.type'] DESC NULLS FIRST,
                                           attributes['exception.message'] DESC NULLS FIRST)
                   AS rn
        FROM span_events
        WHERE name = 'exception'
    ) x ON x.trace_id = l.span['trace_id'] AND x.span_id = l.span['span_id'] AND x.rn = 1
) f
ORDER BY carts_with_this_error DESC, f.operation, f.status_message NULLS LAST,
         f.total_value DESC NULLS LAST, f.cart_id
