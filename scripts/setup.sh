#!/usr/bin/env bash
# Installs every Debian package rwkv-embed needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang-format clang-tidy
  clang libclang-rt-dev  # libFuzzer and the sanitizer runtimes for the fuzz preset
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev
  libdnnl-dev libopenblas-dev
  gnuplot-nox
  pybind11-dev python3-dev python3-numpy  # the Python module (python/) and its test
  libopenmpi-dev openmpi-bin  # rwkv-embed-mpi (docs/mpi.md) and its tests
  libcpp-httplib-dev  # rwkv-embed serve (a compiled library despite the name: see CMakeLists.txt)
  wrk bc              # scripts/loadtest.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
