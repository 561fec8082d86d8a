#!/usr/bin/env bash
# Batches whose commands name earlier events: N `reverse --of-id`s, N/2
# `reverse SEQ`s, and N `capture`/`release --of-id`s of holds, each into a
# journal of N movements (or holds) with ids over 1,000 accounts; and N
# commands naming events of their own batch (holds and transfers, each
# then captured, released or reversed), into the 1,000 accounts alone; on
# a file and on PostgreSQL. Each batch runs RUNS times (default 3), on a
# fresh copy of its journal; prints the median wall time, commands/s and
# the highest peak RSS.
# Usage: benches/targets.sh [N]   (default 50000)
#   LEDGER_TEST_PG=postgresql://...  uses that server (else a throwaway
#                                    cluster, scripts/pg-cluster.sh)
#   FILE_ONLY=1                      skips PostgreSQL
#   LEDGER_BIN=path                  measures that binary instead of
#                                    building this tree's
# Data goes to a temp dir (and temporary databases) deleted afterwards.
set -euo pipefail
n=${1:-50000}
runs=${RUNS:-3}
cd "$(dirname "$0")/.."
if [ -z "${LEDGER_BIN:-}" ]; then
    cargo build --release --quiet
fi
bin=${LEDGER_BIN:-$PWD/target/release/ledger}
dir=$(mktemp -d)
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z TZ=UTC
dbs=()
cleanup() {
    for db in "${dbs[@]}"; do
        psql -q "$LEDGER_TEST_PG" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    [ -n "${own_cluster:-}" ] && bash scripts/pg-cluster.sh stop "$LEDGER_TEST_PG_DIR"
    rm -rf "$dir"
}
trap cleanup EXIT

# The journals' inputs: movements (deposits and transfers) or holds, each
# with an id, after 1,000 funded accounts; then the batches measured.
awk -v n="$n" 'BEGIN {
    for (i = 0; i < 1000; i++) print "create a" i " --currency EUR";
    for (i = 0; i < 1000; i++) print "deposit a" i " 100000";
    for (i = 0; i < n; i++)
        if (i % 2) printf "transfer a%d a%d 1 --id t%d\n", i % 1000, (i + 1) % 1000, i;
        else printf "deposit a%d 1 --id t%d\n", i % 1000, i;
}' >"$dir/movements.txt"
awk -v n="$n" 'BEGIN {
    for (i = 0; i < 1000; i++) print "create a" i " --currency EUR";
    for (i = 0; i < 1000; i++) print "deposit a" i " 100000";
    for (i = 0; i < n; i++) printf "hold a%d 1 --to a%d --id h%d\n", i % 1000, (i + 7) % 1000, i;
}' >"$dir/holds.txt"
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "reverse --of-id t%d\n", i }' >"$dir/reverse-id.txt"
# The transfers: seqs 2002, 2004, ... (the movements start at seq 2001).
awk -v n="$n" 'BEGIN { for (i = 1; i < n; i += 2) printf "reverse %d\n", 2001 + i }' >"$dir/reverse-seq.txt"
awk -v n="$n" 'BEGIN {
    for (i = 0; i < n; i++)
        if (i % 2) printf "capture --of-id h%d\n", i; else printf "release --of-id h%d\n", i;
}' >"$dir/end-holds.txt"

# The same accounts alone, and a batch whose commands name events of the
# same batch: holds and transfers, each then captured, released or reversed.
head -n 2000 "$dir/movements.txt" >"$dir/accounts.txt"
awk -v n="$n" 'BEGIN {
    for (i = 0; i < n; i++) {
        r = i % 6; a = i % 1000;
        if (r == 0) printf "hold a%d 1 --to a%d --id mh%d\n", a, (a + 1) % 1000, i;
        else if (r == 1) printf "capture --of-id mh%d 1\n", i - 1;
        else if (r == 2) printf "transfer a%d a%d 1 --id mt%d\n", a, (a + 5) % 1000, i;
        else if (r == 3) printf "reverse --of-id mt%d\n", i - 1;
        else if (r == 4) printf "hold a%d 2 --expires 2026-12-31 --id mx%d\n", a, i;
        else printf "release --of-id mx%d\n", i - 1;
    }
}' >"$dir/same-batch.txt"

# fresh KIND BASE LOCATION-VAR: a new journal made from BASE's input, on a
# file or in a new database, its location put in the variable named.
count=0
fresh() {
    count=$((count + 1))
    local loc
    if [ "$1" = file ]; then
        loc=$dir/j$count.jsonl
    else
        local name="ledger_bench_targets_${count}_$$"
        psql -q "$LEDGER_TEST_PG" -c "CREATE DATABASE $name" >/dev/null
        dbs+=("$name")
        loc=$base/$name
    fi
    "$bin" -f "$loc" batch "$dir/$2.txt" >/dev/null 2>&1
    printf -v "$3" '%s' "$loc"
}

# measure KIND BASE BATCH COMMANDS: RUNS runs of the batch, each on a
# fresh journal; one line of results.
measure() {
    : >"$dir/t"
    for _ in $(seq "$runs"); do
        local at
        fresh "$1" "$2" at
        local t0=$EPOCHREALTIME
        /usr/bin/time -f "%M" -o "$dir/kb" "$bin" -f "$at" batch "$dir/$3.txt" >/dev/null
        local t1=$EPOCHREALTIME
        "$bin" -f "$at" verify -q >/dev/null
        echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $(cat "$dir/kb")" >>"$dir/t"
    done
    sort -n "$dir/t" | awk -v kind="$1" -v what="$3" -v c="$4" '
        { s[NR] = $1; if ($2 > m) m = $2 }
        END { t = s[int((NR + 1) / 2)];
              printf "%-10s %-12s %8d %9.3f s %12.0f/s %7.0f MiB  (%s-%s s)\n",
                  kind, what, c, t, c / t, m / 1024, s[1], s[NR] }'
}

kinds=(file)
if [ -z "${FILE_ONLY:-}" ]; then
    if [ -z "${LEDGER_TEST_PG:-}" ]; then
        eval "$(bash scripts/pg-cluster.sh start)"
        own_cluster=1
    fi
    base=${LEDGER_TEST_PG%/*}
    kinds+=(postgresql)
fi
printf '%-10s %-12s %8s %11s %14s %11s   medians of %s runs\n' \
    backend batch commands time rate "peak RSS" "$runs"
for kind in "${kinds[@]}"; do
    measure "$kind" movements reverse-id "$n"
    measure "$kind" movements reverse-seq $((n / 2))
    measure "$kind" holds end-holds "$n"
    measure "$kind" accounts same-batch "$n"
done
