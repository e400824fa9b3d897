#!/usr/bin/env bash
# How close could any parser bring ingest to the floor? (issue 8)
#
#   bench/parsers.sh [--runs 5] [--bin PATH] [--no-ingest] FILE
#
# Times, alternating mode by mode, each parser of bench/parsers over the OTLP/JSON lines FILE
# (one core, the file in memory: see bench/parsers/src/main.rs for the modes), and
# `cartscope ingest FILE` by its CPU time (user + sys), which is what "per core used" means.
# Prints a markdown table of medians: MB/s per core and the ratio to the floor
# (serde_json into IgnoredAny). The ingest is skipped with --no-ingest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

runs=5
bin=""
ingest=1
file=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --no-ingest) ingest=0; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        -*) echo "bench/parsers.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) file="$1"; shift ;;
    esac
done
[ -n "$file" ] || { echo "bench/parsers.sh: give an OTLP/JSON lines file (see --help)" >&2; exit 2; }
[ -f "$file" ] || { echo "bench/parsers.sh: no such file '$file'" >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building bench/parsers (release)" >&2
cargo build --release --quiet --manifest-path bench/parsers/Cargo.toml --target-dir "$target/parsers"
parsers="$target/parsers/release/parsers"
if [ "$ingest" = 1 ] && [ -z "$bin" ]; then
    echo "== building cartscope (release)" >&2
    cargo build --release --quiet
    bin="$target/release/cartscope"
fi

modes="floor serde-typed sonic-serde sonic-typed sonic-dom simd-tape"
raw=$(mktemp)
out=$(mktemp -d)
trap 'rm -rf "$raw" "$out"' EXIT
bytes=$(wc -c <"$file")
for r in $(seq "$runs"); do
    for m in $modes; do
        "$parsers" "$m" "$file" | awk '{print $1, $4}' >>"$raw"
    done
    if [ "$ingest" = 1 ]; then
        rm -rf "$out/ds"
        /usr/bin/time -f "%U %S" -o "$out/time" "$bin" --no-progress ingest "$file" --out "$out/ds" >/dev/null 2>"$out/err" \
            || { cat "$out/err" >&2; exit 1; }
        # A file too small to register any CPU time gives no rate rather than a division by zero.
        awk -v b="$bytes" '$1 + $2 > 0 {printf "cartscope-ingest %.1f\n", b / 1e6 / ($1 + $2)}' "$out/time" >>"$raw"
    fi
    echo "== run $r of $runs done" >&2
done

python3 - "$raw" "$file" "$runs" <<'PY'
import collections, statistics, sys
raw, path, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rates = collections.defaultdict(list)
for line in open(raw):
    mode, rate = line.split()
    rates[mode].append(float(rate))
floor = statistics.median(rates["floor"])
print(f"{path}, {runs} runs alternated, medians; MB/s per core (ingest: bytes over its CPU seconds)\n")
print("| mode | MB/s per core | range | / floor |")
print("|---|---|---|---|")
for mode, v in rates.items():
    m = statistics.median(v)
    print(f"| {mode} | {m:.0f} | {min(v):.0f}-{max(v):.0f} | {m / floor:.2f} |")
PY
