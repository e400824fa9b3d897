"""Whether cartscope's CSV and DuckDB's hold the same rows (bench/run.sh, after each peer run).

    agree.py CARTSCOPE.csv DUCKDB.csv

Prints one line and exits 0 when they agree, 1 when they do not. Before comparing, each
value is written one way: timestamps as `2026-11-20T06:00:00.15Z` (DuckDB writes
`2026-11-20 06:00:00.15+00`, without trailing zeros), maps as `{k: v}` (DuckDB: `{k=v}`),
and a trace or span id that DuckDB kept as the base64 of protobuf's JSON mapping (the Python
SDK's; cartscope writes every id as hex) decoded to hex. Two numbers agree when equal, or,
printed with decimals, when they differ by at most one in the last decimal either prints
(round(x, 3) of a value whose decimal form ends in 5 may go either way: DuckDB rounds the
binary value, DataFusion the product by 10^3). Rows are compared in order, then as sorted
lists: a query whose ORDER BY leaves ties may give them in either order ("same rows, other
order").
"""
import base64
import binascii
import csv
import re
import sys
from collections import Counter

TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00(:00)?)$")
B64_ID = re.compile(r"^[A-Za-z0-9+/]{22}==$|^[A-Za-z0-9+/]{11}=$")


def norm(v):
    m = TIME.match(v)
    if m:
        frac = (m.group(3) or "").rstrip("0").rstrip(".")
        return f"{m.group(1)}T{m.group(2)}{frac}Z"
    if v.startswith("{") and v.endswith("}") and len(v) > 2:
        # A map: cartscope writes `{k: v, ...}`, DuckDB `{k=v, ...}`.
        pairs = [re.split(r": |=", p, maxsplit=1) for p in v[1:-1].split(", ")]
        return "{" + ", ".join(": ".join(p) for p in pairs) + "}"
    if B64_ID.match(v):
        try:
            return base64.b64decode(v, validate=True).hex()
        except (binascii.Error, ValueError):
            return v
    return v


def decimals(s):
    return len(s.split(".", 1)[1]) if "." in s and "e" not in s.lower() else 0


def same_value(a, b):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    places = max(decimals(a), decimals(b))
    if places == 0:
        # Counts and other integers agree only when equal.
        return x == y
    return abs(x - y) <= 10.0**-places * 1.000001


def same_rows(ra, rb):
    return len(ra) == len(rb) and all(
        len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b)) for a, b in zip(ra, rb)
    )


def read(path):
    with open(path, newline="") as f:
        return [[norm(v) for v in row] for row in csv.reader(f)]


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = read(argv[0]), read(argv[1])
    if not a or not b:
        print("differ: an output is empty")
        return 1
    if a[0] != b[0]:
        print(f"differ: the columns ({','.join(a[0])} / {','.join(b[0])})")
        return 1
    if same_rows(a[1:], b[1:]):
        print("same")
        return 0
    if same_rows(sorted(a[1:]), sorted(b[1:])):
        print("same rows, other order")
        return 0
    unmatched = Counter(map(tuple, a[1:])) - Counter(map(tuple, b[1:]))
    print(
        f"differ: {sum(unmatched.values())} of cartscope's {len(a) - 1} rows not in DuckDB's "
        f"{len(b) - 1} as they are, e.g. {','.join(next(iter(unmatched), ()))}"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
