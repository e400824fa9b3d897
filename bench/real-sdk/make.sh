#!/usr/bin/env bash
# Writes shop exports with the REAL OpenTelemetry SDKs, each with its truth.json.
#
#   bench/real-sdk/make.sh OUT_DIR --carts N [--seed S] [--gzip] [--timeout SECONDS] [--logs]
#                          [--catalog] [--metrics [--sample-rate P]]
#
# OUT_DIR/js/{traces.jsonl,truth.json}        JS SDK, OTLP/HTTP JSON bodies, one per line
# OUT_DIR/py-proto/{traces.binpb,truth.json}  Python SDK, OTLP/HTTP protobuf bodies, each
#                                             preceded by its 4-byte big-endian length
# OUT_DIR/py-json/{traces.jsonl,truth.json}   the same Python bodies in protobuf's JSON
#                                             mapping (json_format), one per line
#
# With --logs, instead of those three, only:
# OUT_DIR/py-logs/{traces.jsonl,logs.jsonl,truth.json}
#                                             Python SDK with log records too (shop.py
#                                             --logs-endpoint: Python logging through the
#                                             SDK's LoggingHandler, inside the spans), traces
#                                             and logs in the JSON mapping as py-json, and a
#                                             truth with each cart's log_count and last_log
#
# With --metrics, instead of those three, only:
# OUT_DIR/py-metrics/{traces.jsonl,metrics.jsonl,truth.json}
#                                             Python SDK with the cart service's transition
#                                             counter too (shop.py --metrics-endpoint, the
#                                             SDK's cumulative temporality), in the JSON
#                                             mapping; the truth with `transitions` by stage
# and with --sample-rate P the same in OUT_DIR/py-sampled/, the traces sampled by the SDK's
# ParentBased(TraceIdRatioBased(P)) (the metrics and the truth complete).
#
# --catalog plans a shop that records a cart's value only at checkout and prices on product
# views and on half the carts' adds (plan.py --catalog), for the estimate of unknown values.
#
# The simulation is planned once (plan.py, deterministic from the seed), replayed through
# each SDK (js/shop.mjs, shop.py) against a local sink (sink.py, 127.0.0.1, a free port), and
# checked span by span against the plan (truth.py) before the truth is written. The trace and
# span ids are the SDKs' own random ones, so only they (and last_trace_id) change between runs.
# --gzip compresses the traces (and logs) files (gzip -n: no name or time in the header).
#
# Installs what it needs on first use: npm ci into js/node_modules and a venv with
# requirements.txt in .venv (again only when package-lock.json or requirements.txt changed).
# Quiet on success; on failure it says what failed with that step's output, and exits 1.
# Every step runs under a time limit (--timeout per driver, default 1800 s), and the sinks
# are stopped whatever happens.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    echo "usage: $0 OUT_DIR --carts N [--seed S] [--gzip] [--timeout SECONDS] [--logs] [--catalog] [--metrics [--sample-rate P]]" >&2
    exit 2
}

OUT="" CARTS="" SEED=7 GZIP=0 TIMEOUT=1800 LOGS=0 CATALOG=() METRICS=0 RATE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --carts) [ $# -ge 2 ] || usage; CARTS=$2; shift 2 ;;
        --seed) [ $# -ge 2 ] || usage; SEED=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
        --gzip) GZIP=1; shift ;;
        --logs) LOGS=1; shift ;;
        --catalog) CATALOG=(--catalog); shift ;;
        --metrics) METRICS=1; shift ;;
        --sample-rate) [ $# -ge 2 ] || usage; RATE=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "make.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$OUT" ] || usage; OUT=$1; shift ;;
    esac
done
[ -n "$OUT" ] && [ -n "$CARTS" ] || usage
for n in "$CARTS" "$SEED" "$TIMEOUT"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "make.sh: '$n' is not a whole number" >&2; exit 2; }
done
[ "$CARTS" -ge 1 ] || { echo "make.sh: --carts must be at least 1" >&2; exit 2; }

fail() {
    echo "make.sh: $*" >&2
    exit 1
}
for tool in node npm python3 timeout gzip; do
    command -v "$tool" >/dev/null || fail "needs $tool on PATH"
done

# Only the settings in this script: no OTEL_* variable of the caller's reaches an SDK.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^OTEL_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cartscope-real-sdk.XXXXXX")
SINKS=() JOBS=()
cleanup() {
    local rc=$?
    for pid in "${JOBS[@]}" "${SINKS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${JOBS[@]}" "${SINKS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command with its output in a log, showing the log only when it fails.
logged() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "make.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# --- dependencies, installed once (one make.sh at a time installs) -------------------------
install_deps() {
    local stamp
    stamp="$HERE/js/node_modules/.cartscope-lock.sha256"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha "$HERE/js/package-lock.json")" ]; then
        logged "$WORK/npm.log" timeout 600 npm ci --prefix "$HERE/js" --no-audit --no-fund --loglevel=error
        sha "$HERE/js/package-lock.json" >"$stamp"
    fi
    stamp="$HERE/.venv/.cartscope-requirements.sha256"
    if [ ! -x "$HERE/.venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(sha "$HERE/requirements.txt")" ]; then
        [ -x "$HERE/.venv/bin/python" ] || logged "$WORK/venv.log" timeout 300 python3 -m venv "$HERE/.venv"
        logged "$WORK/pip.log" timeout 600 "$HERE/.venv/bin/python" -m pip install --disable-pip-version-check -q -r "$HERE/requirements.txt"
        sha "$HERE/requirements.txt" >"$stamp"
    fi
}
if command -v flock >/dev/null; then
    exec 9>"$HERE/.install.lock"
    timeout 900 flock 9 || fail "waited too long for another make.sh to install"
    install_deps
    flock -u 9
    exec 9>&-
