#!/usr/bin/env bash
# The PostgreSQL backend against the file (issue #16), on a local server:
#   1. `deposit` and `balance ACCOUNT`: medians of RUNS runs on a small
#      journal and on one of EVENTS events (default 100000), file vs database
#      over TCP (TLS and a password, as a remote client signs in) and, when
#      the cluster's directory is known, over its Unix socket (how a client
#      on the server's own machine connects);
#   2. `batch` of BATCH commands (default 1000000) into a new journal, and
#      as many again into the journal it made;
#   3. WRITERS concurrent writer processes (default 16), each posting
#      deposits for SECONDS seconds: commands per second together;
#   4. follow latency: from a write's start to a follower printing it
#      (p50/p99 of 200 writes);
#   5. `verify` of the EVENTS-event journal (events/s), and of part 2's
#      journal of 2 * BATCH events (how fast it streams).
# Uses LEDGER_TEST_PG if set, else starts a throwaway cluster
# (scripts/pg-cluster.sh). Data goes to a temp dir and to databases that
# are dropped afterwards; nothing generated is committed.
set -euo pipefail
events=${EVENTS:-100000}
batch=${BATCH:-1000000}
writers=${WRITERS:-16}
seconds=${SECONDS_EACH:-10}
runs=${RUNS:-11}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
cleanup() {
    for db in "${dbs[@]:-}"; do
        [ -n "$db" ] && psql -q "$LEDGER_TEST_PG" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    [ -n "${own_cluster:-}" ] && bash scripts/pg-cluster.sh stop "$LEDGER_TEST_PG_DIR"
    rm -rf "$dir"
}
trap cleanup EXIT
dbs=()
if [ -z "${LEDGER_TEST_PG:-}" ]; then
    eval "$(bash scripts/pg-cluster.sh start)"
    own_cluster=1
