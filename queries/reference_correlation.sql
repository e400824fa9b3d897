-- name: reference_correlation
-- description: The correlation query of the article our reference instrumentation comes from,
--   verbatim: shipping quotes over 2 s of carts abandoned in the last 24 hours. It relies on
--   the cart.state.transitions points the replay writes, and on cart.id being on the shipping
--   span itself; its ORDER BY sorts cart_value as text, and carts of the same value come in
--   no fixed order (run across cores, their order can change). The library's own queries do
--   better.
SELECT
    t.attributes['cart.id'] as cart_id,
    t.attributes['cart.total_value'] as cart_value,
    t.duration_ms as shipping_calc_duration
FROM traces t
WHERE t.operation_name = 'shipping.calculate_rates'
  AND t.duration_ms > 2000
  AND t.attributes['cart.id'] IN (
      SELECT attributes['cart.id']
      FROM metrics
      WHERE name = 'cart.state.transitions'
        AND attributes['cart.stage'] = 'abandoned'
        AND timestamp > NOW() - INTERVAL '24 hours'
  )
ORDER BY cart_value DESC;
