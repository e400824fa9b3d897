#!/usr/bin/env bash
# cartscope beside DuckDB, on the same files, in one run (issue 8).
#
#   bench/run.sh [--sizes "10k 100k 1M"] [--runs 3] [--queries "funnel ..."|all|none]
#                [--profile release|debug] [--bin PATH] [--no-duckdb] [--smoke]
#                [--no-detect] [--no-ingest] [--work DIR] [--results FILE]
#                [--sdk-sizes "10k 100k"|none] [--memory-limit SIZE] [--compress zstd]
#                [--report] [--no-raw]
#
# For each size (carts) it generates an export with `cartscope generate` (kept in the work
# folder and reused), and for each of --sdk-sizes the same kind of shop written by the real
# OpenTelemetry SDKs (bench/real-sdk/make.sh: the JS SDK's OTLP/HTTP JSON, the Python SDK's
# OTLP/HTTP protobuf, and the same Python bodies in protobuf's JSON mapping; rows labelled
# "SIZE js", "SIZE py-proto", "SIZE py-json"). DuckDB's flatten reads OTLP/JSON only (not
# protobuf's JSON mapping, whose enums are names), its raw replay both; the floor reads JSON
# only: for py-proto the peer column is cartscope reading the same Python export as py-json.
# It times,
# alternating A B A B:
#   ingest  `cartscope ingest` of traces.jsonl       vs DuckDB read_ndjson + 3 unnests to Parquet
#   floor   serde_json into IgnoredAny over the same bytes, one core (bench/floor)
#   detect  `cartscope detect -f csv --refresh` over the dataset (a whole replay)
#                                     vs bench/duckdb/dataset.sql + replay.sql + detect.sql
#   detect raw  `cartscope detect -f csv` straight from the raw traces export (OTLP/JSON)
#                                     vs bench/duckdb/raw.sql + replay.sql + detect.sql
#   report  `cartscope report -f json --refresh` (with --report; no DuckDB peer)
#   query   `cartscope query NAME -f csv` (each), over the replay detect kept beside the
#           dataset vs bench/duckdb/kept.sql + queries/NAME.sql over the same Parquet files
# --memory-limit caps both: cartscope's flag, and DuckDB's memory_limit setting. With
# --compress zstd the generated exports are zstd-compressed JSON (for sizes whose plain JSON
# would not fit the disk: 10M carts is about 32 GB plain, 3.6 GB compressed).
# Wall time is measured here, peak memory (max RSS) by /usr/bin/time -v. It prints a table
# of medians, MB/s, ratios (DuckDB time / cartscope time: above 1 means cartscope is faster)
# and peak RSS, and writes it as markdown (bench/work/results.md unless --results). After
# each DuckDB run of detect, detect raw and a query, bench/duckdb/agree.py compares its rows
# with cartscope's (timestamps, maps and base64 ids written one way); the table says "same
# rows" or "rows differ!", and a difference makes the run exit 1.
#
# DuckDB comes from PyPI into bench/.venv. --smoke runs one tiny size once, for CI: give it
# an already built binary (--bin target/debug/cartscope after `cargo test`) so CI needs no
# release build, and it passes over DuckDB when it cannot be installed (no network).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
args="$*"

sizes="10k 100k 1M"
runs=3
queries=all
profile=release
bin=""
duckdb=1
detect=1
ingest=1
smoke=0
work="$ROOT/bench/work"
results=""
sdk_sizes="10k 100k"
memory_limit=""
compress=""
report=0
raw_detect=1

while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --queries) queries="$2"; shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --no-duckdb) duckdb=0; shift ;;
        --no-detect) detect=0; shift ;;
        --no-ingest) ingest=0; shift ;;
        --smoke) smoke=1; shift ;;
        --work) work="$2"; shift 2 ;;
        --results) results="$2"; shift 2 ;;
        --sdk-sizes) sdk_sizes="$2"; shift 2 ;;
        --memory-limit) memory_limit="$2"; shift 2 ;;
        --compress) compress="$2"; shift 2 ;;
        --report) report=1; shift ;;
        --no-raw) raw_detect=0; shift ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$smoke" = 1 ]; then
    sizes=200
    runs=1
    work="$ROOT/bench/work/smoke"
    sdk_sizes=none
fi
[ "$sdk_sizes" = none ] && sdk_sizes=""
results=${results:-$work/results.md}
mkdir -p "$work"

say() { echo "== $*" >&2; }

