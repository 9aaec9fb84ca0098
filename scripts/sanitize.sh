#!/usr/bin/env bash
# Sanitizer smoke test: builds the 'debug' preset (GCC, AddressSanitizer + UndefinedBehaviorSanitizer,
# -fno-sanitize-recover), runs the whole ctest suite under it, then `rwkv-embed info`, `embed` and
# `eval` on the shared tiny models and on an odd-offset BF16 copy (the safetensors header padded by
# one byte so the data region starts at an odd offset: legal, and every BF16 load misaligned).
# Any sanitizer report stops the process with an error (halt_on_error) and fails this script.
#   scripts/sanitize.sh            everything
#   scripts/sanitize.sh --smoke    the CLI smoke test only (skips ctest)
# Shared data: RWKV_EMBED_SHARED (default ../shared). Leak checking: SANITIZE_LEAKS=0 turns it off
# where LeakSanitizer cannot run (it needs ptrace, which some containers forbid).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
smoke_only=0
[[ ${1:-} == --smoke ]] && smoke_only=1
shared=${RWKV_EMBED_SHARED:-$root/../shared}
[[ -d $shared/models ]] || { echo "sanitize: shared data not found at $shared" >&2; exit 2; }
export RWKV_EMBED_SHARED=$shared
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=${SANITIZE_LEAKS:-1}:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
start=$SECONDS
elapsed() { echo "$((SECONDS - $1)) s"; }

t=$SECONDS
[[ -f build/debug/build.ninja ]] || cmake --preset debug >/dev/null
nice cmake --build --preset debug -j "$(nproc)" | grep -v '^\[' || true
[[ -x build/debug/rwkv-embed ]] || { echo "sanitize: build failed" >&2; exit 1; }
echo "sanitize: debug build ready in $(elapsed $t)"

if ((smoke_only == 0)); then
  t=$SECONDS
  ctest --preset debug
  echo "sanitize: ctest under ASan+UBSan passed in $(elapsed $t)"
fi

work=$root/build/debug/sanitize
rm -rf "$work"
mkdir -p "$work"
cli=$root/build/debug/rwkv-embed
# A copy of model folder $1 in $2 whose model.safetensors header is one space longer.
odd_offset_copy() {
  local src=$1 dst=$2 n m
  mkdir -p "$dst"
  cp "$src/config.json" "$src/rwkv_vocab_v20230424.txt" "$dst/"
  n=$(od -An -tu8 -N8 "$src/model.safetensors" | tr -d ' ')
  m=$((n + 1))
  {
    printf "$(printf '\\x%02x' $((m & 255)) $((m >> 8 & 255)) $((m >> 16 & 255)) $((m >> 24 & 255)))"
    printf '\0\0\0\0'
    head -c $((8 + n)) "$src/model.safetensors" | tail -c +9
    printf ' '
    tail -c +$((9 + n)) "$src/model.safetensors"
  } > "$dst/model.safetensors"
  (((8 + m) % 2 == 1)) || { echo "sanitize: padding did not give an odd offset" >&2; exit 1; }
}
odd_offset_copy "$shared/models/tiny-rwkv6-bf16" "$work/tiny-rwkv6-bf16-odd"

# Sentences: a few from MRPC plus non-ASCII text and a line longer than --batch-tokens.
{
  awk -F'\t' 'NR > 1 && NR <= 21 { print $4 }' "$shared/data/mrpc/dev.tsv"
  echo 'naïve café — 東京 😀'
  for _ in $(seq 60); do printf 'the quick brown fox jumps over the lazy dog '; done
  echo
} > "$work/sentences.txt"

# Runs a CLI command; on failure prints it with the start of its log (the sanitizer report) and
# records the failure, so every model is still tried.
failures=0
run() {
  local log=$1
  shift
  local rc=0
  "$@" > "$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    failures=$((failures + 1))
    echo "sanitize: FAILED (exit $rc): $*" >&2
    grep -m 6 -E 'runtime error|ERROR|SUMMARY|^ +#[0-9] |error:' "$log" | sed 's/^/sanitize:   /' >&2
    echo "sanitize:   full log: $log" >&2
  fi
}

t=$SECONDS
for model in "$shared/models/tiny-rwkv6-bf16" "$shared/models/tiny-rwkv6-f32" \
             "$work/tiny-rwkv6-bf16-odd"; do
  name=$(basename "$model")
  echo "sanitize: $name: info, embed, eval"
  run "$work/$name.info.log" "$cli" info --model "$model" --check-weights
  run "$work/$name.embed.log" "$cli" embed --model "$model" --input "$work/sentences.txt" \
    --output "$work/$name.npy" --layers all --pooling mean --batch-tokens 256
  run "$work/$name.embed-jsonl.log" "$cli" embed --model "$model" \
    --input "$work/sentences.txt" --output "$work/$name.jsonl" --layers final --pooling last \
    --precision bf16
  # 60 MRPC training pairs, nothing fitted on the whole train split: the eval path (embedding,
  # metrics, bootstrap CIs, paired tests, JSON) on ~120 sentences, as -O0 + ASan is slow.
  run "$work/$name.eval.log" "$cli" eval --task mrpc --split train-60 --data-dir "$shared/data" \
    --model "$model" --layers all --pooling mean --bootstrap 50 --fit-split none \
    --subset-seeds none --output "$work/$name.eval.json"
done
# The odd-offset copy is the same model: its embeddings must be identical.
if [[ -f $work/tiny-rwkv6-bf16.npy && -f $work/tiny-rwkv6-bf16-odd.npy ]]; then
  cmp "$work/tiny-rwkv6-bf16.npy" "$work/tiny-rwkv6-bf16-odd.npy" ||
    { failures=$((failures + 1)); echo "sanitize: FAILED: odd-offset embeddings differ" >&2; }
fi
if ((failures > 0)); then
  echo "sanitize: $failures CLI check(s) FAILED (smoke test took $(elapsed $t))" >&2
  exit 1
fi
echo "sanitize: CLI smoke test passed in $(elapsed $t)"
echo "sanitize: all passed in $(elapsed $start)"
