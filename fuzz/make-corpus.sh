#!/usr/bin/env bash
# fuzz/make-corpus.sh SEEDS_TOOL SHARED_DIR CORPUS_ROOT TARGET
# Writes TARGET's seed inputs into CORPUS_ROOT/TARGET, built at run time from the shared data
# (never committed copies of it) and, for .npy and safetensors, from the project's own writers
# (SEEDS_TOOL = build/fuzz/fuzz/fuzz_seeds). Idempotent: seeds are rewritten under fixed names,
# inputs the fuzzer added to the folder are kept. New target: add a case below.
set -euo pipefail
seeds_tool=$1 shared=$2 root=$3 target=$4
out=$root/$target
mkdir -p "$out"
models=$shared/models
vocab=$models/rwkv_vocab_v20230424.txt
mrpc=$shared/data/mrpc
stsb=$shared/data/stsb

# The 8-byte length and JSON header of a safetensors file, without its data region.
header_of() {
  local n
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  head -c $((8 + n)) "$1"
}
# A copy of safetensors file $1 whose header is one space longer, so the data region starts at an
# odd offset (legal: the format requires no alignment).
pad_header() {
  local n m
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  m=$((n + 1))
  printf "$(printf '\\x%02x' $((m & 255)) $((m >> 8 & 255)) $((m >> 16 & 255)) $((m >> 24 & 255)))"
  printf '\0\0\0\0'
  head -c $((8 + n)) "$1" | tail -c +9
  printf ' '
  tail -c +$((9 + n)) "$1"
}
# Rows 2..N+1 of an MRPC TSV as "label<TAB>id<TAB>sentence1<TAB>sentence2".
mrpc_rows() { awk -F'\t' -v n="$2" 'NR > 1 && NR <= n + 1 { print $1 "\t" $2 "-" $3 "\t" $4 "\t" $5 }' "$1"; }
stsb_rows() { awk -F'\t' -v n="$2" 'NR <= n { print $5 "\t" $4 "\t" $6 "\t" $7 }' "$1"; }
to_csv() { awk -F'\t' -v OFS=, '{ for (i = 1; i <= NF; ++i) { gsub(/"/, "\"\"", $i); $i = "\"" $i "\"" } print }'; }
to_jsonl() {
  jq -R -c 'split("\t") | {label: (.[0] | tonumber), id: .[1], sentence1: .[2], sentence2: .[3]}'
}

