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

runs=${RUNS:-5}

# measure LABEL SETUP COMMAND...: the median and range of the wall time of
# $runs runs (SETUP is run before each) and the highest peak RSS.
measure() {
  local label=$1 setup=$2; shift 2
  : > "$dir/times"
  for _ in $(seq "$runs"); do
    eval "$setup"
    /usr/bin/time -f "%e %M" -a -o "$dir/times" "$@" > /dev/null
  done
  sort -n "$dir/times" | awk -v l="$label" '
    { s[NR] = $1; if ($2 > m) m = $2 }
    END { print l, s[int((NR + 1) / 2)], m, s[1] "-" s[NR] }'
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# Every batch run starts from no journal; every balance run from no
# read model, so that it replays the whole journal.
read -r _ bsecs bkb brange <<< "$(measure batch 'rm -f "$journal" "$journal".*' "$bin" batch "$dir/batch.txt")"
size=$(stat -c %s "$journal")
mb=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')
read -r _ vsecs vkb vrange <<< "$(measure verify : "$bin" verify)"
# The same on one core: the reader thread and the checker share it.
read -r _ v1secs v1kb v1range <<< "$(measure verify1 : taskset -c 0 "$bin" verify)"
read -r _ rsecs rkb rrange <<< "$(measure balance 'rm -f "$journal.readmodel"*' "$bin" balance)"
read -r _ ssecs _ srange <<< "$(measure sha256sum : sha256sum "$journal")"

printf '%s events, journal %s MB; medians of %s runs (range in brackets)\n' "$events" "$mb" "$runs"
printf '%-22s %6s s [%9s] %10s events/s %5s MB/s %5s MiB peak\n' \
  "batch (1 process)" "$bsecs" "$brange" "$(rate "$events" "$bsecs")" "$(rate "$mb" "$bsecs")" "$((bkb / 1024))" \
  "verify" "$vsecs" "$vrange" "$(rate "$events" "$vsecs")" "$(rate "$mb" "$vsecs")" "$((vkb / 1024))" \
  "verify (one core)" "$v1secs" "$v1range" "$(rate "$events" "$v1secs")" "$(rate "$mb" "$v1secs")" "$((v1kb / 1024))" \
  "balance (full replay)" "$rsecs" "$rrange" "$(rate "$events" "$rsecs")" "$(rate "$mb" "$rsecs")" "$((rkb / 1024))" \
  "sha256sum" "$ssecs" "$srange" "-" "$(rate "$mb" "$ssecs")" "-"