else
    install_deps
fi
PY="$HERE/.venv/bin/python"

# --- the plan ---------------------------------------------------------------------------
logged "$WORK/plan.log" timeout "$TIMEOUT" "$PY" "$HERE/plan.py" --carts "$CARTS" --seed "$SEED" "${CATALOG[@]}" --out "$WORK/plan.json"

# --- sinks, then both drivers at once -------------------------------------------------------
start_sink() { # NAME ARGS...: sets SINK_PORT
    local name=$1
    shift
    "$PY" "$HERE/sink.py" --port-file "$WORK/$name.port" --timeout $((TIMEOUT + 300)) "$@" \
        >"$WORK/$name-sink.log" 2>&1 &
    SINKS+=($!)
    local pid=$! i
    for i in $(seq 1 300); do
        [ -s "$WORK/$name.port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name-sink.log" >&2; fail "the $name sink did not start"; }
        sleep 0.1
    done
    [ -s "$WORK/$name.port" ] || fail "the $name sink did not start within 30 s"
    SINK_PORT=$(cat "$WORK/$name.port")
}

stop_sink() { # PID NAME
    kill -TERM "$1" 2>/dev/null || true
    if ! wait "$1"; then
        cat "$WORK/$2-sink.log" >&2
        fail "the $2 sink failed"
    fi
}

