#!/usr/bin/env bash
# Fetches the study's real assets where the internet is reachable (it is not in the workplace
# this was written in, so the network path is unexercised there):
#   - RWKV/v6-Finch-1B6-HF from Hugging Face; every LFS file is checked against the SHA-256 that
#     the Hub's API lists for it, and the vocabulary against ../shared's copy when present;
#   - Stanford's glove.6B.zip (862,182,613 bytes; the zip's CRCs are tested), unpacking the 50d
#     file the study used and the 100d file, which is checked word for word against
#     ../shared/vectors/glove.6B.100d.mrpc-stsb.txt when present.
# MRPC and STS-B are read from a folder laid out like ../shared/data (`--data-dir`).
# Usage: scripts/fetch-assets.sh [DEST]   (default: assets/). Then:
#   RWKV_EMBED_MODEL=DEST/v6-Finch-1B6-HF RWKV_EMBED_GLOVE=DEST/glove.6B.50d.txt scripts/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-assets}"
shared="${RWKV_EMBED_SHARED:-../shared}"
repo="RWKV/v6-Finch-1B6-HF"
mkdir -p "$dest/v6-Finch-1B6-HF"

echo "fetch-assets: listing $repo"
curl -fsSL "https://huggingface.co/api/models/$repo/tree/main" -o "$dest/hf-tree.json"
for f in config.json model.safetensors rwkv_vocab_v20230424.txt; do
  out="$dest/v6-Finch-1B6-HF/$f"
  [[ -s "$out" ]] || curl -fL --retry 3 "https://huggingface.co/$repo/resolve/main/$f" -o "$out"
  want=$(python3 -c 'import json,sys
for e in json.load(open(sys.argv[1])):
    if e.get("path") == sys.argv[2] and e.get("lfs"): print(e["lfs"]["oid"])' "$dest/hf-tree.json" "$f")
  if [[ -n "$want" ]]; then
    echo "$want  $out" | sha256sum --check --quiet || { echo "fetch-assets: $f checksum mismatch" >&2; exit 4; }
  fi
done
if [[ -f "$shared/models/rwkv_vocab_v20230424.txt" ]]; then
  cmp -s "$shared/models/rwkv_vocab_v20230424.txt" "$dest/v6-Finch-1B6-HF/rwkv_vocab_v20230424.txt" ||
    { echo "fetch-assets: vocabulary differs from $shared/models" >&2; exit 4; }
fi

zip="$dest/glove.6B.zip"
[[ -s "$zip" ]] || curl -fL --retry 3 "https://nlp.stanford.edu/data/glove.6B.zip" -o "$zip"
size=$(stat -c %s "$zip")
[[ "$size" == 862182613 ]] || { echo "fetch-assets: $zip has $size bytes, expected 862182613" >&2; exit 4; }
unzip -tq "$zip" >/dev/null
unzip -oq "$zip" glove.6B.50d.txt glove.6B.100d.txt -d "$dest"
subset="$shared/vectors/glove.6B.100d.mrpc-stsb.txt"
if [[ -f "$subset" ]]; then
  # Every line of the shared subset must appear verbatim in the downloaded 100d file.
  missing=$(grep -vxFf "$dest/glove.6B.100d.txt" "$subset" | wc -l)
  [[ "$missing" == 0 ]] || { echo "fetch-assets: $missing subset lines differ from glove.6B.100d.txt" >&2; exit 4; }
fi
echo "fetch-assets: model in $dest/v6-Finch-1B6-HF, vectors $dest/glove.6B.50d.txt (checked)"
