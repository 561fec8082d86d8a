#!/usr/bin/env bash
# Follow latency: how long after a writer exits its event comes out of a
# running `ledger history --follow --json`, over APPENDS appends one after
# another (default 300), with file notifications and with the polling
# fallback (LEDGER_TEST_FOLLOW_POLL=1). Also the time from the writer's start
# to the output, and the follower's resident memory after the first 10
# appends and at the end. Usage: benches/follow_latency.sh [APPENDS].
# Needs bash 5 ($EPOCHREALTIME). Data lives in a temp dir, deleted after.
set -euo pipefail
appends=${1:-300}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/ledger
dir=$(mktemp -d)
follower=
cleanup() {
  if [[ -n $follower ]]; then kill "$follower" 2> /dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

usec() { local t=${1/./}; echo $((10#$t)); }

# stats: reads microseconds, one a line; prints "median MS, p99 MS, max MS".
stats() {
  sort -n | awk '{ a[NR] = $1 }
    END {
      p99 = int(NR * 0.99 + 0.999); if (p99 > NR) p99 = NR
      printf "median %.2f ms, p99 %.2f ms, max %.2f ms", a[int((NR + 1) / 2)] / 1000, a[p99] / 1000, a[NR] / 1000
    }'
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# run NAME [VAR=VALUE...]: one follower, $appends deposits, one at a time.
run() {
  local name=$1
  shift
  local journal=$dir/$name.jsonl fifo=$dir/$name.fifo
  "$bin" -f "$journal" create acct1 > /dev/null
  mkfifo "$fifo"
  env "$@" "$bin" -f "$journal" history --follow --json > "$fifo" &
  follower=$!
  exec 3< "$fifo"
  read -r _ <&3
  local after_exit=() after_start=() line t0 t1 t2 rss_start=
  for i in $(seq "$appends"); do
    t0=$EPOCHREALTIME
    "$bin" -f "$journal" deposit acct1 1 > /dev/null
    t1=$EPOCHREALTIME
    read -r -t 5 line <&3
    t2=$EPOCHREALTIME
    [[ $line == "{\"seq\":$((i + 1)),"* ]] || { echo "unexpected line: $line" >&2; exit 1; }
    after_exit+=($(($(usec "$t2") - $(usec "$t1"))))
    after_start+=($(($(usec "$t2") - $(usec "$t0"))))
    if ((i == 10)); then rss_start=$(rss_kb "$follower"); fi
  done
  local rss_end
  rss_end=$(rss_kb "$follower")
  kill -INT "$follower"
  local status=0
  wait "$follower" || status=$?
  follower=
  exec 3<&-
  echo "$name ($appends appends, follower exit $status):"
  echo "  writer exit -> output:  $(printf '%s\n' "${after_exit[@]}" | stats)"
  echo "  writer start -> output: $(printf '%s\n' "${after_start[@]}" | stats)"
  echo "  follower RSS: ${rss_start} KiB after 10 appends, ${rss_end} KiB after $appends"
}

echo "ledger $("$bin" --version | cut -d' ' -f2), $(nproc) cores"
run notify
run polling LEDGER_TEST_FOLLOW_POLL=1
