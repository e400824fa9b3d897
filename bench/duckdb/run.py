"""Runs one DuckDB benchmark job (bench/run.sh calls it under /usr/bin/time -v).

    run.py SCRIPT.sql [SCRIPT.sql ...] [--then QUERY.sql --out RESULT.csv] [KEY=VALUE ...]

Every ${KEY} in the SQL files is replaced by VALUE. DUCKDB_MEMORY_LIMIT (like 1GB), when
set, caps DuckDB's memory as --memory-limit caps cartscope's. The SCRIPTs run as they are, in
order, in one connection; with --then,
QUERY.sql (one SELECT, no trailing semicolon needed) runs after it and its result is written
to RESULT.csv with a header, the way `cartscope query -f csv` writes it.
"""
import os
import sys
import time

import duckdb


SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sample-data", "parquet")


def fill(text, values):
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    # A dataset without a table's folder (an export with no metrics): read the table's schema
    # from sample-data's dataset, with no rows, as cartscope shows an empty table.
    data = values.get("DATA")
    if data:
        for table in ("traces", "span_events", "metrics", "exemplars", "logs"):
            if not os.path.isdir(os.path.join(data, table)):
                src = f"read_parquet('{data}/{table}/*/*.parquet', hive_partitioning = true, union_by_name = true)"
                empty = f"(SELECT * FROM read_parquet('{SAMPLE}/{table}/*/*.parquet', hive_partitioning = true, union_by_name = true) LIMIT 0)"
                text = text.replace(src, empty)
    return text


def main(argv):
    scripts, then, out, values = [], None, None, {}
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == "--then":
            then = rest.pop(0)
        elif a == "--out":
            out = rest.pop(0)
        elif a.endswith(".sql"):
            scripts.append(a)
        else:
            k, v = a.split("=", 1)
            values[k] = v
    started = time.perf_counter()
    con = duckdb.connect()
    # The same cap as cartscope's --memory-limit, when the bench gives one.
    if os.environ.get("DUCKDB_MEMORY_LIMIT"):
        con.execute(f"SET memory_limit = '{os.environ['DUCKDB_MEMORY_LIMIT']}'")
    for script in scripts:
        con.execute(fill(open(script).read(), values))
    if then:
        q = fill(open(then).read(), values).strip().rstrip(";")
        con.execute(f"COPY ({q}) TO '{out}' (HEADER, DELIMITER ',')")
    print(f"duckdb {duckdb.__version__}: {time.perf_counter() - started:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
