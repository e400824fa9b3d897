#!/usr/bin/env bash
# Shows that a change left cartscope's outputs byte for byte as they were, on sample-data/:
# `detect -f csv`, `report` in all four formats, `check` in text, JSON and JUnit, every
# library query in CSV, `schema` and `tables`; stderr and exit codes too. Used for refactorings that must not change behaviour.
#
#   bench/same-output.sh OLD_BIN NEW_BIN        compare two binaries
#   bench/same-output.sh --rev REV [NEW_BIN]    build REV in a temporary worktree (sharing
#                                               target/) and compare it with NEW_BIN
#                                               [target/debug/cartscope]; target/debug/cartscope
#                                               is then REV's until the next build
#
# Exit code 0 when every output is identical, 1 when any differs (the diff is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "${1:-}" = "--rev" ]; then
    rev=$2
    cp "${3:-target/debug/cartscope}" "$work/new-cartscope"
    new="$work/new-cartscope"
    git worktree add --detach "$work/src" "$rev" >/dev/null
    trap 'git -C "$root" worktree remove --force "$work/src"; rm -rf "$work"' EXIT
    # The same target/ as this checkout: only cartscope itself compiles again (the first
    # `cargo build` here also builds the dependencies without the tests' features).
    (cd "$work/src" && cargo build --quiet --target-dir "$root/target")
    cp "$root/target/debug/cartscope" "$work/old-cartscope"
    old="$work/old-cartscope"
else
    old=${1:?usage: bench/same-output.sh OLD_BIN NEW_BIN | --rev REV [NEW_BIN]}
    new=${2:?usage: bench/same-output.sh OLD_BIN NEW_BIN | --rev REV [NEW_BIN]}
fi

# Writes every output of binary $1 into folder $2. Exit codes are kept beside the outputs,
# since `check` exits 1 when a rule fails.
outputs() {
    local bin=$1 out=$2 data=sample-data/otlp
    mkdir -p "$out"
    run() {
        local name=$1
        shift
        local code=0
        "$bin" --no-progress "$@" >"$out/$name" 2>"$out/$name.stderr" || code=$?
        echo "$code" >"$out/$name.code"
    }
    run detect.csv detect --data "$data" -f csv
    for f in text markdown html json; do
        run "report.$f" report --data "$data" -f "$f"
    done
    run check.txt check --data "$data" --rules checks.example.toml -f text
    run check.json check --data "$data" --rules checks.example.toml -f json \
        --junit "$out/check.junit.xml"
    for q in $("$bin" queries -f csv | tail -n +2 | cut -d, -f1); do
        run "query.$q.csv" query "$q" --data "$data" -f csv
    done
    run queries.csv queries -f csv
    run schema.csv schema -f csv
    run tables.csv tables --data "$data" -f csv
    # The generator: its export and truth, byte for byte.
    run generate.txt generate --carts 300 --seed 7 --naming otel-demo \
        --incident payment-errors:09:00-10:00 --out "$out/gen"
    sed -i 's/ in [0-9.]* s, \([0-9.]*\) MB ([0-9]* MB\/s)/ in - s, \1 MB (- MB\/s)/' "$out/generate.txt"
    sed -i "s|$out/||g" "$out/generate.txt"
    # JUnit is compared as XML (canonical form, whitespace between elements dropped, and the
    # root's skipped="0", which quick-junit always writes): quick-junit writes it since the
    # hand-written file was replaced, with other indentation and attribute order.
    python3 -c '
import sys, xml.etree.ElementTree as E
root = E.parse(sys.argv[1]).getroot()
if root.get("skipped") == "0":
    del root.attrib["skipped"]
sys.stdout.write(E.canonicalize(E.tostring(root, encoding="unicode"), strip_text=True))
' "$out/check.junit.xml" >"$out/check.junit.c14n" && rm "$out/check.junit.xml"
}

outputs "$old" "$work/old"
outputs "$new" "$work/new"
if diff -r "$work/old" "$work/new"; then
    echo "same output: $(ls "$work/new" | grep -vc '\.\(code\|stderr\)$') files identical"
else
    echo "outputs differ"
    exit 1
fi
