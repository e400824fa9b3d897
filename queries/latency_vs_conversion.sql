-- name: latency_vs_conversion
-- description: (being written)
SELECT 1 AS placeholder
