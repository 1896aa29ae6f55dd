#!/usr/bin/env bash
# Fills one default-config gateway with the neutral loadgen, seed after seed, and reports what
# the store costs as it grows: intake per server CPU-second per seed, bytes on disk per span
# (du against `query stats`), query latency on the full store, and the restart time.
#
#   cargo build --release --examples && (cd ../shared/tools/loadgen && cargo build --release \
#     --target-dir ../../../main/target/loadgen) && bash benches/fill.sh
#
# Env: SIEVE (target/release/sieve), LOADGEN (target/loadgen/release/loadgen), SEEDS
# ("11 12 13 14 15": 10 s each, about 2.5 M spans per seed on 2 cores), DIR (/tmp/sieve-fill),
# LOADGEN_ARGS (extra, e.g. --logs). Needs ports 4317, 4318, 4320 and 8888 free.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
SIEVE=${SIEVE:-$here/target/release/sieve}
LOADGEN=${LOADGEN:-$here/target/loadgen/release/loadgen}
QUERY_LATENCY=${QUERY_LATENCY:-$here/target/release/examples/query_latency}
SEEDS=${SEEDS:-"11 12 13 14 15"}
DIR=${DIR:-/tmp/sieve-fill}
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR"
wait_log() { for _ in $(seq 300); do grep -q "query grpc listening" "$1" && return 0; sleep 0.05; done; return 1; }
"$SIEVE" serve >sieve.log 2>&1 &
pid=$!
wait_log sieve.log
for seed in $SEEDS; do
  "$LOADGEN" -c 16 -d 10 -w 2 --payloads 3000 --seed "$seed" --server-pid "$pid" --json ${LOADGEN_ARGS:-} \
    2>/dev/null >"seed$seed.json"
  python3 - "$seed" <<'PY'
import json, sys
d = json.load(open(f"seed{sys.argv[1]}.json")); s = d["server"]
print(f"seed {sys.argv[1]}: accepted {d['items_accepted']}, {s['accepted_per_cpu_second']:.0f} per server CPU-s, "
      f"p99 {d['latency_ms']['p99']} ms, peak RSS {s['memory']['vm_hwm_kib'] / 1024:.0f} MiB, "
      f"{d['avg_request_bytes'] / d['items_per_request']:.0f} B/item on the wire")
PY
done
sleep 20 # the last seals and compactions
echo "du: $(du -s --block-size=1 sieve-data | cut -f1) bytes"
for d in values runs db queue; do echo "  $d: $(du -s --block-size=1 sieve-data/$d 2>/dev/null | cut -f1)"; done
"$SIEVE" query stats
"$QUERY_LATENCY" --addr http://127.0.0.1:4320
kill "$pid"; wait "$pid" || true
t0=$(date +%s.%N)
"$SIEVE" serve >restart.log 2>&1 &
pid=$!
wait_log restart.log
echo "restart: ready in $(python3 -c "import time; print(f'{time.time() - $t0:.2f}')") s"
kill "$pid"; wait "$pid" || true
