#!/usr/bin/env bash
# Installs dependencies, builds the release preset and runs the whole test suite with ctest.
# Shared data is found through RWKV_EMBED_SHARED (default: ../shared beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.sh --format-only
cmake --preset release
cmake --build --preset release -j "$(nproc)"
ctest --preset release
