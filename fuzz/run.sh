#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 1800), one after another, with
# libFuzzer's memory (1 GB) and per-input time (10 s) limits. The corpus grows in
# fuzz/corpus/TARGET; a crash is kept in fuzz/artifacts/TARGET and fails the run.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}
shift || true
targets=${*:-otlp_json otlp_proto file}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
echo "== building the fuzz targets" >&2
start=$(date +%s)
cargo +nightly fuzz build --fuzz-dir fuzz >&2
echo "== built in $(( $(date +%s) - start )) s" >&2
status=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    echo "== fuzzing $t for $secs s" >&2
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
            >"$log" 2>&1; then
        echo "== $t FOUND A PROBLEM (see $log and fuzz/artifacts/$t)" >&2
        tail -40 "$log" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$log" | tail -3 >&2 || true
done
exit "$status"