# ---- tools -------------------------------------------------------------------------------
TIME=/usr/bin/time
if ! "$TIME" -v true >/dev/null 2>&1; then
    say "installing GNU time (for peak memory)"
    if command -v apt-get >/dev/null; then
        (apt-get install -y time >/dev/null 2>&1 || sudo apt-get install -y time >/dev/null 2>&1) || true
    fi
    "$TIME" -v true >/dev/null 2>&1 || { echo "bench/run.sh: /usr/bin/time -v is needed (package 'time')" >&2; exit 1; }
fi

target=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "$bin" ]; then
    if [ "$profile" = release ]; then
        say "building cartscope (release)"
        cargo build --release --quiet
    else
        say "building cartscope (debug)"
        cargo build --quiet
    fi
    bin="$target/$profile/cartscope"
fi
# The floor is a crate of its own (serde_json only): always release, a few seconds to build.
say "building the parse floor (bench/floor, release)"
cargo build --release --quiet --manifest-path bench/floor/Cargo.toml --target-dir "$target/floor"
floor="$target/floor/release/parse-floor"
[ -x "$floor" ] || floor=""
[ -x "$bin" ] || { echo "bench/run.sh: no cartscope binary at '$bin'" >&2; exit 1; }

PY=""
# The DuckDB the tables were measured with, and whose text forms (timestamps, maps)
# bench/duckdb/agree.py reads: a newer release is a deliberate change, not an accident of CI.
DUCKDB_VERSION=2.0.1
if [ "$duckdb" = 1 ]; then
    venv="$ROOT/bench/.venv"
    if [ ! -x "$venv/bin/python" ] ||
        ! "$venv/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
        say "installing DuckDB from PyPI into bench/.venv"
        # A smoke run without network gives up quickly rather than retrying for minutes.
        pip_opts=""
        [ "$smoke" = 1 ] && pip_opts="--timeout 15 --retries 1"
        # shellcheck disable=SC2086
        if ! { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet $pip_opts "duckdb==$DUCKDB_VERSION"; } >&2; then
            if [ "$smoke" = 1 ]; then
                say "DuckDB could not be installed: the smoke run goes on without it"
                duckdb=0
            else
                echo "bench/run.sh: cannot install DuckDB (pip install duckdb==$DUCKDB_VERSION into bench/.venv)" >&2
                exit 1
            fi
        fi
    fi
    [ "$duckdb" = 1 ] && PY="$venv/bin/python"
fi
DDB="$ROOT/bench/duckdb"
# cartscope as every timed run calls it; DuckDB gets the same memory cap.
CS=("$bin" --no-progress)
if [ -n "$memory_limit" ]; then
    CS+=(--memory-limit "$memory_limit")
    export DUCKDB_MEMORY_LIMIT="$memory_limit"
fi

# ---- measuring ---------------------------------------------------------------------------
raw="$work/raw.tsv"
: > "$raw"
# Whether each peer run's rows were cartscope's (bench/duckdb/agree.py), beside raw.tsv.
agreed="$work/agree.tsv"
: > "$agreed"
# measure SIZE TASK TOOL BYTES OUT -- command...: one timed run, appended to raw.tsv.
measure() {
    local size=$1 task=$2 tool=$3 bytes=$4 out=$5
    shift 6
    local tfile="$work/time.txt" start end status=0
    start=$(date +%s.%N)
    "$TIME" -v -o "$tfile" "$@" >"$out" 2>"$work/stderr.txt" || status=$?
    end=$(date +%s.%N)
    if [ "$status" != 0 ]; then
        echo "bench/run.sh: $task/$tool failed (exit $status): $*" >&2
        tail -5 "$work/stderr.txt" >&2
        exit 1
    fi
    local rss rows
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")
    rows=$( [ -f "$out" ] && wc -l <"$out" || echo 0)
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
    # The floor reports its own parse time (the file is read into memory first).
    if [ "$tool" = floor ]; then
        secs=$(awk '{for (i = 1; i <= NF; i++) if ($(i + 1) == "s") print $i}' "$out" | head -1)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$task" "$tool" "$secs" "$rss" "$bytes" "$rows" >>"$raw"
    printf '   %-8s %-34s %-9s %8.3f s %8d MB\n' "$size" "$task" "$tool" "$secs" "$((rss / 1024))" >&2
}

