-- name: funnel
-- description: (being written)
SELECT 1 AS placeholder
