-- The analyst's alternative to `cartscope ingest`: DuckDB flattens an OTLP/JSON lines traces
-- export into one Parquet file, one row per span, with a hand-written column spec and three
-- unnests (resourceSpans, scopeSpans, spans). Columns as in cartscope's `traces` table:
-- ids, names, kind, times as UTC timestamps, duration, status, attribute maps, service and
-- scope (span events are kept as a nested list, not a table of their own).
-- ${INPUT} and ${OUTPUT} are filled in by bench/duckdb/run.py.
COPY (
    WITH docs AS (
        SELECT * FROM read_ndjson('${INPUT}', format = 'newline_delimited',
            columns = {resourceSpans: 'STRUCT(
                resource STRUCT(attributes STRUCT("key" VARCHAR, "value" STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE, boolValue BOOLEAN))[]),
                scopeSpans STRUCT(
                    "scope" STRUCT("name" VARCHAR, "version" VARCHAR),
                    spans STRUCT(
                        traceId VARCHAR, spanId VARCHAR, parentSpanId VARCHAR, traceState VARCHAR,
                        "name" VARCHAR, kind INTEGER, flags BIGINT,
                        startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR,
                        attributes STRUCT("key" VARCHAR, "value" STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE, boolValue BOOLEAN))[],
                        events STRUCT(timeUnixNano VARCHAR, "name" VARCHAR, attributes STRUCT("key" VARCHAR, "value" STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE, boolValue BOOLEAN))[])[],
                        status STRUCT(code INTEGER, message VARCHAR)
                    )[]
                )[]
            )[]'})
    ),
    rs AS (SELECT unnest(resourceSpans) AS r FROM docs),
    ss AS (SELECT r.resource AS resource, unnest(r.scopeSpans) AS s FROM rs),
    sp AS (SELECT resource, s.scope AS scope, unnest(s.spans) AS span FROM ss)
    SELECT
        span.traceId AS trace_id,
        span.spanId AS span_id,
        nullif(span.parentSpanId, '') AS parent_span_id,
        span.traceState AS trace_state,
        span.name AS operation_name,
        list_filter(resource.attributes, lambda a: a.key = 'service.name')[1].value.stringValue AS service_name,
        span.kind AS span_kind,
        make_timestamptz(CAST(span.startTimeUnixNano AS BIGINT) // 1000) AS start_time,
        make_timestamptz(CAST(span.endTimeUnixNano AS BIGINT) // 1000) AS end_time,
        CAST(CAST(span.endTimeUnixNano AS BIGINT) - CAST(span.startTimeUnixNano AS BIGINT) AS DOUBLE) / 1e6 AS duration_ms,
        CASE span.status.code WHEN 1 THEN 'ok' WHEN 2 THEN 'error' ELSE 'unset' END AS status_code,
        span.status.message AS status_message,
        map_from_entries(list_transform(span.attributes, lambda a: {k: a.key, v: coalesce(a.value.stringValue, a.value.intValue, CAST(a.value.doubleValue AS VARCHAR), CAST(a.value.boolValue AS VARCHAR))})) AS attributes,
        map_from_entries(list_transform(resource.attributes, lambda a: {k: a.key, v: coalesce(a.value.stringValue, a.value.intValue, CAST(a.value.doubleValue AS VARCHAR), CAST(a.value.boolValue AS VARCHAR))})) AS resource_attributes,
        scope.name AS scope_name,
        scope.version AS scope_version,
        span.flags AS flags,
        span.events AS events
    FROM sp
) TO '${OUTPUT}' (FORMAT parquet, COMPRESSION zstd);
