-- name: abandonment_by_last_operation
-- description: (being written)
SELECT 1 AS placeholder
