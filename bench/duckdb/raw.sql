-- The replay straight from a raw OTLP/JSON lines traces export (${INPUT}), the way an analyst
-- would write it in DuckDB: read_ndjson parses only the fields the replay reads (ids, name,
-- times, status code and message, the span attributes, the span events' times) and skips
-- the rest, and the spans are flattened once into a table that replay.sql then reads as
-- `traces`. Span event times count for the as-of time, as in cartscope; a traces export has
-- no metrics.
-- The status code is a number or, as the Python SDK writes it, the enum's name.
CREATE TABLE traces AS
WITH docs AS (
    SELECT * FROM read_ndjson('${INPUT}', format = 'newline_delimited',
        columns = {resourceSpans: 'STRUCT(
            scopeSpans STRUCT(
                spans STRUCT(
                    traceId VARCHAR, spanId VARCHAR, "name" VARCHAR,
                    startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR,
                    attributes STRUCT("key" VARCHAR, "value" STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue DOUBLE, boolValue BOOLEAN))[],
                    events STRUCT(timeUnixNano VARCHAR)[],
                    status STRUCT(code VARCHAR, message VARCHAR)
                )[]
            )[]
        )[]'})
),
rs AS (SELECT unnest(resourceSpans) AS r FROM docs),
ss AS (SELECT unnest(r.scopeSpans) AS s FROM rs),
sp AS (SELECT unnest(s.spans) AS span FROM ss)
SELECT
    span.traceId AS trace_id,
    span.spanId AS span_id,
    span.name AS operation_name,
    make_timestamptz(CAST(span.startTimeUnixNano AS BIGINT) // 1000) AS start_time,
    make_timestamptz(CAST(span.endTimeUnixNano AS BIGINT) // 1000) AS end_time,
    CAST(CAST(span.endTimeUnixNano AS BIGINT) - CAST(span.startTimeUnixNano AS BIGINT) AS DOUBLE) / 1e6 AS duration_ms,
    CASE WHEN span.status.code IN ('1', 'STATUS_CODE_OK') THEN 'ok' WHEN span.status.code IN ('2', 'STATUS_CODE_ERROR') THEN 'error' ELSE 'unset' END AS status_code,
    nullif(span.status.message, '') AS status_message,
    map_from_entries(list_transform(span.attributes, lambda a: {k: a.key, v: coalesce(a.value.stringValue, a.value.intValue, CAST(a.value.doubleValue AS VARCHAR), CAST(a.value.boolValue AS VARCHAR))})) AS attributes,
    list_transform(span.events, lambda e: make_timestamptz(CAST(e.timeUnixNano AS BIGINT) // 1000)) AS event_times
FROM sp;
CREATE VIEW span_events AS SELECT unnest(event_times) AS timestamp FROM traces;
CREATE VIEW metrics AS SELECT CAST(NULL AS VARCHAR) AS name, CAST(NULL AS TIMESTAMPTZ) AS timestamp,
    CAST(NULL AS MAP(VARCHAR, VARCHAR)) AS attributes WHERE false;
