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
spans AS (
    -- Exact nearest-rank percentiles without ordering all of an operation's spans (a
    -- window over 6M spans took most of this query's time, and all of its memory): each
    -- duration gets a bucket that grows with it (64 per factor of e, about 1.6% wide; zero
    -- and below share one), the bucket that holds a rank is found from the buckets'
    -- counts, and only that bucket's spans are ranked. Equal durations share a bucket, so
    -- the value at a rank is the same as in one ordering of all of them.
    SELECT operation_name, duration_ms,
           CASE WHEN duration_ms > 0 THEN CAST(floor(ln(duration_ms) * 64) AS BIGINT)
                ELSE -1000000 END AS bucket
    FROM observed_traces
    WHERE duration_ms IS NOT NULL
),
bucket_counts AS (
    SELECT operation_name, bucket, count(*) AS n, sum(duration_ms) AS total_ms
    FROM spans
    GROUP BY operation_name, bucket
),
cumulative AS (
    SELECT operation_name, bucket,
           sum(n) OVER (PARTITION BY operation_name ORDER BY bucket) - n AS before,
           sum(n) OVER (PARTITION BY operation_name ORDER BY bucket) AS through,
           sum(n) OVER (PARTITION BY operation_name) AS spans,
           sum(total_ms) OVER (PARTITION BY operation_name) AS sum_ms
    FROM bucket_counts
),
located AS (
    -- the bucket that holds each sought rank (p50 and p95), and the rank within it, of the
    -- operations abandonments follow (a filter here, not on the spans: a semi join there
    -- cost more than aggregating every operation's buckets)
    SELECT c.operation_name, c.spans, c.sum_ms, p.pct, c.bucket,
           greatest(CAST(ceil(p.q * c.spans) AS BIGINT), 1) - c.before AS rank_in_bucket
    FROM cumulative c
    JOIN abandoned a ON a.operation = c.operation_name
    CROSS JOIN (VALUES ('p50', 0.5), ('p95', 0.95)) AS p(pct, q)
    WHERE c.before < greatest(CAST(ceil(p.q * c.spans) AS BIGINT), 1)
      AND greatest(CAST(ceil(p.q * c.spans) AS BIGINT), 1) <= c.through
),
ranked AS (
    SELECT l.operation_name, l.spans, l.sum_ms, l.pct, l.rank_in_bucket, s.duration_ms,
           row_number() OVER (PARTITION BY l.operation_name, l.pct ORDER BY s.duration_ms) AS rn
    FROM located l
    JOIN spans s ON s.operation_name = l.operation_name AND s.bucket = l.bucket
),
durations AS (
    SELECT operation_name,
           max(spans) AS spans,
           max(sum_ms) / max(spans) AS mean_ms,
           max(CASE WHEN pct = 'p50' THEN duration_ms END) AS p50_ms,
           max(CASE WHEN pct = 'p95' THEN duration_ms END) AS p95_ms
    FROM ranked
    WHERE rn = rank_in_bucket
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
