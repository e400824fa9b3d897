#!/usr/bin/env python3
"""Compares `cartscope detect --format ndjson` with a truth.json, cart by cart.

    compare.py TRUTH.json DETECT.ndjson      (DETECT may be - for standard input)

Checks, for every cart of the truth: outcome, last_operation, last_stage, item_count, value
(detect's total_value), span_count, last_trace_id and suspected_cause (absent in detect's
output means none); and also user_id, last_op_status, last_op_duration_ms (to 1e-6 ms),
first_seen and last_activity (to the microsecond, whatever the number of fractional digits).
Carts detect found that the truth does not have are
disagreements too. Prints the share of carts on which every field agrees and, per field, how
many disagree; lists the first disagreements and exits 1 when there is any. Standard library
only.
"""

import calendar
import datetime
import json
import sys

FIELDS = [
    # (truth key, detect key, compare)
    ("outcome", "outcome", None),
    ("last_operation", "last_operation", None),
    ("last_stage", "last_stage", None),
    ("item_count", "item_count", None),
    ("value", "total_value", "float"),
    ("span_count", "span_count", None),
    ("last_trace_id", "last_trace_id", None),
    ("suspected_cause", "suspected_cause", None),
    ("user_id", "user_id", None),
    ("last_op_status", "last_op_status", None),
    ("last_op_duration_ms", "last_op_duration_ms", "ms"),
    ("first_seen", "first_seen", "time"),
    ("last_activity", "last_activity", "time"),
]
SHOW = 20


def micros(t):
    """An RFC 3339 UTC time as microseconds since the epoch; detect writes as many fractional
    digits as needed (`.262Z`), the truth always six."""
    day, _, rest = t.rstrip("Z").partition("T")
    hms, _, frac = rest.partition(".")
    d = datetime.datetime.strptime(day + "T" + hms, "%Y-%m-%dT%H:%M:%S")
    s = calendar.timegm(d.timetuple())
    return s * 1_000_000 + int((frac + "000000")[:6])


def same(kind, want, got):
    if kind is None:
        return want == got
    if want is None or got is None:
        return want is got
    if kind == "time":
        return micros(want) == micros(got)
    tol = 1e-9 if kind == "float" else 1e-6
    return abs(float(want) - float(got)) <= tol


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    with open(sys.argv[1]) as f:
        truth = json.load(f)
    src = sys.stdin if sys.argv[2] == "-" else open(sys.argv[2])
    got = {}
    for line in src:
        if line.strip():
            c = json.loads(line)
            c.setdefault("suspected_cause", "none")
            got[c["cart_id"]] = c
    carts = truth["carts"]
    bad = []
    per_field = {f[0]: 0 for f in FIELDS}
    missing = 0
    agree = 0
    for want in carts:
        g = got.pop(want["cart_id"], None)
        if g is None:
            missing += 1
            bad.append(f"{want['cart_id']}: not found by detect")
            continue
        diffs = []
        for tk, gk, kind in FIELDS:
            if not same(kind, want.get(tk), g.get(gk)):
                per_field[tk] += 1
                diffs.append(f"{tk} truth {want.get(tk)!r} detect {g.get(gk)!r}")
        if diffs:
            bad.append(f"{want['cart_id']}: " + "; ".join(diffs))
        else:
            agree += 1
    for cid in sorted(got):
        bad.append(f"{cid}: found by detect, not in the truth")
    n = len(carts)
    share = agree / n if n else 1.0
    print(f"{agree} of {n} carts agree on every field ({100 * share:.2f}%)")
    if missing or got:
        print(f"  {missing} carts of the truth missing from detect, {len(got)} extra in detect")
    for k, v in per_field.items():
        if v:
            print(f"  {k}: {v} disagree")
    for b in bad[:SHOW]:
        print(f"  {b}")
    if len(bad) > SHOW:
        print(f"  ... {len(bad)} disagreements in all")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
