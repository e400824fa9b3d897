-- cartscope's replay (`cartscope detect --explain`, default `reference` model) written for
-- DuckDB, after dataset.sql (an ingested Parquet dataset) or raw.sql (a raw OTLP/JSON export)
-- has made the tables: the as-of time (the latest timestamp in the data), `cart_events`,
-- `carts` (materialised, as cartscope writes it), `stages`, and the derived abandonment points
-- (`metrics_all`, what cartscope adds to `metrics`). The input holds observed rows only (the
-- derived ones were never stored), so nothing filters on them.
-- Differences from DataFusion's dialect: epoch_us(t) for CAST(t AS BIGINT), last(x ORDER BY)
-- for last_value(x ORDER BY).

SET VARIABLE as_of_us = (SELECT max(t) FROM (
    SELECT epoch_us(max(end_time)) AS t FROM traces
    UNION ALL SELECT epoch_us(max(timestamp)) FROM span_events
    UNION ALL SELECT epoch_us(max(timestamp)) FROM metrics));

CREATE VIEW cart_events AS
WITH keyed AS (
    SELECT t.trace_id, t.attributes['cart.id'] AS cart_id FROM traces t
    WHERE t.trace_id IS NOT NULL AND t.attributes['cart.id'] IS NOT NULL),
trace_cart AS (SELECT trace_id, min(cart_id) AS cart_id FROM keyed GROUP BY trace_id)
SELECT tc.cart_id, t.start_time AS time, t.end_time,
       CASE WHEN t.operation_name = 'cart.add_item' THEN 'active'
            WHEN t.operation_name = 'cart.begin_checkout' THEN 'checkout'
            WHEN t.operation_name = 'shipping.calculate_rates' THEN 'shipping'
            WHEN t.operation_name = 'payment.authorize' THEN 'payment'
            WHEN t.operation_name = 'checkout.complete' THEN 'completed' END AS stage,
       CASE WHEN t.operation_name = 'cart.add_item' THEN 1
            WHEN t.operation_name = 'cart.begin_checkout' THEN 2
            WHEN t.operation_name = 'shipping.calculate_rates' THEN 3
            WHEN t.operation_name = 'payment.authorize' THEN 4
            WHEN t.operation_name = 'checkout.complete' THEN 5 END AS stage_order,
       t.operation_name AS operation, t.trace_id, t.span_id, t.duration_ms, t.status_code,
       t.status_message,
       CASE WHEN t.attributes['cart.id'] IS NOT NULL THEN 'attribute' ELSE 'trace' END AS attributed_by,
       t.attributes['user.id'] AS user_id,
       TRY_CAST(t.attributes['cart.item_count'] AS BIGINT) AS item_count,
       TRY_CAST(t.attributes['cart.total_value'] AS DOUBLE) AS total_value,
       coalesce(t.operation_name = 'checkout.complete', false) AS is_success
FROM traces t JOIN trace_cart tc ON t.trace_id = tc.trace_id
WHERE epoch_us(t.end_time) <= getvariable('as_of_us');

CREATE TABLE stages AS SELECT * FROM (VALUES
    ('active', 1, false), ('checkout', 2, false), ('shipping', 3, false),
    ('payment', 4, false), ('completed', 5, true)) AS s(stage, stage_order, success);