if [ -n "$RATE" ]; then
    [ "$METRICS" = 1 ] || { echo "make.sh: --sample-rate goes with --metrics" >&2; exit 2; }
    [[ "$RATE" =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || { echo "make.sh: --sample-rate '$RATE' is not a probability from 0 to 1" >&2; exit 2; }
fi

# The Python driver alone, its export in $WORK/KIND (protobuf bodies in $WORK/KIND-proto):
# python_only KIND SIGNAL [SHOP_ARGS...], SIGNAL (logs, metrics) sent to the sink beside the
# traces.
python_only() {
    local kind=$1 signal=$2
    shift 2
    mkdir -p "$WORK/$kind" "$WORK/$kind-proto"
    start_sink py --out-dir "$WORK/$kind-proto" --proto-json "$WORK/$kind/traces.jsonl"
    PY_SINK=${SINKS[-1]} PY_PORT=$SINK_PORT
    timeout --kill-after=10 "$TIMEOUT" "$PY" "$HERE/shop.py" --plan "$WORK/plan.json" \
        --endpoint "http://127.0.0.1:$PY_PORT/v1/traces" --ids "$WORK/py.ids.json" \
        "--$signal-endpoint" "http://127.0.0.1:$PY_PORT/v1/$signal" "$@" >"$WORK/py.log" 2>&1 &
    PY_DRIVER=$!
    JOBS+=("$PY_DRIVER")
    PY_RC=0
    wait "$PY_DRIVER" || PY_RC=$?
    JOBS=()
    [ "$PY_RC" -eq 0 ] || { cat "$WORK/py.log" >&2; fail "the Python driver failed (exit $PY_RC; 124 is the $TIMEOUT s timeout)"; }
    stop_sink "$PY_SINK" py
    SINKS=()
}

# Gzips (with --gzip) and moves into $OUT/KIND the traces, the SIGNAL file and the truth:
# place KIND SIGNAL.
place() {
    local kind=$1 signal=$2
    if [ "$GZIP" = 1 ]; then
        gzip -n -9 "$WORK/$kind/traces.jsonl" "$WORK/$kind/$signal.jsonl"
    fi
    mkdir -p "$OUT/$kind"
    rm -f "$OUT/$kind"/traces.jsonl* "$OUT/$kind/$signal".jsonl* "$OUT/$kind"/truth.json
    mv "$WORK/$kind"/traces.jsonl* "$WORK/$kind/$signal".jsonl* "$WORK/$kind/truth.json" "$OUT/$kind/"
}

if [ "$METRICS" = 1 ]; then
    # Only the Python driver, with the transition counter; sampled when --sample-rate.
    KIND=py-metrics SAMPLING=()
    if [ -n "$RATE" ]; then KIND=py-sampled SAMPLING=(--sample-rate "$RATE"); fi
    python_only "$KIND" metrics "${SAMPLING[@]}"
    touch "$WORK/$KIND/traces.jsonl" "$WORK/$KIND/metrics.jsonl"
    logged "$WORK/$KIND-truth.log" timeout "$TIMEOUT" "$PY" "$HERE/truth.py" --plan "$WORK/plan.json" \
        --ids "$WORK/py.ids.json" --export "$WORK/$KIND/traces.jsonl" \
        --metrics "$WORK/$KIND/metrics.jsonl" --out "$WORK/$KIND/truth.json"
    place "$KIND" metrics
    exit 0
fi

if [ "$LOGS" = 1 ]; then
    # Only the Python driver, with logs; the protobuf bodies are kept aside, not shipped.
    python_only py-logs logs
    # no file when the plan has no log line (a few carts): truth.py then checks there is none
    touch "$WORK/py-logs/logs.jsonl" "$WORK/py-logs-proto/logs.binpb"
    logged "$WORK/py-logs-truth.log" timeout "$TIMEOUT" "$PY" "$HERE/truth.py" --plan "$WORK/plan.json" \
        --ids "$WORK/py.ids.json" --export "$WORK/py-logs/traces.jsonl" \
        --logs "$WORK/py-logs/logs.jsonl" --out "$WORK/py-logs/truth.json"
    # the protobuf bodies hold the same records
    logged "$WORK/py-logs-proto-truth.log" timeout "$TIMEOUT" "$PY" "$HERE/truth.py" --plan "$WORK/plan.json" \
        --ids "$WORK/py.ids.json" --export "$WORK/py-logs-proto/traces.binpb" \
        --logs "$WORK/py-logs-proto/logs.binpb" --out "$WORK/py-logs-proto/truth.json"
    place py-logs logs
    exit 0
fi

mkdir -p "$WORK/js" "$WORK/py-proto" "$WORK/py-json"
start_sink js --out-dir "$WORK/js"
JS_SINK=${SINKS[-1]} JS_PORT=$SINK_PORT
start_sink py --out-dir "$WORK/py-proto" --proto-json "$WORK/py-json/traces.jsonl"
PY_SINK=${SINKS[-1]} PY_PORT=$SINK_PORT

timeout --kill-after=10 "$TIMEOUT" node "$HERE/js/shop.mjs" --plan "$WORK/plan.json" \
    --endpoint "http://127.0.0.1:$JS_PORT/v1/traces" --ids "$WORK/js.ids.json" >"$WORK/js.log" 2>&1 &
JS_DRIVER=$!
JOBS+=("$JS_DRIVER")
timeout --kill-after=10 "$TIMEOUT" "$PY" "$HERE/shop.py" --plan "$WORK/plan.json" \
    --endpoint "http://127.0.0.1:$PY_PORT/v1/traces" --ids "$WORK/py.ids.json" >"$WORK/py.log" 2>&1 &
PY_DRIVER=$!
JOBS+=("$PY_DRIVER")
JS_RC=0 PY_RC=0
wait "$JS_DRIVER" || JS_RC=$?
wait "$PY_DRIVER" || PY_RC=$?
JOBS=()
[ "$JS_RC" -eq 0 ] || { cat "$WORK/js.log" >&2; fail "the JS driver failed (exit $JS_RC; 124 is the $TIMEOUT s timeout)"; }
[ "$PY_RC" -eq 0 ] || { cat "$WORK/py.log" >&2; fail "the Python driver failed (exit $PY_RC; 124 is the $TIMEOUT s timeout)"; }
stop_sink "$JS_SINK" js
stop_sink "$PY_SINK" py
SINKS=()

# --- check each export against the plan, and write its truth -------------------------------
truth() { # KIND IDS EXPORT
    timeout "$TIMEOUT" "$PY" "$HERE/truth.py" --plan "$WORK/plan.json" \
        --ids "$WORK/$2" --export "$WORK/$1/$3" --out "$WORK/$1/truth.json" >"$WORK/$1-truth.log" 2>&1 &
    JOBS+=($!)
}
truth js js.ids.json traces.jsonl
truth py-proto py.ids.json traces.binpb
truth py-json py.ids.json traces.jsonl
KINDS=(js py-proto py-json)
for i in 0 1 2; do
    wait "${JOBS[$i]}" || { cat "$WORK/${KINDS[$i]}-truth.log" >&2; fail "truth.py failed on the ${KINDS[$i]} export"; }
done
JOBS=()

# --- into place ---------------------------------------------------------------------------
for kind in "${KINDS[@]}"; do
    for f in "$WORK/$kind"/traces.*; do
        if [ "$GZIP" = 1 ]; then
            gzip -n -9 "$f"
        fi
    done
    mkdir -p "$OUT/$kind"
    rm -f "$OUT/$kind"/traces.jsonl "$OUT/$kind"/traces.jsonl.gz "$OUT/$kind"/traces.binpb \
        "$OUT/$kind"/traces.binpb.gz "$OUT/$kind"/truth.json
    mv "$WORK/$kind"/traces.* "$WORK/$kind/truth.json" "$OUT/$kind/"
done
