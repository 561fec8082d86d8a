#!/usr/bin/env bash
# Generates a large journal through `ledger batch` and measures batch, verify
# and full-replay throughput next to sha256sum on the same file.
# Usage: benches/bench.sh [EVENTS]   (default 1000000). Data goes to a temp
# dir and is deleted afterwards; nothing generated is committed.
set -euo pipefail
events=${1:-1000000}
accounts=100
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
journal=$dir/journal.jsonl
export LEDGER_JOURNAL=$journal

# Batch input: accounts, one deposit each, then transfers around a ring
# (amounts small enough that every one succeeds).
awk -v n="$events" -v a="$accounts" 'BEGIN {
  for (i = 0; i < a; i++) print "create acct" i;
  for (i = 0; i < a; i++) print "deposit acct" i " 1000000";
  for (i = 2 * a; i < n; i++) printf "transfer acct%d acct%d %d.%02d\n", i % a, (i + 1) % a, 1 + i % 7, i % 100;
}' > "$dir/batch.txt"

measure() { # label, command...: prints seconds and peak RSS
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$dir/time" "$@" > /dev/null
  read -r secs kb < "$dir/time"
  echo "$label $secs $kb"
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

read -r _ bsecs bkb <<< "$(measure batch "$bin" batch "$dir/batch.txt")"
size=$(stat -c %s "$journal")
mb=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')
read -r _ vsecs vkb <<< "$(measure verify "$bin" verify)"
# The same on one core: the reader thread and the checker share it.
read -r _ v1secs v1kb <<< "$(measure verify1 taskset -c 0 "$bin" verify)"
read -r _ rsecs rkb <<< "$(measure balance "$bin" balance)"
read -r _ ssecs _ <<< "$(measure sha256sum sha256sum "$journal")"

printf '%s events, journal %s MB\n' "$events" "$mb"
printf '%-22s %8s s %12s events/s %8s MB/s %8s MiB peak\n' \
  "batch (1 process)" "$bsecs" "$(rate "$events" "$bsecs")" "$(rate "$mb" "$bsecs")" "$((bkb / 1024))" \
  "verify" "$vsecs" "$(rate "$events" "$vsecs")" "$(rate "$mb" "$vsecs")" "$((vkb / 1024))" \
  "verify (one core)" "$v1secs" "$(rate "$events" "$v1secs")" "$(rate "$mb" "$v1secs")" "$((v1kb / 1024))" \
  "balance (full replay)" "$rsecs" "$(rate "$events" "$rsecs")" "$(rate "$mb" "$rsecs")" "$((rkb / 1024))" \
  "sha256sum" "$ssecs" "-" "$(rate "$mb" "$ssecs")" "-"
