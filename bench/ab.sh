#!/usr/bin/env bash
# Before and after a change, in one run: two cartscope binaries (and optionally a peer
# command, DuckDB doing the same work) run alternately A B [peer] A B [peer] ... on the same
# arguments, with wall time and peak RSS (/usr/bin/time -v) of each run.
#
#   bench/ab.sh [--runs 5] [--label TEXT] [--peer 'COMMAND'] [--results FILE]
#               A_BIN B_BIN -- CARTSCOPE_ARGS...
#
# Prints (and appends to --results, if given) one markdown row: the medians, B's speed-up
# over A (A time / B time), the peer's time over B's (above 1: B is faster), the peak RSS
# medians, and whether A and B wrote the same stdout (they must, for a change that keeps the
# output; the row says "DIFFERENT" otherwise and the script exits 1). The peer's output is
# not compared (its text forms differ; bench/run.sh compares row counts).
set -euo pipefail
runs=5 label="" peer="" results=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --label) label=$2; shift 2 ;;
        --peer) peer=$2; shift 2 ;;
        --results) results=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[ $# -ge 3 ] && [ "$3" = "--" ] || { sed -n '2,14p' "$0" >&2; exit 2; }
a=$1 b=$2
shift 3
[ -x "$a" ] && [ -x "$b" ] || { echo "bench/ab.sh: A_BIN and B_BIN must be executables" >&2; exit 2; }
[ -z "$label" ] && label="$*"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure NAME CMD...: appends "seconds peak_kb" to $work/NAME, stdout to $work/NAME.out.
measure() {
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$work/time" "$@" >"$work/$name.out" 2>"$work/$name.err"; then
        echo "bench/ab.sh: failed: $*" >&2
        cat "$work/$name.err" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    local kb
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    echo "$(echo "$t1 - $t0" | bc -l) $kb" >>"$work/$name"
}

for i in $(seq 1 "$runs"); do
    measure a "$a" --no-progress "$@"
    measure b "$b" --no-progress "$@"
    [ -n "$peer" ] && measure peer bash -c "$peer"
done

median() { # FILE COLUMN
    sort -g -k"$2" "$1" | awk -v c="$2" '{v[NR]=$c} END {m=int((NR+1)/2); if (NR%2) print v[m]; else print (v[m]+v[m+1])/2}'
}
ta=$(median "$work/a" 1) tb=$(median "$work/b" 1)
ma=$(median "$work/a" 2) mb=$(median "$work/b" 2)
same=same
cmp -s "$work/a.out" "$work/b.out" || same=DIFFERENT
tp="–" mp="–" ratio="–"
if [ -n "$peer" ]; then
    tp=$(median "$work/peer" 1)
    mp=$(printf '%.0f' "$(echo "$(median "$work/peer" 2) / 1024" | bc -l)")
    ratio=$(printf '%.2f' "$(echo "$tp / $tb" | bc -l)")
    tp=$(printf '%.3f' "$tp")
fi
row=$(printf '| %s | %s | %.3f | %.3f | %.2f | %s | %s | %.0f / %.0f / %s | %s |' \
    "$label" "$runs" "$ta" "$tb" "$(echo "$ta / $tb" | bc -l)" "$tp" "$ratio" \
    "$(echo "$ma / 1024" | bc -l)" "$(echo "$mb / 1024" | bc -l)" "$mp" "$same")
header='| task | runs | A s | B s | A/B | peer s | peer/B | peak MB A / B / peer | stdout A vs B |'
echo "$header"
echo '|---|---|---|---|---|---|---|---|---|'
echo "$row"
[ -n "$results" ] && echo "$row" >>"$results"
[ "$same" = same ]
