"""Whether cartscope's CSV and DuckDB's hold the same rows (bench/run.sh, after each peer run).

    agree.py [--any-order] CARTSCOPE.csv DUCKDB.csv

Prints one line and exits 0 when they agree, 1 when they do not, 2 when it cannot compare.
Before comparing, each value is written one way: timestamps as `2026-11-20T06:00:00.15Z`
(DuckDB writes `2026-11-20 06:00:00.15+00`, without trailing zeros), maps as `{k: v}`
(DuckDB: `{k=v}`), a trace or span id that DuckDB kept as the base64 of protobuf's JSON
mapping (the Python SDK's; cartscope writes every id as hex) decoded to hex, and the `'`
cartscope puts before a cell that a spreadsheet would run as a formula dropped. Integers
agree when equal; a number printed with decimals also when it is one unit from the other in
the last decimal place either prints (round(x, 3) of a value whose decimal form ends in 5
may go either way: DuckDB rounds the binary value, DataFusion the product by 10^3; and
trailing zeros are not printed, so 3999.6 against 3999.599 is such a case). Rows are
compared in order; with --any-order (a query whose ORDER BY leaves ties), also as sorted
lists ("same rows, other order").
"""
import base64
import binascii
import csv
import re
import sys
from collections import Counter

TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00(:00)?)$")
NUMBER = re.compile(r"^-?\d+(\.(\d+))?$")
B64_ID = re.compile(r"^[A-Za-z0-9+/]{22}==$|^[A-Za-z0-9+/]{11}=$")


def norm(v):
    if v[:1] == "'" and v[1:2] in ("=", "+", "-", "@"):
        v = v[1:]
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


def same_value(a, b):
    if a == b:
        return True
    x, y = NUMBER.match(a), NUMBER.match(b)
    if not (x and y):
        return False
    places = max(len(x.group(2) or ""), len(y.group(2) or ""))
    if places == 0:
        return int(a) == int(b)
    # Both as integers of `places` decimals (a number printed shorter had its trailing zeros
    # trimmed: 3999.6 is 3999.600), one apart at most.
    def scaled(v):
        whole, _, frac = v.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return sign * (abs(int(whole)) * 10**places + int((frac + "0" * places)[:places]))

    return abs(scaled(a) - scaled(b)) <= 1


def same_rows(ra, rb):
    return len(ra) == len(rb) and all(
        len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b)) for a, b in zip(ra, rb)
    )


def read(path):
    with open(path, newline="") as f:
        return [[norm(v) for v in row] for row in csv.reader(f)]


def main(argv):
    any_order = "--any-order" in argv
    paths = [a for a in argv if a != "--any-order"]
    if len(paths) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    csv.field_size_limit(sys.maxsize)
    try:
        a, b = read(paths[0]), read(paths[1])
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        print(f"cannot compare: {e}", file=sys.stderr)
        return 2
    if not a or not b:
        print("differ: an output is empty")
        return 1
    if a[0] != b[0]:
        print(f"differ: the columns ({','.join(a[0])} / {','.join(b[0])})")
        return 1
    if same_rows(a[1:], b[1:]):
        print("same")
        return 0
    if any_order and same_rows(sorted(a[1:]), sorted(b[1:])):
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
