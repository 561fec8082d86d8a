#!/usr/bin/env bash
# Measures `ledger import` of a bank CSV with rules and of JSON Lines
# commands, and `ledger export` in each format, with wall time, rate and
# peak RSS (/usr/bin/time -v), and the CPU time (user + system), which a
# machine busy with other work disturbs less than the wall time. Usage:
# benches/import.sh [ROWS] (default 1000000); LEDGER_BIN=path measures that
# binary instead of building this tree's. Data is generated in a temp dir
# at run time and deleted; the load average is printed before and after.
set -euo pipefail
rows=${1:-1000000}
cd "$(dirname "$0")/.."
if [ -z "${LEDGER_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${LEDGER_BIN:-$PWD/target/release/ledger}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export TZ=UTC

# measure LABEL COUNT COMMAND...: one run; prints seconds, COUNT/s, peak
# RSS, CPU seconds.
measure() {
  local label=$1 count=$2; shift 2
  /usr/bin/time -v -o "$dir/time" "$@" > "$dir/out" 2> "$dir/err" || { cat "$dir/err"; exit 1; }
  awk -v l="$label" -v n="$count" '
    /Elapsed \(wall clock\)/ { split($NF, t, ":"); s = (length(t) == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
    /Maximum resident set size/ { rss = $NF }
    /User time \(seconds\)|System time \(seconds\)/ { cpu += $NF }
    END { printf "%-28s %8.2f s %12.0f /s %8.1f MiB %8.2f s\n", l, s, n / s, rss / 1024, cpu }' "$dir/time"
}

# A bank export: rows of money in and out (in stays ahead), a header, one
# rule that files card fees elsewhere.
awk -v n="$rows" 'BEGIN {
  print "Date,Description,Amount,Reference";
  for (i = 0; i < n; i++) {
    d = sprintf("2026-%02d-%02d", 1 + i % 10, 1 + i % 28);
    if (i % 3 == 2) printf "%s,CARD FEE %d,\"-1,%03d.%02d\",R%d\n", d, i, i % 7, i % 100, i;
    else printf "%s,\"PAYMENT %d, INC.\",\"$2,%03d.%02d\",R%d\n", d, i, i % 1000, i % 100, i;
  }
}' > "$dir/bank.csv"
cat > "$dir/bank.toml" <<'RULES'
account = "bank"
amount = "{Amount}"
date = "{Date}"
memo = "{Description}"
[[rule]]
when = { Description = "^CARD FEE" }
counterparty = "fees"
RULES

awk -v n="$rows" 'BEGIN {
  print "{\"command\":\"create\",\"account\":\"acct0\",\"currency\":\"EUR\"}";
  print "{\"command\":\"create\",\"account\":\"acct1\",\"currency\":\"EUR\"}";
  print "{\"command\":\"deposit\",\"account\":\"acct0\",\"amount\":\"1000000000.00\"}";
  for (i = 3; i < n; i++) {
    if (i % 2) printf "{\"command\":\"transfer\",\"from\":\"acct0\",\"to\":\"acct1\",\"amount\":\"%d.%02d\",\"memo\":\"m%d\"}\n", 1 + i % 9, i % 100, i;
    else printf "{\"command\":\"deposit\",\"account\":\"acct1\",\"amount\":\"%d.%02d\",\"date\":\"2026-10-%02d\"}\n", 1 + i % 9, i % 100, 1 + i % 28;
  }
}' > "$dir/commands.jsonl"

echo "rows/lines/events: $rows; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %10s %14s %12s %10s\n' what time rate "peak RSS" CPU
export LEDGER_JOURNAL=$dir/csv.jsonl
"$bin" create bank --currency USD > /dev/null
"$bin" create fees --currency USD > /dev/null
measure "import CSV with rules" "$rows" "$bin" import "$dir/bank.csv" --rules "$dir/bank.toml"
export LEDGER_JOURNAL=$dir/jsonl.jsonl
measure "import JSON Lines" "$rows" "$bin" import "$dir/commands.jsonl"
for to in jsonl ledger beancount; do
  measure "export --to $to" "$rows" "$bin" export --to "$to"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
