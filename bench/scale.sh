#!/usr/bin/env bash
# The scale run of issue 17: time and peak memory of ingest, detect (a whole replay), report
# and a library query over the kept replay, at 100k, 1M and 10M carts, under
# --memory-limit 1GB (DuckDB capped the same), beside DuckDB doing the same work on the same
# files; and the replay straight from raw exports (`detect --data traces.jsonl`) beside
# DuckDB's replay of the same JSON, on the real SDKs' exports and on generated ones.
#
#   bench/scale.sh [--bin PATH] [--runs N] [--limit SIZE] [--small "100k"] [--sizes "1M"]
#                  [--big "10M"]
#
# --small sizes (100k): everything, the raw detect included, and the real SDKs' exports of
# the same size. --sizes (1M): everything but the raw detect (a raw export is loaded into
# memory, which --memory-limit does not bound). --runs alternated runs (3) for both.
# --big sizes (10M): zstd-compressed JSON (10M carts is about 32 GB plain) and the dataset
# written beside it by `cartscope generate --parquet`, moved to bench/work/ds-N (generate it
# first: see bench/RESULTS.md); detect, report and the query, one run each, no ingest.
# Tables go to bench/work/scale-*.md; copy them into bench/RESULTS.md with the machine and
# date they print.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
runs=3
limit=1GB
small="100k"
sizes="1M"
big="10M"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --small) small="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --big) big="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench/scale.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
bin_args=()
[ -n "$bin" ] && bin_args=(--bin "$bin")
common=(--memory-limit "$limit" --queries funnel --report)
for size in $small; do
    bench/run.sh "${bin_args[@]}" "${common[@]}" --sizes "$size" --runs "$runs" \
        --sdk-sizes "$size" --results "bench/work/scale-$size.md"
done
for size in $sizes; do
    bench/run.sh "${bin_args[@]}" "${common[@]}" --sizes "$size" --runs "$runs" \
        --sdk-sizes none --no-raw --results "bench/work/scale-$size.md"
done
for size in $big; do
    bench/run.sh "${bin_args[@]}" "${common[@]}" --sizes "$size" --runs 1 \
        --compress zstd --sdk-sizes none --no-raw --no-ingest \
        --results "bench/work/scale-$size.md"
done
