-- `cartscope detect -f csv`: every cart, by cart id (after replay.sql).
SELECT * FROM carts ORDER BY cart_id
