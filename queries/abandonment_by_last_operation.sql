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
)
SELECT
    a.operation,
    a.abandonments,
    round(CAST(a.abandonments AS DOUBLE) / t.n, 4) AS share,
    -- Each operation's durations over all its observed spans, as the replay summed and
    -- selected them in its own passes over the spans (operation_stats): read here as a
    -- few rows, not by scanning every span twice (the buckets-then-rank SQL that did,
    -- tests/fixtures/oracles/, gives the same rows and was 0.84x-1.04x DuckDB at 1M carts).
    s.spans,
    round(s.mean_ms, 3) AS mean_ms,
    round(s.p50_ms, 3) AS p50_ms,
    round(s.p95_ms, 3) AS p95_ms
FROM abandoned a
CROSS JOIN total t
LEFT JOIN operation_stats s ON s.operation_name = a.operation
ORDER BY a.abandonments DESC, a.operation NULLS LAST
