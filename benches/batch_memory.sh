#!/usr/bin/env bash
# Peak memory of large batches: a batch's memory must not grow with its
# length (SPEC 4). Runs `ledger batch` of N and 2N commands, without and
# with --id, into a new journal; prints wall time and peak RSS of each.
# With flat staging, the two lengths peak alike without ids; with ids the
# state's id index grows (the read model's to move out of memory).
# Usage: benches/batch_memory.sh [N]   (default 1000000). Data goes to a
# temp dir and is deleted afterwards.
set -euo pipefail
n=${1:-1000000}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z
printf '%-28s %8s %10s\n' what time "peak RSS"
for events in "$n" $((2 * n)); do
  for ids in no yes; do
    awk -v n="$events" -v a=100 -v ids="$ids" 'BEGIN {
      for (i = 0; i < a; i++) print "create acct" i;
      for (i = 0; i < a; i++) print "deposit acct" i " 1000000";
      for (i = 2 * a; i < n; i++) printf "transfer acct%d acct%d %d.%02d%s\n", i % a, (i + 1) % a, 1 + i % 7, i % 100, (ids == "yes" ? " --id pay-" i : "");
    }' > "$dir/batch.txt"
    rm -f "$dir/j.jsonl"*
    /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" -f "$dir/j.jsonl" batch "$dir/batch.txt" > /dev/null 2>&1
    read -r secs kb < "$dir/time"
    printf '%-28s %6s s %6s MiB\n' "batch $events, ids: $ids" "$secs" "$((kb / 1024))"
  done
done