fi
base=${LEDGER_TEST_PG%/*}

# newdb NAME VAR: a fresh database, its URL put in VAR (not printed: the
# list of databases to drop must outlive a command substitution's subshell).
newdb() {
    local name="ledger_bench_$1_$$"
    psql -q "$LEDGER_TEST_PG" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null 2>&1
    dbs+=("$name")
    printf -v "$2" '%s' "$base/$name"
}

# median LOCATION ARGS...: median wall ms and highest peak RSS (KiB).
median() {
    local at=$1
    shift
    : >"$dir/t"
    for _ in $(seq "$runs"); do
        local t0=$EPOCHREALTIME
        /usr/bin/time -f "%M" -o "$dir/kb" "$bin" -f "$at" "$@" >/dev/null
        local t1=$EPOCHREALTIME
        echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }') $(cat "$dir/kb")" >>"$dir/t"
    done
    sort -n "$dir/t" | awk '{ s[NR] = $1; if ($2 > m) m = $2 } END { print s[int((NR + 1) / 2)], m }'
}

# The journals: a small one, and EVENTS events over 1000 accounts with ids.
printf 'create c0\ncreate c1\ndeposit c0 1000\n' >"$dir/small.txt"
awk -v n="$events" 'BEGIN {
    for (i = 0; i < 1000; i++) print "create c" i;
    for (i = 0; i < n - 1000; i++) print "deposit c" (i % 1000) " 1.50 --id e" i;
}' >"$dir/big.txt"
newdb small small_db
newdb big big_db
"$bin" -f "$dir/small.jsonl" batch "$dir/small.txt" >/dev/null
"$bin" -f "$dir/big.jsonl" batch "$dir/big.txt" >/dev/null
"$bin" copy "$dir/small.jsonl" "$small_db" >/dev/null
"$bin" copy "$dir/big.jsonl" "$big_db" >/dev/null
# The same databases through the server's socket directory (trust
# authentication there, no TLS), when the cluster's directory is known.
socket() {
    local name=${1##*/} port=${LEDGER_TEST_PG%/*}
    port=${port##*:}
    echo "postgresql://ledger@/$name?host=$LEDGER_TEST_PG_DIR&port=$port"
}
sockets=()
if [ -n "${LEDGER_TEST_PG_DIR:-}" ]; then
    sockets=("$(socket "$small_db")" "$(socket "$big_db")")
fi
for at in "$dir/small.jsonl" "$dir/big.jsonl" "$small_db" "$big_db"; do
    # Warm up: the file's read model, the database's query tables.
    "$bin" -f "$at" deposit c0 1 >/dev/null
done

echo "== 1. single commands: median ms of $runs runs (peak RSS MiB)"
printf '%-14s %18s %18s %18s %18s' command "file, small" "db, small" "file, $events" "db, $events"
[ ${#sockets[@]} -gt 0 ] && printf ' %18s %18s' "socket, small" "socket, $events"
echo
for cmd in "deposit c0 1" "balance c0" "transfer c0 c1 0.01"; do
    row=$(printf '%-14s' "${cmd%% *}")
    for at in "$dir/small.jsonl" "$small_db" "$dir/big.jsonl" "$big_db" "${sockets[@]}"; do
        # shellcheck disable=SC2086
        read -r ms kb <<<"$(median "$at" $cmd)"
        row="$row $(printf '%12s ms (%2s)' "$ms" $((kb / 1024)))"
    done
    echo "$row"
done

echo "== 2. batch of $batch commands into a new journal, then as many into it"
awk -v n="$batch" 'BEGIN {
    for (i = 0; i < 1000; i++) print "create c" i;
    for (i = 0; i < n - 1000; i++) print "deposit c" (i % 1000) " 1";
}' >"$dir/batch.txt"
awk -v n="$batch" 'BEGIN { for (i = 0; i < n; i++) print "deposit c" (i % 1000) " 2" }' >"$dir/again.txt"
for kind in file db; do
    if [ $kind = file ]; then at="$dir/batch.jsonl"; else newdb batch at; batch_db=$at; fi
    for input in batch again; do
        t0=$EPOCHREALTIME
        /usr/bin/time -f "%M" -o "$dir/kb" "$bin" -f "$at" batch "$dir/$input.txt" >/dev/null
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" -v n="$batch" -v kb="$(cat "$dir/kb")" -v k="$kind, $input" \
            'BEGIN { printf "%-12s %.2f s, %d events/s, %d MiB\n", k, b - a, n / (b - a), kb / 1024 }'
    done
done

echo "== 3. $writers concurrent writers for $seconds s each"
for kind in file db; do
    if [ $kind = file ]; then at="$dir/concurrent.jsonl"; else newdb concurrent at; fi
    "$bin" -f "$at" create shared >/dev/null
    for w in $(seq "$writers"); do
        (
            n=0
            end=$((SECONDS + seconds))
            while [ $SECONDS -lt $end ]; do
                "$bin" -f "$at" deposit shared 1 --id "w$w-$n" >/dev/null && n=$((n + 1))
            done
            echo $n >"$dir/count.$w"
        ) &
    done
    wait
    total=$(cat "$dir"/count.* | awk '{ s += $1 } END { print s }')
    rm -f "$dir"/count.*
    echo "$kind: $total commands, $((total / seconds)) commands/s together"
    "$bin" -f "$at" verify -q >/dev/null
done

# From before the write starts (so it includes the writing command's own
# time, an upper bound on commit-to-print) to the follower's line.
echo "== 4. follow latency (write's start to the follower's line), 200 writes"
for kind in file db; do
    if [ $kind = file ]; then at="$dir/follow.jsonl"; else newdb follow at; fi
    "$bin" -f "$at" create f >/dev/null
    mkfifo "$dir/fifo.$kind"
    "$bin" -f "$at" history --follow --from-seq 1 --json >"$dir/fifo.$kind" &
    follower=$!
    exec 3<"$dir/fifo.$kind"
    : >"$dir/lat"
    for _ in $(seq 200); do
        t0=$EPOCHREALTIME
        "$bin" -f "$at" deposit f 1 >/dev/null
        read -r _ <&3
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }' >>"$dir/lat"
        sleep 0.02
    done
    kill "$follower"
    exec 3<&-
    sort -n "$dir/lat" | awk -v k=$kind '{ s[NR] = $1 } END { printf "%-5s p50 %.1f ms, p99 %.1f ms\n", k, s[int(NR / 2)], s[int(NR * 0.99)] }'
done

echo "== 5. verify of $events events: median of $runs runs"
for at in "$dir/big.jsonl" "$big_db" "${sockets[@]:1}"; do
    read -r ms kb <<<"$(median "$at" verify -q)"
    awk -v ms="$ms" -v n="$events" -v kb="$kb" -v at="${at##*/}" \
        'BEGIN { printf "%-24s %.3f s, %d events/s, %d MiB\n", at, ms / 1000, n / (ms / 1000), kb / 1024 }'
done
# How fast `verify` streams once starting and connecting are paid for
# (20-30 ms, which weigh on the 100,000 events above): part 2's journal,
# also on the file for comparison.
echo "== 5b. verify of the $((2 * batch)) events of part 2: median of $runs runs"
streamed=("$dir/batch.jsonl" "$batch_db")
[ ${#sockets[@]} -gt 0 ] && streamed+=("$(socket "$batch_db")")
for at in "${streamed[@]}"; do
    read -r ms kb <<<"$(median "$at" verify -q)"
    awk -v ms="$ms" -v n="$((2 * batch))" -v kb="$kb" -v at="${at##*/}" \
        'BEGIN { printf "%-24s %.3f s, %d events/s, %d MiB\n", at, ms / 1000, n / (ms / 1000), kb / 1024 }'
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
