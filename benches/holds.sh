#!/usr/bin/env bash
# Cost of a command next to many active holds (issue #13): `deposit` and
# `balance ACCOUNT` on a journal with HOLDS active holds, against the same
# commands on a journal with none. Medians of RUNS runs (default 11).
# Usage: benches/holds.sh [HOLDS]   (default 100000). Data goes to a temp
# dir and is deleted afterwards; nothing generated is committed.
set -euo pipefail
holds=${1:-100000}
runs=${RUNS:-11}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# One customer account per 10 holds, each funded, then the holds; and the
# same journal with deposits in place of the holds (same accounts, same
# number of ids), to tell what the holds cost from what size costs.
gen() {
  awk -v n="$holds" -v verb="$1" 'BEGIN {
    a = int(n / 10) + 1;
    for (i = 0; i < a; i++) print "create c" i;
    for (i = 0; i < a; i++) print "deposit c" i " 1000";
    for (i = 0; i < n; i++) print verb " c" (i % a) " 1.50 --id h" i;
  }'
}
gen hold > "$dir/holds.txt"
gen deposit > "$dir/deposits.txt"
printf 'create c0\ndeposit c0 1000\n' > "$dir/small.txt"

for j in holds deposits small; do
  "$bin" -f "$dir/$j.jsonl" batch "$dir/$j.txt" > /dev/null 2>&1
  # Warm the read model.
  "$bin" -f "$dir/$j.jsonl" balance c0 > /dev/null
done

# median FILE ARGS...: median wall milliseconds and highest peak RSS (KiB).
median() {
  local file=$1; shift
  : > "$dir/t"
  for _ in $(seq "$runs"); do
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$dir/kb" "$bin" -f "$file" "$@" > /dev/null
    local t1=$EPOCHREALTIME
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }') $(cat "$dir/kb")" >> "$dir/t"
  done
  sort -n "$dir/t" | awk '{ s[NR] = $1; if ($2 > m) m = $2 } END { print s[int((NR + 1) / 2)], m }'
}

printf 'median ms of %s runs (peak RSS MiB)\n' "$runs"
printf '%-18s %16s %22s %22s\n' "command" "small journal" "$holds deposits+ids" "$holds active holds"
for cmd in "deposit c0 1" "balance c0" "hold c0 0.01" "withdraw c0 0.01"; do
  row=$(printf '%-18s' "$cmd")
  for j in small deposits holds; do
    # shellcheck disable=SC2086
    read -r ms kb <<< "$(median "$dir/$j.jsonl" $cmd)"
    row="$row $(printf '%14s ms (%3s)' "$ms" $((kb / 1024)))"
  done
  echo "$row"
done