CREATE TABLE carts AS
WITH ordered AS (
    SELECT cart_id, time,
           max(end_time) OVER (PARTITION BY cart_id ORDER BY time, end_time, span_id
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM cart_events),
came AS (
    SELECT cart_id,
           coalesce(bool_or(epoch_us(time) >= epoch_us(prev_end) + 1800000000), false) AS came_back
    FROM ordered GROUP BY cart_id),
agg AS (
    SELECT cart_id,
           last(user_id ORDER BY end_time, time, span_id) FILTER (WHERE user_id IS NOT NULL) AS user_id,
           min(time) AS first_seen,
           max(end_time) AS last_activity,
           max(stage_order) AS stage_order,
           last(item_count ORDER BY end_time, time, span_id) FILTER (WHERE item_count IS NOT NULL) AS item_count,
           last(total_value ORDER BY end_time, time, span_id) FILTER (WHERE total_value IS NOT NULL) AS total_value,
           last(operation ORDER BY end_time, time, span_id) AS last_operation,
           last(duration_ms ORDER BY end_time, time, span_id) AS last_op_duration_ms,
           last(status_code ORDER BY end_time, time, span_id) AS last_op_status,
           last(trace_id ORDER BY end_time, time, span_id) AS last_trace_id,
           bool_or(is_success) AS converted,
           count(*) AS span_count
    FROM cart_events GROUP BY cart_id),
shaped AS (
    SELECT a.*, c.came_back,
           CASE a.stage_order WHEN 1 THEN 'active' WHEN 2 THEN 'checkout' WHEN 3 THEN 'shipping'
                              WHEN 4 THEN 'payment' WHEN 5 THEN 'completed' END AS last_stage,
           1800000000 AS threshold_us
    FROM agg a JOIN came c ON a.cart_id = c.cart_id),
outcomes AS (
    SELECT *,
           CASE WHEN converted AND came_back THEN 'recovered'
                WHEN converted THEN 'converted'
                WHEN getvariable('as_of_us') - epoch_us(last_activity) >= threshold_us THEN 'abandoned'
                WHEN came_back THEN 'recovered'
                ELSE 'active' END AS outcome
    FROM shaped),
ranked AS (
    SELECT operation_name, duration_ms,
           row_number() OVER (PARTITION BY operation_name ORDER BY duration_ms) AS rn,
           count(*) OVER (PARTITION BY operation_name) AS n
    FROM traces WHERE duration_ms IS NOT NULL),
pct AS (
    SELECT operation_name, duration_ms AS p_ms FROM ranked
    WHERE rn = greatest(CAST(ceil(0.95 * n) AS BIGINT), 1)),
retried AS (
    SELECT cart_id, bool_or(n > 1) AS retry FROM (
        SELECT cart_id, trace_id, operation, count(*) AS n FROM cart_events
        GROUP BY cart_id, trace_id, operation) GROUP BY cart_id),
errors AS (
    SELECT e.cart_id,
           bool_or(e.status_code = 'error'
                   AND epoch_us(e.end_time) >= epoch_us(o.last_activity) - 300000000) AS error_before_idle
    FROM cart_events e JOIN outcomes o ON e.cart_id = o.cart_id GROUP BY e.cart_id)
SELECT o.cart_id, o.user_id, o.first_seen, o.last_activity, o.last_stage, o.item_count,
       o.total_value, o.outcome,
       CASE WHEN o.outcome = 'abandoned' THEN o.last_activity + to_microseconds(o.threshold_us) END AS abandoned_at,
       o.last_operation, o.last_op_duration_ms, o.last_op_status, o.last_trace_id,
       CASE WHEN o.outcome = 'abandoned' THEN
           CASE WHEN o.last_op_duration_ms > 2000 THEN 'slow_response'
                WHEN o.last_op_status = 'error' THEN 'error' END END AS suspected_cause,
       o.span_count,
       list_filter([CASE WHEN coalesce(o.last_op_duration_ms > p.p_ms, false) THEN 'slower_than_p95' END,
                    CASE WHEN coalesce(er.error_before_idle, false) THEN 'error_before_idle' END,
                    CASE WHEN coalesce(r.retry, false) THEN 'retry' END], lambda s: s IS NOT NULL) AS signals
FROM outcomes o
LEFT JOIN pct p ON o.last_operation = p.operation_name
LEFT JOIN retried r ON o.cart_id = r.cart_id
LEFT JOIN errors er ON o.cart_id = er.cart_id
ORDER BY o.cart_id;

-- The derived abandonment points cartscope adds to `metrics` (one per abandoned cart the
-- input did not record), for the queries that read them.
CREATE VIEW metrics_all AS
SELECT name, timestamp, attributes FROM metrics
UNION ALL
SELECT 'cart.state.transitions', abandoned_at,
       MAP {'cart.stage': 'abandoned', 'cart.id': cart_id}
FROM carts c
WHERE outcome = 'abandoned' AND cart_id NOT IN (
    SELECT attributes['cart.id'] FROM metrics
    WHERE name = 'cart.state.transitions' AND attributes['cart.stage'] = 'abandoned'
      AND attributes['cart.id'] IS NOT NULL);
