#!/usr/bin/env bash
# clang-format check, the docs' link check (scripts/check-links.py) and clang-tidy over every C++
# file of the project (needs a configured release build for compile_commands.json).
# Usage: scripts/lint.sh [--format-only]   (--format-only: clang-format and links, no clang-tidy)
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h')
echo "lint: clang-format on ${#files[@]} files"
clang-format --dry-run -Werror "${files[@]}"
echo "lint: links of README.md and docs/"
python3 scripts/check-links.py
[[ "${1:-}" == "--format-only" ]] && exit 0
[[ -f build/release/compile_commands.json ]] || cmake --preset release >/dev/null
mapfile -t units < <(git ls-files '*.cc' ':!:fuzz/*')
echo "lint: clang-tidy on ${#units[@]} translation units"
printf '%s\n' "${units[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p build/release --quiet
# The fuzz targets are compiled only by the clang 'fuzz' preset (scripts/fuzz.sh configures it).
if [[ -f build/fuzz/compile_commands.json ]]; then
  git ls-files 'fuzz/*.cc' | xargs -P "$(nproc)" -n 4 clang-tidy -p build/fuzz --quiet
fi
echo "lint: clean"
