#!/usr/bin/env bash
# Installs dependencies, checks formatting and the docs' links (scripts/lint.sh --format-only),
# builds the release preset and runs the whole test suite with ctest.
# Shared data is found through RWKV_EMBED_SHARED (default: ../shared beside the checkout).
# Then every fuzz target runs for RWKV_EMBED_FUZZ_SECONDS (default 10) on its seed corpus
# (docs/fuzzing.md: about 2 minutes with the fuzz build); 0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.sh --format-only
cmake --preset release
cmake --build --preset release -j "$(nproc)"
ctest --preset release
# The fuzz smoke run is bounded: 9 targets x 10 s plus a parsers-only clang build. It is skipped
# if the steps above already took over an hour, to stay well inside CI's 90 minutes.
fuzz_seconds=${RWKV_EMBED_FUZZ_SECONDS:-10}
if ((fuzz_seconds > 0 && SECONDS < 3600)); then
  scripts/fuzz.sh all "$fuzz_seconds"
elif ((fuzz_seconds > 0)); then
  echo "test: fuzz smoke run skipped (the build and tests took $((SECONDS / 60)) min)"
fi
