-- DuckDB port of queries/funnel.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: funnel
-- description: The checkout funnel: per stage of the lifecycle model, in its order, the carts
--   that reached it (their furthest stage is at least this one) and their share of the carts
--   that started, the drop-off from the previous stage (carts lost and the share of the
--   previous stage's carts that were lost), and on the success stage the time to convert,
--   p50 and p95 in seconds (first seen to the end of the first success span, converted carts
--   only, exact nearest-rank percentiles).
WITH model_stages AS (
    -- The replay's `stages` table lists every stage of the model, even one no cart reached.
    SELECT stage_order, stage, success AS is_success FROM stages
),
furthest AS (
    SELECT cart_id, max(stage_order) AS stage_order
    FROM cart_events
    GROUP BY cart_id
),
reached AS (
    SELECT s.stage_order, s.stage, s.is_success, count(f.cart_id) AS carts
    FROM model_stages s
    LEFT JOIN furthest f ON f.stage_order >= s.stage_order
    GROUP BY s.stage_order, s.stage, s.is_success
),
conversions AS (
    SELECT c.cart_id,
           (epoch_us(min(e.end_time)) - epoch_us(c.first_seen)) / 1e6 AS seconds
    FROM carts c
    JOIN cart_events e ON e.cart_id = c.cart_id AND e.is_success
    WHERE c.outcome = 'converted'
    GROUP BY c.cart_id, c.first_seen
),
ranked AS (
    SELECT seconds,
           row_number() OVER (ORDER BY seconds, cart_id) AS rn,
           count(*) OVER () AS n
    FROM conversions
),
time_to_convert AS (
    SELECT max(CASE WHEN rn = greatest(CAST(ceil(0.5 * n) AS BIGINT), 1) THEN seconds END) AS p50_s,
           max(CASE WHEN rn = greatest(CAST(ceil(0.95 * n) AS BIGINT), 1) THEN seconds END) AS p95_s,
           count(*) AS converted
    FROM ranked
)
SELECT
    r.stage_order,
    r.stage,
    r.carts,
    round(CAST(r.carts AS DOUBLE) / first_value(r.carts) OVER (ORDER BY r.stage_order), 4) AS share_of_start,
    lag(r.carts) OVER (ORDER BY r.stage_order) - r.carts AS dropped_from_previous,
    round(CAST(lag(r.carts) OVER (ORDER BY r.stage_order) - r.carts AS DOUBLE)
          / nullif(lag(r.carts) OVER (ORDER BY r.stage_order), 0), 4) AS drop_off_rate,
    CASE WHEN r.is_success THEN round(t.p50_s, 3) END AS time_to_convert_p50_s,
    CASE WHEN r.is_success THEN round(t.p95_s, 3) END AS time_to_convert_p95_s
FROM reached r
CROSS JOIN time_to_convert t
ORDER BY r.stage_order
