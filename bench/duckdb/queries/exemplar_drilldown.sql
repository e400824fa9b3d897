-- DuckDB port of queries/exemplar_drilldown.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: exemplar_drilldown
-- description: From a metric to the requests behind its slowest points: the metric's exemplars
--   with the highest values, each with the span it points at (joined on trace and span id) and
--   the cart that span's trace belongs to (through the replay's attribution, as in the view
--   cart_exemplars; an exemplar of a trace no cart owns is listed with an empty cart), with
--   that cart's outcome, furthest stage, value and last operation. The limit counts
--   exemplars: one whose trace two carts share (through their session) is listed once per cart.
-- param: metric = cart.stage.duration  -- the metric whose exemplars to follow
-- param: limit = 10  -- how many exemplars, highest value first
WITH top AS (
    -- the exemplars listed; named once, read twice: to list them and to find their carts
    SELECT * FROM exemplars
    WHERE metric_name = 'cart.stage.duration'
    ORDER BY value DESC NULLS LAST, timestamp, trace_id, span_id
    LIMIT 10
)
SELECT
    e.metric_name,
    round(e.value, 3) AS exemplar_value,
    e.timestamp AS exemplar_time,
    e.point_timestamp,
    e.point_attributes,
    e.trace_id,
    e.span_id,
    t.operation_name,
    t.service_name,
    round(t.duration_ms, 3) AS span_duration_ms,
    t.status_code AS span_status,
    ce.cart_id,
    c.outcome,
    c.last_stage,
    round(c.total_value, 2) AS cart_value,
    c.last_operation,
    c.suspected_cause
FROM top e
LEFT JOIN (
    -- the carts of the listed exemplars' traces only: the distinct pairs of every cart
    -- event took 1.2 s of the query's 2.8 s at 1M carts
    SELECT DISTINCT x.trace_id, x.cart_id
    FROM cart_events x JOIN top ON top.trace_id = x.trace_id
) ce ON ce.trace_id = e.trace_id
LEFT JOIN traces t ON t.trace_id = e.trace_id AND t.span_id = e.span_id
LEFT JOIN carts c ON c.cart_id = ce.cart_id
ORDER BY e.value DESC NULLS LAST, e.timestamp, e.trace_id, e.span_id, ce.cart_id
