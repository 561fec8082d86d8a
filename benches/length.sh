#!/usr/bin/env bash
# Journal length: the cost of a command on a long journal (with its read
# model) against a tiny one, cold full replay speed, peak memory, and the
# read model's size.
# Usage: benches/length.sh [EVENTS]   (default 1000000). All data is
# generated in a temp dir and deleted afterwards.
set -euo pipefail
events=${1:-1000000}
runs=${RUNS:-21}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# make_journal FILE EVENTS ACCOUNTS: accounts, deposits, then transfers.
make_journal() {
  awk -v n="$2" -v a="$3" 'BEGIN {
    for (i = 0; i < a; i++) print "create acct" i;
    for (i = 0; i < a && a + i < n; i++) print "deposit acct" i " 1000000";
    for (i = 2 * a; i < n; i++) printf "transfer acct%d acct%d %d.%02d\n", i % a, (i + 1) % a, 1 + i % 7, i % 100;
  }' | "$bin" -f "$1" batch - > /dev/null
}

# median_ms COMMAND...: median wall time of $runs runs, in milliseconds.
median_ms() {
  local times=() t0 t1
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1000 }'
}

peak_kb() { /usr/bin/time -f %M "$@" 2>&1 > /dev/null | tail -n 1; }

big=$dir/big.jsonl small=$dir/small.jsonl
make_journal "$big" "$events" 100
make_journal "$small" 10 2
# The batch leaves a read model for a journal past 1 MiB; a tiny one has none.
"$bin" -f "$big" balance > /dev/null
"$bin" -f "$small" balance > /dev/null

dep_big=$(median_ms "$bin" -f "$big" deposit acct1 1)
dep_small=$(median_ms "$bin" -f "$small" deposit acct1 1)
bal_big=$(median_ms "$bin" -f "$big" balance)
bal_small=$(median_ms "$bin" -f "$small" balance)
mem_dep=$(peak_kb "$bin" -f "$big" deposit acct1 1)
mem_bal=$(peak_kb "$bin" -f "$big" balance)

# Cold full replay: the median of 7 runs, each with the read model deleted
# (it is rebuilt each time: 100 accounts, a few milliseconds).
cold=()
for _ in 1 2 3 4 5 6 7; do
  rm -f "$big.readmodel"*
  t0=$(date +%s%N); "$bin" -f "$big" balance > /dev/null; t1=$(date +%s%N)
  cold+=($(( (t1 - t0) / 1000 )))
done
cold_s=$(printf '%s\n' "${cold[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", a[4] / 1e6 }')
cold_range=$(printf '%s\n' "${cold[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f-%.3f", a[1] / 1e6, a[7] / 1e6 }')
rm -f "$big.readmodel"*
mem_cold=$(peak_kb "$bin" -f "$big" balance)
mb=$(awk -v b="$(stat -c %s "$big")" 'BEGIN { printf "%.1f", b / 1e6 }')

size() { du -cb "$1".readmodel* 2> /dev/null | tail -n 1 | cut -f1; }
cp100=$(size "$big")
many=$dir/many.jsonl
make_journal "$many" 200000 100000
"$bin" -f "$many" balance > /dev/null
cp100k=$(size "$many")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "journal: $events events, $mb MB; medians of $runs runs"
echo "deposit: ${dep_big} ms (1M) / ${dep_small} ms (10) = $(ratio "$dep_big" "$dep_small")   peak ${mem_dep} KB"
echo "balance: ${bal_big} ms (1M) / ${bal_small} ms (10) = $(ratio "$bal_big" "$bal_small")   peak ${mem_bal} KB"
echo "cold full replay (no read model), median of 7 [${cold_range} s]: ${cold_s} s = $(awk -v n="$events" -v s="$cold_s" 'BEGIN { printf "%.0f", n / s }') events/s   peak ${mem_cold} KB"
echo "read model size: 100 accounts ${cp100} bytes; 100000 accounts ${cp100k} bytes"
