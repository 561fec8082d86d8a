#!/usr/bin/env bash
# The read model at scale (issue "A read model that scales"): a journal of
# ACCOUNTS accounts and EVENTS events in all, every money event with its own
# `--id`, made through `ledger batch`; then measurements of commands on it,
# next to the same commands on a 10-event journal (if the large journal's
# model has no history index yet, the first `history ACCOUNT --limit 10`
# builds it: a median of 3 runs or more leaves that one out; it is
# measured on its own after the rebuild). Medians of RUNS runs
# (default 5), with the range, events/s and the highest peak RSS.
# Then a batch of BATCH_IDS commands (default 2000000), each with an
# `--id`, into a copy of the large journal, and the same as a CSV import.
# Usage: benches/readmodel.sh [ACCOUNTS] [EVENTS]  (default 1000000 5000000)
#   LEDGER_BIN=path  measures that binary instead of building this tree's.
#   KEEP=path        keeps the large journal there (made if missing, reused
#                    if present), so that runs of several builds share it.
# Data goes to a temp dir and is deleted afterwards; nothing generated is
# committed. Cold runs drop the page cache first (as root; else they are
# as warm as the run before left them).
set -euo pipefail
accounts=${1:-1000000}
events=${2:-5000000}
runs=${RUNS:-5}
cd "$(dirname "$0")/.."
if [ -z "${LEDGER_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${LEDGER_BIN:-$PWD/target/release/ledger}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z TZ=UTC

# generate_journal FILE ACCOUNTS EVENTS: ACCOUNTS `create`s, one deposit
# into each, then transfers between random accounts (about 3 in 4) and
# deposits, up to EVENTS events in all; every money event has a unique
# `--id`. Amounts are small against the first deposits, so every transfer
# succeeds. Written through `ledger batch` in batches of a million lines,
# so that neither awk's output nor a batch's memory grows with the journal.
generate_journal() {
  local file=$1 a=$2 n=$3
  local input=$dir/batch-input
  awk -v a="$a" -v n="$n" 'BEGIN {
    srand(42);
    for (i = 0; i < a; i++) print "create acct" i " --currency EUR";
    for (i = 0; i < a && a + i < n; i++) print "deposit acct" i " 1000000 --id dep-" i;
    for (i = 2 * a; i < n; i++) {
      x = int(rand() * a);
      if (rand() < 0.75) {
        y = int(rand() * (a - 1)); if (y >= x) y++;
        printf "transfer acct%d acct%d %d.%02d --id tx-%d\n", x, y, 1 + i % 7, i % 100, i;
      } else {
        printf "deposit acct%d %d.%02d --id tx-%d\n", x, 1 + i % 50, i % 100, i;
      }
    }
  }' | split -l 1000000 - "$input."
  for part in "$input".*; do
    "$bin" -f "$file" batch "$part" > /dev/null 2> "$dir/batch-errors" || {
      cat "$dir/batch-errors" >&2
      return 1
    }
    rm -f "$part"
  done
}

cold() { sync; (echo 3 > /proc/sys/vm/drop_caches) 2> /dev/null || true; }
warm() { cat "$1" > /dev/null; }

# measure LABEL EVENTS PREPARE COMMAND...: RUNS runs of COMMAND, each after
# PREPARE (a shell command); prints the median wall time with the range,
# EVENTS / median as events/s, and the highest peak RSS.
measure() {
  local label=$1 n=$2 prepare=$3; shift 3
  : > "$dir/times"
  for _ in $(seq "$runs"); do
    eval "$prepare"
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$dir/kb" "$@" > /dev/null
    local t1=$EPOCHREALTIME
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $(cat "$dir/kb")" >> "$dir/times"
  done
  sort -n "$dir/times" | awk -v l="$label" -v n="$n" '
    { s[NR] = $1; if ($2 > m) m = $2 }
    END {
      med = s[int((NR + 1) / 2)];
      printf "%-34s %8.3f s (%.3f-%.3f) %11.0f events/s %5d MiB peak\n", l, med, s[1], s[NR], (med > 0 ? n / med : 0), m / 1024
    }'
}

# measure_each LABEL FILE ARGS...: RUNS runs of `ledger -f FILE ARGS`, `@N@`
# in ARGS replaced by a number new at each run (a new `--id`).
measure_each() {
  local label=$1 file=$2; shift 2
  : > "$dir/times"
  for r in $(seq "$runs"); do
    local args=("${@//@N@/$r-$RANDOM}")
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$dir/kb" "$bin" -f "$file" "${args[@]}" > /dev/null
    local t1=$EPOCHREALTIME
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) * 1000 }') $(cat "$dir/kb")" >> "$dir/times"
  done
  sort -n "$dir/times" | awk -v l="$label" '
    { s[NR] = $1; if ($2 > m) m = $2 }
    END { printf "%-40s %8.2f ms (%.2f-%.2f) %5d MiB peak\n", l, s[int((NR + 1) / 2)], s[1], s[NR], m / 1024 }'
}

