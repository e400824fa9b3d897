"""Runs one DuckDB benchmark job (bench/run.sh calls it under /usr/bin/time -v).

    run.py SCRIPT.sql [--then QUERY.sql --out RESULT.csv] [KEY=VALUE ...]

Every ${KEY} in the SQL files is replaced by VALUE. SCRIPT.sql runs as it is; with --then,
QUERY.sql (one SELECT, no trailing semicolon needed) runs after it and its result is written
to RESULT.csv with a header, the way `cartscope query -f csv` writes it.
"""
import sys
import time

import duckdb


def fill(text, values):
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    return text


def main(argv):
    script, then, out, values = argv[0], None, None, {}
    rest = argv[1:]
    while rest:
        a = rest.pop(0)
        if a == "--then":
            then = rest.pop(0)
        elif a == "--out":
            out = rest.pop(0)
        else:
            k, v = a.split("=", 1)
            values[k] = v
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(fill(open(script).read(), values))
    if then:
        q = fill(open(then).read(), values).strip().rstrip(";")
        con.execute(f"COPY ({q}) TO '{out}' (HEADER, DELIMITER ',')")
    print(f"duckdb {duckdb.__version__}: {time.perf_counter() - started:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
