"""The table of bench/run.sh from its raw measurements (raw.tsv), as markdown on stdout.

    summarize.py RAW.tsv MACHINE COMMAND CARTSCOPE_VERSION DUCKDB_VERSION
"""
import datetime
import os
import statistics
import sys
from collections import defaultdict

raw, machine, command, cs_version, ddb_version = sys.argv[1:6]
rows = defaultdict(list)  # (size, task, tool) -> [(secs, rss_kb, bytes, lines)]
order = []
for line in open(raw):
    size, task, tool, secs, rss, nbytes, lines = line.rstrip("\n").split("\t")
    key = (size, task)
    if key not in order:
        order.append(key)
    rows[(size, task, tool)].append((float(secs), int(rss), int(nbytes), int(lines)))

cores = os.cpu_count() or 1

# Whether DuckDB's rows were cartscope's, per run (bench/duckdb/agree.py via $AGREE).
agreement = defaultdict(list)  # (size, task) -> [verdict]
if os.environ.get("AGREE") and os.path.exists(os.environ["AGREE"]):
    for line in open(os.environ["AGREE"]):
        size, task, verdict = line.rstrip("\n").split("\t", 2)
        agreement[(size, task)].append(verdict)


def agreed(size, task):
    v = agreement.get((size, task))
    if not v:
        return ""
    bad = [x for x in v if x not in ("same", "same rows, other order")]
    if bad:
        return f", rows differ! ({bad[0][:120]})"
    return ", same rows" if all(x == "same" for x in v) else ", same rows (ties in another order)"


def med(key, i=0):
    v = [r[i] for r in rows.get(key, [])]
    return statistics.median(v) if v else None


def peak(key):
    v = [r[1] for r in rows.get(key, [])]
    return max(v) / 1024 if v else None


def fmt(x, spec):
    return "–" if x is None else format(x, spec)


print(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine};")
print(f"{cs_version}, {ddb_version}; `{command}`.")
print()
print("Medians of the runs; MB/s over the traces file's bytes; ratio = DuckDB time / cartscope")
print("time (above 1: cartscope is faster); peak = the largest max RSS of the runs.")
print()
print("| carts | task | runs | cartscope s | DuckDB s | ratio | cartscope MB/s | DuckDB MB/s | floor MB/s (1 core) | cartscope per core / floor | cartscope peak MB | DuckDB peak MB | peak ratio | rows (cs / duckdb), agree.py |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for size, task in order:
    a, b, f = (size, task, "cartscope"), (size, task, "duckdb"), (size, task, "floor")
    # A protobuf export's peer: cartscope reading the same data as JSON (DuckDB reads no
    # protobuf); its ratio is marked.
    vs_json = b not in rows and (size, task, "json") in rows
    if vs_json:
        b = (size, task, "json")
    ta, tb, tf = med(a), med(b), med(f)
    nbytes = med(a, 2) or 0
    mbs = lambda t: nbytes / 1e6 / t if t and nbytes else None
    ratio = tb / ta if ta and tb else None
    pa, pb = peak(a), peak(b)
    per_core = mbs(ta) / cores / mbs(tf) if mbs(ta) and mbs(tf) else None
    if task == "ingest":
        lines = "–"
    else:
        la, lb = med(a, 3), med(b, 3)
        lines = f"{fmt(la, '.0f')} / {fmt(lb, '.0f')}" + ("" if la == lb or lb is None else " (differ!)")
        lines += agreed(size, task)
    print(
        f"| {size} | {task} | {len(rows.get(a, []))} | {fmt(ta, '.3f')} | {fmt(tb, '.3f')}{' (cartscope, same data as JSON)' if vs_json else ''} | {fmt(ratio, '.2f')} "
        f"| {fmt(mbs(ta), '.0f')} | {fmt(None if vs_json else mbs(tb), '.0f')} | {fmt(mbs(tf), '.0f')} | {fmt(per_core, '.0%')} "
        f"| {fmt(pa, '.0f')} | {fmt(pb, '.0f')} | {fmt(pa / pb if pa and pb else None, '.0%')} | {lines} |"
    )
