-- name: high_value_abandoned
-- description: (being written)
SELECT 1 AS placeholder
