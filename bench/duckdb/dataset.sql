-- The tables of an ingested dataset (${DATA}, the folder `cartscope ingest` wrote) as DuckDB
-- views over its Parquet part files, as cartscope's session shows them. replay.sql runs after
-- this or after raw.sql.
CREATE VIEW traces AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/traces/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW span_events AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/span_events/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW metrics AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/metrics/*/*.parquet', hive_partitioning = true, union_by_name = true);
CREATE VIEW exemplars AS SELECT * EXCLUDE (dt) FROM read_parquet('${DATA}/exemplars/*/*.parquet', hive_partitioning = true, union_by_name = true);
