#!/usr/bin/env bash
# The replay on a Ballista cluster beside the local engine (issue 18): one
# `cartscope ballista scheduler` and --executors `cartscope ballista executor` processes on
# loopback, then, alternated local / cluster in one run:
#   detect   `cartscope detect --data DS -f csv --refresh` (a whole replay, kept beside DS)
#   query    `cartscope query NAME -f csv` for each --queries NAME, over the kept replay
# with `--engine local` and with `--engine df://127.0.0.1:PORT`. A build with the feature:
# `cargo build --release --features ballista`.
#
#   bench/cluster.sh [--bin PATH] [--runs 3] [--executors 2] [--slots 1] [--split RATE]
#                    [--queries "funnel abandonment_by_last_operation"] [--results FILE] DS
#
# --split RATE (root, iproute2): the second half of the executors run in a network namespace
# of their own, linked to the first by a veth pair that carries at most RATE each way (a tc
# token bucket, like 1gbit; no added delay): a second machine's network, on this machine's
# cores. Every process is then reached at the link's addresses, never loopback.
#
# Per run: wall time, CPU time and peak RSS of the cartscope command (/usr/bin/time -v); for
# the cluster also the CPU seconds its scheduler and executors spent in the run
# (/proc/PID/stat), the bytes of shuffle files the executors wrote (their work folders) and,
# with --split, the bytes that crossed the link. Prints one
# markdown table (appended to --results if given): medians, cluster time / local time
# (above 1: the cluster is slower), and whether both engines wrote the same stdout (they
# must; the script exits 1 otherwise). The executors' peak RSS is over the whole run. With
# CARTSCOPE_TIMINGS=1 in the environment, the phases of each task's last run on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/cartscope runs=3 executors=2 slots=1 results="" split=""
queries="funnel abandonment_by_last_operation"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --executors) executors=$2; shift 2 ;;
        --slots) slots=$2; shift 2 ;;
        --split) split=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --results) results=$2; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        -*) echo "bench/cluster.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || { sed -n '2,25p' "$0" >&2; exit 2; }
ds=$(realpath "$1")
[ -f "$ds/_cartscope.json" ] || { echo "bench/cluster.sh: '$1' is not an ingested dataset (no _cartscope.json): run \`cartscope ingest\` first" >&2; exit 2; }
"$bin" ballista --help >/dev/null 2>&1 || { echo "bench/cluster.sh: '$bin' was built without the ballista feature: cargo build --release --features ballista" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cartscope-cluster.XXXXXX")
pids=()
ns="cartscope-bench-$$" veth="csb$$"
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
    if [ -n "$split" ]; then
        ip netns del "$ns" 2>/dev/null || true
        ip link del "${veth}a" 2>/dev/null || true
    fi
}
trap stop EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Where each side listens and is reached: loopback, or the two ends of the link.
here=127.0.0.1 there=127.0.0.1 bind=127.0.0.1 inside=()
if [ -n "$split" ]; then
    here=10.213.0.1 there=10.213.0.2 bind=0.0.0.0 inside=(ip netns exec "$ns")
    ip netns add "$ns"
    ip link add "${veth}a" type veth peer name "${veth}b"
    ip link set "${veth}b" netns "$ns"
    ip addr add "$here/24" dev "${veth}a"
    ip link set "${veth}a" up
    ip netns exec "$ns" ip addr add "$there/24" dev "${veth}b"
    ip netns exec "$ns" ip link set "${veth}b" up
    ip netns exec "$ns" ip link set lo up
    tc qdisc add dev "${veth}a" root tbf rate "$split" burst 256kb latency 50ms
    ip netns exec "$ns" tc qdisc add dev "${veth}b" root tbf rate "$split" burst 256kb latency 50ms
fi

