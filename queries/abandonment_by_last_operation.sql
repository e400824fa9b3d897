-- name: abandonment_by_last_operation
-- description: Which operation abandonments follow: per last operation before an abandoned cart
--   went idle, how many abandonments and what share of all abandonments came right after it,
--   with that operation's mean, p50 and p95 duration over all its spans in the export
--   (exact nearest-rank percentiles), e.g. "40% of abandonments follow
--   shipping.calculate_rates, which averages 4 s".
WITH abandoned AS (
    SELECT last_operation AS operation, count(*) AS abandonments
    FROM carts
    WHERE outcome = 'abandoned'
    GROUP BY last_operation
),
total AS (
    SELECT count(*) AS n FROM carts WHERE outcome = 'abandoned'
),
ranked AS (
    -- Ordered by duration alone: the value at a rank is the same whichever of equal
    -- durations comes first, and sorting 6M spans' ids besides took most of the time.
    -- Only the operations abandonments follow are ranked.
    SELECT operation_name, duration_ms,
           row_number() OVER (PARTITION BY operation_name ORDER BY duration_ms) AS rn,
           count(*) OVER (PARTITION BY operation_name) AS n
    FROM observed_traces
    WHERE duration_ms IS NOT NULL
      AND operation_name IN (SELECT operation FROM abandoned)
),
durations AS (
    SELECT operation_name,
           count(*) AS spans,
           avg(duration_ms) AS mean_ms,
           max(CASE WHEN rn = greatest(CAST(ceil(0.5 * n) AS BIGINT), 1) THEN duration_ms END) AS p50_ms,
           max(CASE WHEN rn = greatest(CAST(ceil(0.95 * n) AS BIGINT), 1) THEN duration_ms END) AS p95_ms
    FROM ranked
    GROUP BY operation_name
)
SELECT
    a.operation,
    a.abandonments,
    round(CAST(a.abandonments AS DOUBLE) / t.n, 4) AS share,
    d.spans,
    round(d.mean_ms, 3) AS mean_ms,
    round(d.p50_ms, 3) AS p50_ms,
    round(d.p95_ms, 3) AS p95_ms
FROM abandoned a
CROSS JOIN total t
LEFT JOIN durations d ON d.operation_name = a.operation
ORDER BY a.abandonments DESC, a.operation NULLS LAST
