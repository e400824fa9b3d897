-- DuckDB port of queries/reference_correlation.sql (default parameters filled in), run after
-- replay.sql over the same dataset. Only the dialect differs: epoch_us(t) for
-- CAST(t AS BIGINT), the as-of time for NOW(), and the derived rows of metrics_all.
-- name: reference_correlation
-- description: The correlation query of the article our reference instrumentation comes from,
--   verbatim: shipping quotes over 2 s of carts abandoned in the last 24 hours. It relies on
--   the cart.state.transitions points the replay writes, and on cart.id being on the shipping
--   span itself; its ORDER BY sorts cart_value as text. The library's own queries do better.
SELECT
    t.attributes['cart.id'] as cart_id,
    t.attributes['cart.total_value'] as cart_value,
    t.duration_ms as shipping_calc_duration
FROM traces t
WHERE t.operation_name = 'shipping.calculate_rates'
  AND t.duration_ms > 2000
  AND t.attributes['cart.id'] IN (
      SELECT attributes['cart.id']
      FROM metrics_all
      WHERE name = 'cart.state.transitions'
        AND attributes['cart.stage'] = 'abandoned'
        AND timestamp > make_timestamptz(getvariable('as_of_us')) - INTERVAL '24 hours'
  )
ORDER BY cart_value DESC;
