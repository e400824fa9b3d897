-- The library's queries over a replay cartscope kept beside its dataset
-- (DATASET/replays/KEY/): DuckDB reads the same Parquet files cartscope's `query` reads,
-- the dataset's tables and the replay's, and runs the same queries (bench/duckdb/queries).
-- Nothing is replayed here: this compares answering a question over a persisted replay.
-- ${DATA} is the dataset folder, ${REPLAY} the kept replay's folder.
CREATE VIEW traces AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/traces/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW span_events AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/span_events/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW metrics AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/metrics/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW exemplars AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/exemplars/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW logs AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/logs/*/*.parquet', hive_partitioning = true, union_by_name = true);
-- The as-of time, as cartscope's default: the latest timestamp in the data.
SET VARIABLE as_of_us = (SELECT max(t) FROM (
    SELECT epoch_us(max(end_time)) AS t FROM traces
    UNION ALL SELECT epoch_us(max(timestamp)) FROM span_events
    UNION ALL SELECT epoch_us(max(timestamp)) FROM metrics));
CREATE VIEW cart_events AS SELECT * FROM read_parquet('${REPLAY}/cart_events.parquet');
CREATE VIEW carts AS SELECT * FROM read_parquet('${REPLAY}/carts.parquet');
CREATE VIEW operation_stats AS SELECT * FROM read_parquet('${REPLAY}/operation_stats.parquet');
CREATE TABLE stages AS SELECT * FROM (VALUES
    ('active', 1, false), ('checkout', 2, false), ('shipping', 3, false),
    ('payment', 4, false), ('completed', 5, true)) AS s(stage, stage_order, success);
-- `metrics` as cartscope's session shows it: the observed points and the derived ones.
CREATE VIEW metrics_all AS
SELECT name, timestamp, attributes FROM metrics
UNION ALL
SELECT name, timestamp, attributes FROM read_parquet('${REPLAY}/derived_metrics.parquet');
