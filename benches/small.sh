#!/usr/bin/env bash
# One command on a small ledger, two builds side by side: `deposit` and
# `balance ACCOUNT` on a 10-event journal (what most commands of most
# users are), in rounds alternating between the builds so that the
# machine's load falls on both alike. Prints, per build and command, the
# median wall time of ROUNDS x EACH runs (with the range of the rounds'
# medians) and the CPU time per run (user + sys of the processes).
# Usage: benches/small.sh OLD_BINARY NEW_BINARY   (ROUNDS=7 EACH=20)
# e.g. git worktree add --detach /tmp/old <commit> &&
#      (cd /tmp/old && cargo build --release --target-dir /tmp/old-target)
#      benches/small.sh /tmp/old-target/release/ledger target/release/ledger
# Data goes to a temp dir and is deleted afterwards.
set -euo pipefail
old=$1 new=$2 rounds=${ROUNDS:-7} each=${EACH:-20}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z TZ=UTC
for bin in old new; do
  b=${!bin}
  for cmd in "create a" "create b" "deposit a 100" "deposit b 100" "transfer a b 1" \
    "deposit a 2" "deposit b 3" "withdraw a 1" "transfer b a 2" "deposit a 1"; do
    # shellcheck disable=SC2086 # the words of the command
    "$b" -f "$dir/$bin.jsonl" $cmd > /dev/null 2>&1
  done
done

# run BIN JOURNAL KEY WORDS...: EACH runs; appends each wall time (s) to
# $dir/wall.KEY and the CPU time of all of them (clock ticks, this
# shell's waited-for children) to $dir/cpu.KEY. Nothing else is started
# between the two readings of the CPU time.
run() {
  local bin=$1 journal=$2 key=$3; shift 3
  local before after i times=()
  read -r -a before < /proc/$$/stat
  for ((i = 0; i < each; i++)); do
    local s=$EPOCHREALTIME
    "$bin" -f "$journal" "$@" > /dev/null
    times+=("$s $EPOCHREALTIME")
  done
  read -r -a after < /proc/$$/stat
  # Fields 16 and 17 (from 1): the CPU time of waited-for children.
  echo "$((after[15] + after[16] - before[15] - before[16]))" >> "$dir/cpu.$key"
  printf '%s\n' "${times[@]}" | awk '{ printf "%.6f\n", $2 - $1 }' >> "$dir/wall.$key"
}

for _ in $(seq "$rounds"); do
  for bin in old new; do
    run "${!bin}" "$dir/$bin.jsonl" "$bin.deposit" deposit a 1
    run "${!bin}" "$dir/$bin.jsonl" "$bin.balance" balance a
  done
done

ticks=$(getconf CLK_TCK)
for what in deposit balance; do
  for bin in old new; do
    wall=$(sort -n "$dir/wall.$bin.$what" | awk '{a[NR] = $1} END { printf "%.2f ms", 1000 * a[int((NR + 1) / 2)] }')
    cpu=$(awk -v t="$ticks" -v n="$each" '{ s += $1; r++ } END { printf "%.2f ms", 1000 * s / t / (n * r) }' "$dir/cpu.$bin.$what")
    printf '%-8s %-4s wall %s (median of %d), CPU %s per run\n' "$what" "$bin" "$wall" "$((rounds * each))" "$cpu"
  done
done
echo "load: $(uptime)"
