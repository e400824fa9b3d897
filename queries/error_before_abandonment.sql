-- name: error_before_abandonment
-- description: (being written)
SELECT 1 AS placeholder
