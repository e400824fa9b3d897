#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 1800), one after another, with
# libFuzzer's memory (1 GB) and per-input time (10 s) limits. The corpus grows in
# fuzz/corpus/TARGET; a crash is kept in fuzz/artifacts/TARGET and fails the run.
#
#   fuzz/run.sh [--dev] [--parallel] [SECONDS] [TARGET...]
#
# --dev builds them unoptimised (minutes instead of the better part of an hour here; fewer
# executions a second): CI's smoke run. --parallel runs the targets at once instead of one
# after another. Needs the nightly toolchain and cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
build=()
parallel=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) build=(--dev); shift ;;
        --parallel) parallel=1; shift ;;
        *) break ;;
    esac
done
secs=${1:-1800}
shift || true
targets=${*:-otlp_json otlp_proto file}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
echo "== building the fuzz targets" >&2
start=$(date +%s)
cargo +nightly fuzz build --fuzz-dir fuzz "${build[@]}" >&2
echo "== built in $(( $(date +%s) - start )) s" >&2
one() {
    local t=$1 log="fuzz/artifacts/$1/last-run.log"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "== fuzzing $t for $secs s" >&2
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "${build[@]}" "$t" "fuzz/corpus/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
            >"$log" 2>&1; then
        echo "== $t FOUND A PROBLEM (see $log and fuzz/artifacts/$t)" >&2
        tail -40 "$log" >&2
        return 1
    fi
    echo "== $t: $(grep -E '^stat::number_of_executed_units' "$log" | tail -1), $(grep -E '^stat::peak_rss_mb' "$log" | tail -1), corpus $(ls "fuzz/corpus/$t" | wc -l) inputs" >&2
}
status=0
if [ "$parallel" = 1 ]; then
    pids=()
    for t in $targets; do one "$t" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
else
    for t in $targets; do one "$t" || status=1; done
fi
exit "$status"
