#!/usr/bin/env bash
# Measures `report`, `chart` and `history | head -n 5` on a large journal
# made through `ledger batch`: events/s and peak RSS (/usr/bin/time -v).
# Usage: [RUNS=N] benches/report.sh [EVENTS]   (default 5000000; each
# command measured N times, default 1, on the same journal). Data goes to
# a temp dir and is deleted afterwards; nothing generated is committed.
set -euo pipefail
events=${1:-5000000}
accounts=100
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LEDGER_JOURNAL=$dir/journal.jsonl TZ=UTC
# Every event is recorded "now", on the last day of 2026, and booked on a
# day of that year (--date), so the report has 12 months of activity.
export LEDGER_TEST_CLOCK=2026-12-31T12:00:00Z

# Batch input: accounts, one deposit each, then transfers around a ring
# (amounts small enough that every one succeeds), dated through the year.
awk -v n="$events" -v a="$accounts" 'BEGIN {
  split("31 28 31 30 31 30 31 31 30 31 30 31", len, " ");
  for (m = 1; m <= 12; m++) for (d = 1; d <= len[m]; d++) day[k++] = sprintf("2026-%02d-%02d", m, d);
  for (i = 0; i < a; i++) print "create cust:" i " --currency EUR";
  for (i = 0; i < a; i++) print "deposit cust:" i " 1000000 --date 2026-01-01";
  for (i = 2 * a; i < n; i++)
    printf "transfer cust:%d cust:%d %d.%02d --date %s\n", i % a, (i + 1) % a, 1 + i % 7, i % 100, day[int((i - 2 * a) * 365 / (n - 2 * a))];
}' > "$dir/batch.txt"
# In pieces of a million lines, so that the generator's memory stays small.
split -l 1000000 "$dir/batch.txt" "$dir/part."
for part in "$dir"/part.*; do "$bin" batch "$part" > /dev/null; done
rm -f "$dir"/batch.txt "$dir"/part.*
size=$(du -m "$LEDGER_JOURNAL" | cut -f1)

# measure LABEL COMMAND...: wall time and peak RSS of one cold run (the
# page cache dropped when we may, else as warm as the previous step left it).
measure() {
  local run
  for run in $(seq "${RUNS:-1}"); do measure_once "$@"; done
}

measure_once() {
  local label=$1; shift
  sync; (echo 3 > /proc/sys/vm/drop_caches) 2> /dev/null || true
  /usr/bin/time -v -o "$dir/time" "$@" > /dev/null
  local secs kb
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$dir/time")
  kb=$(awk -F': ' '/Maximum resident/ { print $2 }' "$dir/time")
  # A run that stops early (`| head`) reads only part: its rate means nothing.
  local rate=-
  case $label in history*) ;; *) rate=$(awk -v n="$events" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') ;; esac
  printf '%-36s %7.2f s %12s events/s %6d MiB peak\n' "$label" "$secs" "$rate" "$((kb / 1024))"
}

printf '%s events, journal %s MB\n' "$events" "$size"
measure "report --by month (all accounts)" "$bin" report --by month
measure "report 'cust:1*' --by day --json" "$bin" report 'cust:1*' --by day --json
measure "chart cust:1 cust:2 --by week (svg)" "$bin" chart cust:1 cust:2 --by week --out "$dir/c.svg"
measure "chart cust:1 cust:2 --by day (png)" "$bin" chart cust:1 cust:2 --out "$dir/c.png"
# `history | head -n 5` ends as soon as head has its lines: time to exit.
measure "history | head -n 5" sh -c "'$bin' history | head -n 5"
measure "history cust:1 | head -n 5" sh -c "'$bin' history cust:1 | head -n 5"
measure "history --limit 5" "$bin" history --limit 5
measure "balance (full replay, for comparison)" sh -c "rm -f '$LEDGER_JOURNAL.readmodel'*; '$bin' balance"
