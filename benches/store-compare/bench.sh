#!/bin/sh
# Per-command benchmarks, all configurations interleaved round-robin. Run after the builds (see README.md).
# sqlite-nockpt gets its own copies: a sqlite-normal close would checkpoint and delete the shared WAL.
# Usage: sh bench.sh RUNS ACCOUNTS IDS
set -e
B=target/release/store-compare; D=data; R=${1:-151}; A=${2:-1000000}; I=${3:-4000000}
for s in small big; do [ -e $D/$s-nockpt.db ] || cp $D/$s-sqlite.db $D/$s-nockpt.db; done
W=""; RD=""
for e in redb sqlite-normal sqlite-full sqlite-nockpt; do
  f=sqlite; case $e in redb*) f=redb;; sqlite-nockpt) f=nockpt;; esac
  W="$W + write $e $D/small-$f.db 10 10 + write $e $D/big-$f.db $A $I"
  RD="$RD + read $e $D/small-$f.db 10 10 + read $e $D/big-$f.db $A $I"
done
$B drive $R -- noop $W
$B drive $R -- noop $RD
