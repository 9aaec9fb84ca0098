#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (docs/fuzzing.md).
#   scripts/fuzz.sh TARGET SECONDS     one target, e.g. scripts/fuzz.sh safetensors 60
#   scripts/fuzz.sh all SECONDS        every target in turn, SECONDS each
#   scripts/fuzz.sh list               the target names
# Configures and builds the 'fuzz' preset (clang++, ASan + UBSan) if needed, writes the seed corpus
# into build/fuzz/corpus/TARGET (from the shared data: RWKV_EMBED_SHARED, default ../shared), runs
# the target on it for SECONDS and prints executions, coverage and findings. Inputs that add
# coverage stay in the corpus folder for the next run. Exits 1 if any target found a crash, a
# sanitizer error, a leak, a timeout or an out-of-memory; the offending input is kept under
# build/fuzz/findings/TARGET/ and its path printed. Extra libFuzzer flags go in FUZZ_FLAGS, e.g.
# FUZZ_FLAGS="-runs=1000000" (stop after that many) or "-fork=1 -ignore_crashes=1" (keep going
# after a finding, collecting every distinct crash input).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS  |  scripts/fuzz.sh list" >&2
  exit 2
}
targets() { for f in fuzz/*_fuzz.cc; do basename "$f" _fuzz.cc; done; }

(($# >= 1)) || usage
if [[ $1 == list ]]; then
  targets
  exit 0
fi
(($# == 2)) && [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0)) || usage
what=$1 seconds=$2
if [[ $what == all ]]; then
  mapfile -t selected < <(targets)
elif [[ -f fuzz/${what}_fuzz.cc ]]; then
  selected=("$what")
else
  echo "fuzz: unknown target '$what'; targets: $(targets | tr '\n' ' ')" >&2
  exit 2
fi

shared=${RWKV_EMBED_SHARED:-$root/../shared}
[[ -d $shared/models ]] || { echo "fuzz: shared data not found at $shared (set RWKV_EMBED_SHARED)" >&2; exit 2; }
export RWKV_EMBED_SHARED=$shared

build=$root/build/fuzz
start=$SECONDS
[[ -f $build/build.ninja ]] || cmake --preset fuzz >/dev/null
nice cmake --build --preset fuzz -j "$(nproc)" | grep -v '^\[' || true
[[ -x $build/fuzz/fuzz_seeds ]] || { echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: build ready in $((SECONDS - start)) s"

# Each input is written to a temporary file (the parsers read files): keep that in memory.
if [[ -z ${TMPDIR:-} && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
# Leaks are findings; UBSan stops at the first report with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${selected[@]}"; do
  corpus=$build/corpus/$t findings=$build/findings/$t log=$build/logs/$t.log
  mkdir -p "$corpus" "$findings" "$(dirname "$log")"
  fuzz/make-corpus.sh "$build/fuzz/fuzz_seeds" "$shared" "$build/corpus" "$t"
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$findings/")
  [[ -f fuzz/dict/$t.dict ]] && flags+=(-dict="fuzz/dict/$t.dict")
  touch "$findings/.started"
  rc=0
  # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
  nice "$build/fuzz/${t}_fuzz" "${flags[@]}" ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1 || rc=$?
  # Plain runs end with stat:: lines; -fork=N runs with "#RUNS: cov: .. exec/s N .." lines.
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [[ -z $runs ]]; then
    runs=$(grep -oE '^#[0-9]+: cov' "$log" | tail -1 | tr -dc 0-9)
    rate=$(grep -oE 'exec/s [0-9]+' "$log" | tail -1 | tr -dc 0-9)
  fi
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  units=$(find "$corpus" -type f | wc -l)
  mapfile -t found < <(find "$findings" -type f -newer "$findings/.started" \
                         \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \
                            -o -name 'slow-unit-*' \) | sort)
  if ((rc == 0 && ${#found[@]} == 0)); then
    echo "fuzz: $t: ${runs:-?} executions in ${seconds} s max (${rate:-?}/s), ${cov:-cov: ?}, corpus $units files, no findings"
  else
    failed+=("$t")
    echo "fuzz: $t: FINDING after ${runs:-?} executions (${rate:-?}/s, ${cov:-cov: ?}, exit $rc); log $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|FUZZ_CHECK|terminate called|  what\(\))' "$log" |
      sort | uniq -c | sort -rn | head -6 | sed 's/^/fuzz:   /' || true
    for f in "${found[@]}"; do echo "fuzz:   input: $f"; done
    ((${#found[@]} > 0)) && echo "fuzz:   reproduce: $build/fuzz/${t}_fuzz ${found[0]}"
  fi
done
echo "fuzz: ${#selected[@]} target(s) in $((SECONDS - start)) s; findings in: ${failed[*]:-none}"
((${#failed[@]} == 0))