# agree SIZE TASK: whether the last cartscope and DuckDB runs of TASK (a.csv, b.csv) gave the
# same rows in the same order (any order for a library query whose ORDER BY leaves ties),
# appended to agree.tsv for the table. A comparison that fails to run is a difference.
agree() {
    local verdict rc=0 order=()
    case "$2" in
        "query reference_correlation") order=(--any-order) ;;
    esac
    verdict=$("$PY" "$DDB/agree.py" "${order[@]}" "$work/a.csv" "$work/b.csv") || rc=$?
    if [ "$rc" -ge 2 ] || [ -z "$verdict" ]; then
        verdict="differ: agree.py failed (exit $rc)"
    fi
    printf '%s\t%s\t%s\n' "$1" "$2" "$verdict" >>"$agreed"
}

carts_of() {
    case "$1" in
        *[kK]) echo $(( ${1%[kK]} * 1000 )) ;;
        *[mM]) echo $(( ${1%[mM]} * 1000000 )) ;;
        *) echo "$1" ;;
    esac
}

if [ "$queries" = all ]; then
    queries=$(cd "$DDB/queries" && ls -- *.sql | sed 's/\.sql$//' | tr '\n' ' ')
elif [ "$queries" = none ]; then
    queries=""
fi

# kept_replay DS: the folder of the replay cartscope kept beside the dataset DS last.
kept_replay() {
    ls -td "$1"/replays/*/ 2>/dev/null | head -1 | sed 's:/$::'
}

# bench_tasks LABEL DS TASKS: times detect, report and each library query over the dataset
# DS. detect replays from scratch (--refresh) and keeps the replay; the queries read it.
bench_tasks() {
    local size=$1 ds=$2 tasks=$3 task run
    for task in $tasks; do
        for run in $(seq 1 "$runs"); do
            if [ "$task" = detect ]; then
                measure "$size" detect cartscope 0 "$work/a.csv" -- \
                    "${CS[@]}" detect --data "$ds" -f csv --refresh
                if [ -n "$PY" ]; then
                    measure "$size" detect duckdb 0 "$work/b.csv" -- \
                        "$PY" "$DDB/run.py" "$DDB/dataset.sql" "$DDB/replay.sql" \
                        --then "$DDB/detect.sql" --out /dev/stdout "DATA=$ds"
                    agree "$size" detect
                fi
            elif [ "$task" = report ]; then
                measure "$size" report cartscope 0 "$work/a.csv" -- \
                    "${CS[@]}" report --data "$ds" -f json --refresh
            else
                if [ -z "$(kept_replay "$ds")" ]; then
                    "${CS[@]}" detect --data "$ds" -f csv >/dev/null
                fi
                measure "$size" "query $task" cartscope 0 "$work/a.csv" -- \
                    "${CS[@]}" query "$task" --data "$ds" -f csv
                if [ -n "$PY" ]; then
                    measure "$size" "query $task" duckdb 0 "$work/b.csv" -- \
                        "$PY" "$DDB/run.py" "$DDB/kept.sql" --then "$DDB/queries/$task.sql" \
                        --out /dev/stdout "DATA=$ds" "REPLAY=$(kept_replay "$ds")"
                    agree "$size" "query $task"
                fi
            fi
            true
        done
    done
}

# bench_export LABEL TRACES DATA_FOR_INGEST DS TASKS [PEER_TRACES]: times ingest of TRACES,
# then detect and TASKS over the dataset DS (ingested from DATA_FOR_INGEST once, untimed).
# JSON is compared with DuckDB and the floor; a protobuf export with PEER_TRACES, the same
# data as JSON, read by cartscope.
bench_export() {
    local size=$1 traces=$2 source=$3 ds=$4 tasks=$5 peer=${6:-}
    local bytes
    bytes=$(stat -c %s "$traces")
    say "$size: $(basename "$traces") $((bytes / 1000000)) MB"
    if [ ! -f "$ds/_cartscope.json" ]; then
        rm -rf "$ds"
        "$bin" --no-progress ingest "$source" --out "$ds" >/dev/null
    fi
    for run in $(seq 1 "$runs"); do
        [ "$ingest" = 1 ] || break
        rm -rf "$work/ingest-out" "$work/flat.parquet"
        measure "$size" ingest cartscope "$bytes" "$work/out.txt" -- \
            "${CS[@]}" ingest "$traces" --out "$work/ingest-out"
        if [ -n "$peer" ]; then
            rm -rf "$work/ingest-out"
            measure "$size" ingest json "$bytes" "$work/out.txt" -- \
                "${CS[@]}" ingest "$peer" --out "$work/ingest-out"
            continue
        fi
        if [ -n "$PY" ] && [ "${duckdb_ingest:-1}" = 1 ]; then
            measure "$size" ingest duckdb "$bytes" "$work/out.txt" -- \
                "$PY" "$DDB/run.py" "$DDB/flatten.sql" "INPUT=$traces" "OUTPUT=$work/flat.parquet"
        fi
        # The floor parses plain JSON only.
        if [ -n "$floor" ] && [[ "$traces" == *.jsonl ]]; then
            measure "$size" ingest floor "$bytes" "$work/floor.txt" -- "$floor" "$traces"
        fi
    done
    rm -rf "$work/ingest-out" "$work/flat.parquet"
    # The replay straight from the raw export, beside DuckDB's from the same JSON (raw.sql
    # reads OTLP/JSON and protobuf's JSON mapping alike: status codes as numbers or enum
    # names; the Python SDK's base64 ids are kept as text, so its carts are the same but for
    # last_trace_id; not protobuf).
    for run in $(seq 1 "$runs"); do
        [ "$detect" = 1 ] && [ "$raw_detect" = 1 ] && [ -z "$peer" ] || break
        measure "$size" "detect raw" cartscope "$bytes" "$work/a.csv" -- \
            "${CS[@]}" detect --data "$traces" -f csv
        if [ -n "$PY" ]; then
            measure "$size" "detect raw" duckdb "$bytes" "$work/b.csv" -- \
                "$PY" "$DDB/run.py" "$DDB/raw.sql" "$DDB/replay.sql" --then "$DDB/detect.sql" \
                --out /dev/stdout "INPUT=$traces"
            agree "$size" "detect raw"
        fi
    done
    [ "$report" = 1 ] && tasks="report $tasks"
    [ "$detect" = 1 ] && tasks="detect $tasks"
    bench_tasks "$size" "$ds" "$tasks"
}

for size in $sizes; do
    n=$(carts_of "$size")
    gen="$work/gen-$n"
    traces="$gen/otlp/traces.jsonl"
    gen_args=()
    if [ "$compress" = zstd ]; then
        traces="$traces.zst"
        gen_args=(--compress zstd)
    fi
    if [ ! -f "$traces" ]; then
        say "generating $n carts"
        rm -rf "$gen"
        "$bin" --no-progress generate --carts "$n" --out "$gen" "${gen_args[@]}" >/dev/null
    fi
    bench_export "$size" "$traces" "$gen/otlp" "$work/ds-$n" "$queries"
done

# The real SDKs' exports: ingest, detect, the report and the library queries (each SDK's
# datasets have no metrics, exemplars or logs: DuckDB reads those tables empty, run.py).
for size in $sdk_sizes; do
    n=$(carts_of "$size")
    sdk="$work/sdk-$n"
    if [ ! -f "$sdk/py-json/traces.jsonl" ]; then
        say "writing $n carts through the real OpenTelemetry SDKs (bench/real-sdk/make.sh)"
        rm -rf "$sdk"
        "$ROOT/bench/real-sdk/make.sh" "$sdk" --carts "$n" --seed 7
    fi
    bench_export "$size js" "$sdk/js/traces.jsonl" "$sdk/js/traces.jsonl" "$work/ds-sdk-js-$n" \
        "$queries"
    # DuckDB's flatten.sql reads OTLP/JSON's numeric enums, not protobuf's JSON mapping
    # (enum names, base64 ids): py-json's ingest is compared with the floor only.
    duckdb_ingest=0 bench_export "$size py-json" "$sdk/py-json/traces.jsonl" \
        "$sdk/py-json/traces.jsonl" "$work/ds-sdk-py-$n" "$queries"
    # The same dataset as py-json: its detect is timed once, above.
    detect=0 bench_export "$size py-proto" "$sdk/py-proto/traces.binpb" \
        "$sdk/py-proto/traces.binpb" "$work/ds-sdk-py-$n" "" "$sdk/py-json/traces.jsonl"
done


# ---- the table ---------------------------------------------------------------------------
machine="$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
AGREE="$agreed" python3 "$ROOT/bench/summarize.py" "$raw" "$machine" "bench/run.sh${args:+ $args}" \
    "$("$bin" --version 2>/dev/null || echo cartscope)" \
    "$([ -n "$PY" ] && "$PY" -c 'import duckdb; print("duckdb " + duckdb.__version__)' || echo 'duckdb: not run')" \
    | tee "$results"
say "results written to $results"
# A peer that gave other rows than cartscope is a finding, not noise: the table is written,
# and the run fails.
if grep -v -E $'\t(same|same rows, other order)$' "$agreed" >"$work/disagree.tsv"; then
    echo "bench/run.sh: DuckDB's rows differ from cartscope's (bench/duckdb/agree.py):" >&2
    cat "$work/disagree.tsv" >&2
    exit 1
fi