# Inputs that once crashed a target (committed, tiny, written by hand): every run replays them.
if [[ -d $(dirname "$0")/regressions/$target ]]; then
  cp "$(dirname "$0")/regressions/$target"/* "$out"/
fi

case $target in
  safetensors)
    tmp=$(mktemp -d)
    "$seeds_tool" "$tmp" "$shared"
    cp "$tmp"/safetensors/* "$out"/
    pad_header "$tmp/safetensors/tiny-rwkv6-bf16.st" > "$out/tiny-rwkv6-bf16-odd.st"
    rm -rf "$tmp"
    # One real header verbatim (the smallest model's: large headers slow every execution down).
    header_of "$models/tiny-rwkv6-f32/model.safetensors" > "$out/tiny-rwkv6-f32-header.st"
    ;;
  config)
    for m in "$models"/*/; do
      [[ -f $m/config.json ]] && cp "$m/config.json" "$out/$(basename "$m").json"
    done
    ;;
  vocab)
    head -n 300 "$vocab" > "$out/first-300"
    sed -n '250,520p' "$vocab" > "$out/bytes-and-pairs"
    grep -m 60 '\\u' "$vocab" > "$out/unicode-escapes" || true
    grep -m 60 "b'\\\\x" "$vocab" > "$out/bytes-literals" || true
    grep -m 60 '"' "$vocab" > "$out/double-quoted" || true
    tail -n 80 "$vocab" > "$out/last-80"
    awk 'NR % 700 == 0' "$vocab" > "$out/every-700th"
    ;;
  tokenize)
    head -n 80 "$shared/data/tokenizer-golden.jsonl" | {
      i=0
      while IFS= read -r line; do
        jq -j '.text' <<< "$line" > "$out/golden-$i"
        i=$((i + 1))
      done
    }
    mrpc_rows "$mrpc/dev.tsv" 30 > "$out/mrpc-rows"
    head -c 512 "$vocab" > "$out/vocab-bytes"
    ;;
  pairs_tsv)
    { printf 'label\tid\tsentence1\tsentence2\n'; mrpc_rows "$mrpc/train.tsv" 12; } > "$out/mrpc.tsv"
    { printf 'label\tid\tsentence1\tsentence2\n'; stsb_rows "$stsb/sts-dev.tsv" 12; } > "$out/stsb.tsv"
    { printf '\xef\xbb\xbfsentence1\tsentence2\tlabel\r\n'; printf 'a b\tc\t1\r\n\tx\t0\r\n'; } \
      > "$out/bom-crlf.tsv"
    ;;
  pairs_csv)
    { echo '"label","id","sentence1","sentence2"'; mrpc_rows "$mrpc/train.tsv" 12 | to_csv; } \
      > "$out/mrpc.csv"
    { echo 'label,id,sentence1,sentence2'; stsb_rows "$stsb/sts-dev.tsv" 12 | to_csv; } \
      > "$out/stsb.csv"
    printf 'sentence1,sentence2,label\r\n"a, ""quoted""\nline",b,0\r\nc,d,1\r\n' > "$out/quoting.csv"
    ;;
  pairs_jsonl)
    mrpc_rows "$mrpc/train.tsv" 12 | to_jsonl > "$out/mrpc.jsonl"
    stsb_rows "$stsb/sts-dev.tsv" 12 | to_jsonl > "$out/stsb.jsonl"
    printf '{"sentence1": "a\\u00e9\\n", "sentence2": "b", "label": 0.5, "extra": [1, {"k": null}]}\n' \
      > "$out/escapes.jsonl"
    ;;
  glue)
    for f in train.tsv dev.tsv test.tsv msr_paraphrase_test.txt; do
      head -n 12 "$mrpc/$f" > "$out/mrpc-$f"
    done
    for f in sts-train.tsv sts-test.tsv; do head -n 12 "$stsb/$f" > "$out/stsb-$f"; done
    ;;
  npy)
    tmp=$(mktemp -d)
    "$seeds_tool" "$tmp" "$shared"
    cp "$tmp"/npy/* "$out"/
    rm -rf "$tmp"
    ;;
  pth)
    # Small torch-format archives (F32; BF16 views sharing one storage, pickle protocol 4) written
    # without torch; the shared checkpoints are megabytes, too big to mutate byte by byte.
    python3 "$(dirname "$0")/make-pth-seeds.py" "$out"
    ;;
  serve_request)
    # Valid bodies of every route (OpenAI, TEI /embed, /tokenize) with MRPC sentences, token ids
    # and every extension field, plus a few near misses.
    sentences=$(mrpc_rows "$mrpc/dev.tsv" 16 | cut -f3 | jq -R . | jq -s -c .)
    echo "$sentences" | jq -c '{input: ., model: "tiny", encoding_format: "base64"}' > "$out/openai-batch.json"
    echo "$sentences" | jq -c '{input: .[0], encoding_format: "float", dimensions: 4, user: "u"}' \
      > "$out/openai-one.json"
    echo "$sentences" | jq -c '{input: .[:3], layers: "1,3", pooling: "max", normalize: "none", truncate: true}' \
      > "$out/openai-extensions.json"
    printf '{"input": [[1, 2, 3], [65535, 0]], "layers": [0, 4], "normalize": false}' > "$out/openai-ids.json"
    printf '{"input": [10, 20, 30]}' > "$out/openai-flat-ids.json"
    echo "$sentences" | jq -c '{inputs: .[:4], normalize: true, truncate: false}' > "$out/tei-embed.json"
    printf '{"inputs": "caf\u00e9 \u00fcber na\u00efve", "layers": "final", "pooling": "last"}' \
      > "$out/tei-one.json"
    echo "$sentences" | jq -c '{inputs: .[:2], add_special_tokens: false}' > "$out/tokenize.json"
    printf '{"input": ""}' > "$out/empty-string.json"
    printf '{"input": "a", "dimensions": 1.5}' > "$out/float-dims.json"
    ;;
  *)
    echo "make-corpus: no seeds defined for target '$target' (add a case to $0)" >&2
    exit 2
    ;;
esac
