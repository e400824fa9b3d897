-- DuckDB port of queries/latency_vs_conversion.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), the derived rows of metrics_all, and
-- first(x ORDER BY k1 DESC NULLS FIRST, ..., x DESC NULLS FIRST) for cartscope's aggregate
-- last_by(x, k1, ...).
-- name: latency_vs_conversion
-- description: Does latency cost conversions? Per checkout operation, the carts that reached it
--   split by the latency of that operation's span (the cart's last span of it, when it ran more
--   than once) into buckets (<500, 500-1000, 1000-2000, 2000-4000, >=4000 ms), with how many
--   converted and the conversion rate per bucket. Only decided carts count: converted ones
--   (any success stage reached, recovered included) and abandoned ones; active carts (and
--   recovered carts that have not converted yet) are left out of the denominator. Every
--   bucket is listed, empty ones with 0 carts and no rate.
-- param: operations = shipping.calculate_rates,payment.authorize  -- span names, comma-separated
WITH ops AS (
    -- array_distinct rather than SELECT DISTINCT: DataFusion 55 drops sort keys after a
    -- GROUP BY over a cross join with a DISTINCT side (the buckets would come out unordered)
    SELECT op AS operation
    FROM unnest(array_distinct(string_to_array(
             regexp_replace(trim('shipping.calculate_rates,payment.authorize'), '\s*,\s*', ',', 'g'), ','))) AS u(op)
    WHERE op <> ''
),
buckets (bucket_order, latency_bucket, lo_ms, hi_ms) AS (
    VALUES (1, '<500 ms', 0.0, 500.0),
           (2, '500-1000 ms', 500.0, 1000.0),
           (3, '1000-2000 ms', 1000.0, 2000.0),
           (4, '2000-4000 ms', 2000.0, 4000.0),
           (5, '>=4000 ms', 4000.0, CAST('Infinity' AS DOUBLE))
),
converted AS (
    -- The carts that reached a success stage (a third of them at 1M carts): a smaller
    -- table to look carts up in than every cart's events aggregated to a flag.
    SELECT DISTINCT cart_id FROM cart_events WHERE is_success
),
last_span AS (
    -- The span that ended last (then started last, then by span id): last_by, not
    -- first_value(... ORDER BY end_time DESC, time DESC, span_id DESC), which compared its
    -- three keys at twice the cost, nor row_number() = 1 (DataFusion's window over 800k
    -- tiny partitions took 4 s at 1M carts). The operations are a filter, not a join, so
    -- that the events stay in cart order (`IN (SELECT operation FROM ops)` is a join too,
    -- and spills).
    SELECT e.cart_id, e.operation,
           first(e.duration_ms ORDER BY e.end_time DESC NULLS FIRST, e.time DESC NULLS FIRST,
                            e.span_id DESC NULLS FIRST, e.duration_ms DESC NULLS FIRST)
               AS duration_ms
    FROM cart_events e
    WHERE array_has(string_to_array(regexp_replace(trim('shipping.calculate_rates,payment.authorize'), '\s*,\s*', ',', 'g'), ','),
                    e.operation)
    GROUP BY e.cart_id, e.operation
),
reached AS (
    SELECT l.operation, l.cart_id, l.duration_ms, v.cart_id IS NOT NULL AS converted
    FROM last_span l
    JOIN carts c ON c.cart_id = l.cart_id
    LEFT JOIN converted v ON v.cart_id = l.cart_id
    WHERE c.outcome <> 'active' AND (v.cart_id IS NOT NULL OR c.outcome = 'abandoned')
),
counted AS (
    -- Counted per bucket: the carts are joined to five buckets (not sorted by operation to
    -- meet every (operation, bucket) pair), then every pair is listed with zero carts and
    -- the counts added to them, which needs no join: the query's only joins are then the
    -- ones on cart_id, which stream over the replay's tables in cart order.
    SELECT r.operation, b.bucket_order, b.latency_bucket,
           count(*) AS carts,
           sum(CASE WHEN r.converted THEN 1 ELSE 0 END) AS converted,
           avg(r.duration_ms) AS mean_ms
    FROM reached r
    JOIN buckets b ON r.duration_ms >= b.lo_ms AND r.duration_ms < b.hi_ms
    GROUP BY r.operation, b.bucket_order, b.latency_bucket
    UNION ALL
    SELECT o.operation, b.bucket_order, b.latency_bucket, 0, 0, CAST(NULL AS DOUBLE)
    FROM ops o
    CROSS JOIN buckets b
)
SELECT
    operation,
    bucket_order,
    latency_bucket,
    sum(carts) AS carts,
    sum(converted) AS converted,
    round(CAST(sum(converted) AS DOUBLE) / nullif(sum(carts), 0), 4) AS conversion_rate,
    round(max(mean_ms), 3) AS mean_ms
FROM counted
GROUP BY operation, bucket_order, latency_bucket
ORDER BY operation, bucket_order
