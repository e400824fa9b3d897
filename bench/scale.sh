#!/usr/bin/env bash
# The scale run of issue 17: time and peak memory of ingest, detect (a whole replay),
# report and a library query over the kept replay, at 100k, 1M and 10M carts, under
# --memory-limit 1GB (DuckDB capped the same), beside DuckDB doing the same work on the
# same files; and the real SDKs' exports at 100k.
#
#   bench/scale.sh [--bin PATH] [--runs N] [--limit SIZE] [--sizes "100k 1M"] [--big "10M"]
#
# 100k and 1M: plain OTLP/JSON, --runs alternated runs (3). --big sizes: zstd-compressed
# JSON (10M carts is about 32 GB plain, 3.6 GB compressed), one run each. Tables go to
# bench/work/scale.md and bench/work/scale-big.md; copy them into bench/RESULTS.md with the
# machine and date they print.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=""
runs=3
limit=1GB
sizes="100k 1M"
big="10M"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --big) big="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench/scale.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
bin_args=()
[ -n "$bin" ] && bin_args=(--bin "$bin")
if [ -n "$sizes" ]; then
    bench/run.sh "${bin_args[@]}" --sizes "$sizes" --runs "$runs" --memory-limit "$limit" \
        --queries funnel --report --sdk-sizes 100k --results bench/work/scale.md
fi
if [ -n "$big" ]; then
    bench/run.sh "${bin_args[@]}" --sizes "$big" --runs 1 --memory-limit "$limit" \
        --compress zstd --queries funnel --report --sdk-sizes none \
        --results bench/work/scale-big.md
fi