# measure_commands FILE LABEL: the issue's commands on one journal (its
# read model in place, as any command leaves it).
measure_commands() {
  local file=$1 label=$2
  measure_each "deposit --id NEW ($label)" "$file" deposit acct1 1 --id "new-@N@"
  measure_each "transfer ($label)" "$file" transfer acct2 acct3 0.01
  measure_each "balance ACCOUNT ($label)" "$file" balance acct4
  measure_each "history ACCOUNT --limit 10 ($label)" "$file" history acct4 --limit 10
  measure_each "history ACCOUNT, every event ($label)" "$file" history acct4
  measure_each "history ACCOUNT by day ($label)" "$file" history acct4 --since 2026-01-01
  measure_each "a repeated --id ($label)" "$file" deposit acct0 1000000 --id dep-0
}

# measure_verify FILE EVENTS LABEL: `verify` cold and warm.
measure_verify() {
  local file=$1 n=$2 label=$3
  measure "verify, cold ($label)" "$n" "cold" "$bin" -f "$file" verify
  measure "verify, warm ($label)" "$n" "warm '$file'" "$bin" -f "$file" verify
}

big=${KEEP:-$dir/journal.jsonl}
small=$dir/small.jsonl
start=$EPOCHREALTIME
[ -s "$big" ] || generate_journal "$big" "$accounts" "$events"
generate_journal "$small" 5 10
awk -v a="$start" -v b="$EPOCHREALTIME" -v f="$(du -m "$big" | cut -f1)" \
  'BEGIN { printf "journal: %s MB, ready in %.0f s\n", f, b - a }'
echo "load: $(uptime)"
measure_commands "$small" "10 events"
measure_commands "$big" "$events events"
measure "balance, every account ($events events)" "$events" : "$bin" -f "$big" balance
measure "rebuilding the read model ($events events)" "$events" \
  "rm -f '$big'.readmodel*" "$bin" -f "$big" balance acct4
# A rebuilt model's history index is built by the first `history ACCOUNT
# --limit N` that needs it: once, so one run (each after a rebuild).
every=$runs runs=1
measure "history --limit 10, first after a rebuild ($events events)" "$events" \
  "rm -f '$big'.readmodel*; '$bin' -f '$big' balance acct4 > /dev/null" \
  "$bin" -f "$big" history acct4 --limit 10
runs=$every
# A batch of BATCH_IDS commands (default 2000000), each with its own
# `--id` (deposits and transfers between the large journal's accounts),
# into a copy of the large journal and its read model, made before each run.
batch_ids=${BATCH_IDS:-2000000}
awk -v a="$accounts" -v n="$batch_ids" 'BEGIN {
  srand(7);
  for (i = 0; i < n; i++) {
    x = int(rand() * a); y = int(rand() * (a - 1)); if (y >= x) y++;
    if (i % 4 == 0) printf "deposit acct%d 1.%02d --id nb-%d\n", x, i % 100, i;
    else printf "transfer acct%d acct%d 0.%02d --id nb-%d\n", x, y, 1 + i % 99, i;
  }
}' > "$dir/ids-batch"
copy_big() {
  rm -f "$dir/copy.jsonl"*
  cp "$big" "$dir/copy.jsonl"
  for f in "$big".readmodel*; do cp "$f" "$dir/copy.jsonl${f#"$big"}"; done
}
measure "batch of $batch_ids with ids, into it" "$batch_ids" copy_big \
  "$bin" -f "$dir/copy.jsonl" batch "$dir/ids-batch"
# The same movements as a bank's CSV, each row's reference its id.
awk 'BEGIN { print "Account,Amount,Other,Ref" }
  $1 == "deposit" { printf "%s,%s,,%s\n", $2, $3, $5 }
  $1 == "transfer" { printf "%s,-%s,%s,%s\n", $2, $4, $3, $6 }' \
  "$dir/ids-batch" > "$dir/ids.csv"
cat > "$dir/ids.toml" << 'EOF'
account = "{Account}"
amount = "{Amount}"
counterparty = "{Other}"
id = "{Ref}"
EOF
measure "import of $batch_ids CSV rows with ids, into it" "$batch_ids" copy_big \
  "$bin" -f "$dir/copy.jsonl" import "$dir/ids.csv" --rules "$dir/ids.toml"
rm -f "$dir/copy.jsonl"*
measure_verify "$small" 10 "10 events"
measure_verify "$big" "$events" "$events events"
echo "load: $(uptime)"
