#!/usr/bin/env bash
# Fuzzes every target for MINUTES minutes each (default 1), one after another, on its corpus
# in fuzz/corpus/<target> (new inputs that reach new coverage are added there; commit the
# small ones). Crashes land in fuzz/artifacts/<target>/; each one becomes a named regression
# test and its input is kept in the corpus. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Prints one line per target: executions, coverage, corpus size.
#
#   bash fuzz/run.sh [MINUTES] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-1}  # SECONDS_PER_TARGET overrides it (short smoke runs)
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
seconds=${SECONDS_PER_TARGET:-$((minutes * 60))}
cargo +nightly fuzz build -O >/dev/null
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/logs/$t.log"
  # -rss_limit_mb: the store_files target opens a sled-free store directory per input.
  set +e
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  n=$(ls "fuzz/corpus/$t" | wc -l)
  status=ok; [ $rc -ne 0 ] && status="CRASH (see $log, fuzz/artifacts/$t)"
  echo "$t: ${execs} execs in ${seconds} s, cov ${cov}, ft ${ft}, corpus ${n} files: ${status}"
done
