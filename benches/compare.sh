#!/usr/bin/env bash
# Two builds side by side: batch, full replay (balance with no read model)
# and verify of the same journal, runs alternating so that the machine's
# load falls on both alike; medians (and ranges) of 5.
# Usage: benches/compare.sh OLD_BINARY NEW_BINARY [EVENTS]   (default 1000000)
# e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
#      benches/compare.sh /tmp/old/target/release/ledger target/release/ledger
# Data goes to a temp dir and is deleted afterwards.
set -euo pipefail
old=$1 new=$2 events=${3:-1000000} accounts=100
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
awk -v n="$events" -v a="$accounts" 'BEGIN {
  for (i = 0; i < a; i++) print "create acct" i;
  for (i = 0; i < a; i++) print "deposit acct" i " 1000000";
  for (i = 2 * a; i < n; i++) printf "transfer acct%d acct%d %d.%02d\n", i % a, (i + 1) % a, 1 + i % 7, i % 100;
}' > "$dir/batch.txt"
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z
"$new" -f "$dir/j.jsonl" batch "$dir/batch.txt" > /dev/null
t() { local s=$EPOCHREALTIME; "$@" > /dev/null 2>&1; awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f\n", b-a}'; }
for bin in old new; do : > "$dir/$bin.batch"; : > "$dir/$bin.replay"; : > "$dir/$bin.verify"; done
for r in 1 2 3 4 5; do
  for bin in old new; do
    b=${!bin}
    rm -f "$dir/b.jsonl"*; t "$b" -f "$dir/b.jsonl" batch "$dir/batch.txt" >> "$dir/$bin.batch"
    rm -f "$dir/j.jsonl.readmodel"*; t "$b" -f "$dir/j.jsonl" balance >> "$dir/$bin.replay"
    t "$b" -f "$dir/j.jsonl" verify >> "$dir/$bin.verify"
  done
done
med() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%s (%s-%s)", a[int((NR+1)/2)], a[1], a[NR]}'; }
for what in batch replay verify; do
  printf '%-8s old %s   new %s\n' "$what" "$(med "$dir/old.$what")" "$(med "$dir/new.$what")"
done