port=$(free_port)
"$bin" ballista scheduler --bind-host "$bind" --external-host "$here" --port "$port" \
    --min-executors "$executors" >"$work/scheduler.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$executors"); do
    mkdir -p "$work/executor-$i"
    run=() at=$here
    if [ -n "$split" ] && [ "$i" -gt $((executors / 2)) ]; then run=("${inside[@]}") at=$there; fi
    "${run[@]}" "$bin" ballista executor --scheduler "$here:$port" --bind-host "$bind" \
        --external-host "$at" --port "$(free_port)" --grpc-port "$(free_port)" \
        --threads "$slots" --work-dir "$work/executor-$i" >"$work/executor-$i.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 1 240); do
    curl -sf "http://$here:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -sf "http://$here:$port/readyz" >/dev/null || {
    echo "bench/cluster.sh: the scheduler had not $executors executors in 120 s:" >&2
    tail -5 "$work"/*.log >&2
    exit 1
}
mkdir -p "$work/client"
engine="df://$here:$port"
tick=$(getconf CLK_TCK)

# cpu: CPU seconds so far of the cluster's processes (scheduler and executors).
cpu() {
    local t=0 p
    for p in "${pids[@]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t / $tick" | bc -l
}
# link: bytes through the veth pair so far, both ways (0 without --split).
link() {
    if [ -n "$split" ]; then
        echo $(( $(cat "/sys/class/net/${veth}a/statistics/rx_bytes") + $(cat "/sys/class/net/${veth}a/statistics/tx_bytes") ))
    else
        echo 0
    fi
}
shuffle() { du -sb "$work"/executor-* | awk '{s += $1} END {printf "%d\n", s}'; }

# measure NAME CMD...: appends "seconds peak_kb cluster_cpu_s shuffle_bytes client_cpu_s
# link_bytes" to $work/NAME.
measure() {
    local name=$1
    shift
    local t0 t1 c0 c1 s0 s1 l0 l1 kb own
    c0=$(cpu) s0=$(shuffle) l0=$(link) t0=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$work/time" "$@" >"$work/$name.out" 2>"$work/$name.err"; then
        echo "bench/cluster.sh: failed: $*" >&2
        cat "$work/$name.err" >&2
        exit 1
    fi
    t1=$(date +%s.%N) c1=$(cpu) s1=$(shuffle) l1=$(link)
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    own=$(awk -F': ' '/(User|System) time/ {s += $2} END {print s}' "$work/time")
    echo "$(echo "$t1 - $t0" | bc -l) $kb $(echo "$c1 - $c0" | bc -l) $((s1 - s0)) $own $((l1 - l0))" >>"$work/$name"
}
median() { # FILE COLUMN
    sort -g -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'
}

table="$work/table.md"
{
    echo "| task | runs | local s | cluster s | cluster / local | local CPU s | cluster client CPU s | cluster CPU s (scheduler + executors) | local peak MB | cluster client peak MB | shuffle MB written | MB over the link | same stdout |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$table"
status=0
# task LABEL ARGS...: alternated runs of ARGS on both engines, one row of the table.
task() {
    local label=$1 i same
    shift
    rm -f "$work/local" "$work/cluster"
    for i in $(seq 1 "$runs"); do
        measure local "$bin" --no-progress "$@" --engine local
        measure cluster "$bin" --no-progress "$@" --engine "$engine" --work-dir "$work/client"
    done
    same=yes
    [ -s "$work/local.out" ] || { echo "bench/cluster.sh: $label printed nothing" >&2; exit 1; }
    cmp -s "$work/local.out" "$work/cluster.out" || { same=DIFFERENT; status=1; }
    if [ -n "${CARTSCOPE_TIMINGS:-}" ]; then # the phases of the last run of each
        sed -n 's/^cartscope: timing: /local: /p' "$work/local.err" >&2
        sed -n 's/^cartscope: timing: /cluster: /p' "$work/cluster.err" >&2
    fi
    local tl tc
    tl=$(median "$work/local" 1) tc=$(median "$work/cluster" 1)
    local over="–"
    [ -n "$split" ] && over=$(printf '%.0f' "$(echo "$(median "$work/cluster" 6) / 1048576" | bc -l)")
    printf '| %s | %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %s | %s |\n' \
        "$label" "$runs" "$tl" "$tc" "$(echo "$tc / $tl" | bc -l)" \
        "$(median "$work/local" 5)" "$(median "$work/cluster" 5)" "$(median "$work/cluster" 3)" \
        "$(echo "$(median "$work/local" 2) / 1024" | bc -l)" \
        "$(echo "$(median "$work/cluster" 2) / 1024" | bc -l)" \
        "$(echo "$(median "$work/cluster" 4) / 1048576" | bc -l)" \
        "$over" "$same" | tee -a "$table"
}

echo "bench/cluster.sh: $(basename "$ds"), $executors executors x $slots task slots, $runs alternated runs" >&2
task "detect (replay)" detect --data "$ds" -f csv --refresh
for q in $queries; do
    task "query $q" query "$q" --data "$ds" -f csv
done
where="on loopback"
[ -n "$split" ] && where="the last $((executors - executors / 2)) in a network namespace across a veth link of $split each way"
peaks=""
for i in $(seq 1 "$executors"); do
    p=${pids[$i]}
    peaks+="$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$p/status") MB, "
done
{
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(date -u +%Y-%m-%d). Cluster: 1 scheduler, $executors executors x $slots task slots, ${where}; binary $bin of $(date -u -r "$bin" +%Y-%m-%dT%H:%MZ); executors' peak RSS over the run: ${peaks%, }."
} | tee -a "$table"
[ -n "$results" ] && cat "$table" >>"$results"
exit $status
