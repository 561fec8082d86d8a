#!/usr/bin/env bash
# Makes docs/month-end.svg, the chart of the README's month-end walkthrough,
# from docs/month-end.txt (the same batch the README runs), with the clock
# pinned so that the picture is the same every time.
# Usage: docs/month-end.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export LEDGER_TEST_CLOCK=2026-11-26T10:00:00Z TZ=UTC
bin=target/release/ledger
"$bin" -f "$dir/shop.jsonl" batch docs/month-end.txt > /dev/null
"$bin" -f "$dir/shop.jsonl" chart 'cust:*' --since 2026-10-01 --until 2026-10-31 --out docs/month-end.svg
