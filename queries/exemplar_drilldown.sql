-- name: exemplar_drilldown
-- description: (being written)
SELECT 1 AS placeholder
