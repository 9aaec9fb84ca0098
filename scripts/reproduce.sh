#!/usr/bin/env bash
# The main job: sets up, builds, and runs `rwkv-embed reproduce` (the study's protocol and more)
# on local assets — no downloads. Override the assets with environment variables:
#   RWKV_EMBED_MODEL  model folder   (default ../shared/models/tiny-rwkv6-bf16)
#   RWKV_EMBED_GLOVE  word vectors   (default ../shared/vectors/glove.6B.100d.mrpc-stsb.txt)
#   RWKV_EMBED_DATA   data folder    (default ../shared/data: mrpc/ and stsb/)
#   RWKV_EMBED_OUT    output folder  (default results; files go to OUT/<model name>/)
# Extra arguments are passed to `rwkv-embed reproduce` (e.g. --threads 4 --bootstrap 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${RWKV_EMBED_SHARED:-../shared}"
model="${RWKV_EMBED_MODEL:-$shared/models/tiny-rwkv6-bf16}"
glove="${RWKV_EMBED_GLOVE:-$shared/vectors/glove.6B.100d.mrpc-stsb.txt}"
data="${RWKV_EMBED_DATA:-$shared/data}"
out="${RWKV_EMBED_OUT:-results}"
for p in "$model/config.json" "$glove" "$data/mrpc/train.tsv" "$data/stsb/sts-dev.tsv"; do
  [[ -e "$p" ]] || { echo "reproduce.sh: missing $p (set RWKV_EMBED_MODEL/GLOVE/DATA)" >&2; exit 3; }
done
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target rwkv-embed
echo "reproduce.sh: model $model, vectors $glove, data $data -> $out/"
exec build/release/rwkv-embed reproduce --model "$model" --glove "$glove" --data-dir "$data" \
  --out "$out" "$@"
