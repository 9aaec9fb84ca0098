#!/usr/bin/env bash
# Scaling of the MPI embed on one machine: `rwkv-embed-mpi embed` under `mpirun -np N` for each N
# (default 1 2 4), with cores/N OpenMP threads per rank, on the same input and model; prints
# tokens/s, efficiency against N = 1, load balance and the time outside embedding, checks that
# every output is bit-identical to N = 1's, and fits the cluster model of README "Clusters (MPI)".
#
# On one machine the ranks share its cores: this measures the overhead of sharding (planning,
# line counting, a model per rank, coordination, the tail), not a speed-up.
#
#   scripts/mpi_scaling.sh MODEL INPUT [N ...] [-- EXTRA EMBED OPTIONS]
#   RWKV_EMBED_CORES (default: nproc)   MPIRUN (default: mpirun)   BUILD (default: build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# < 2)); then
  sed -n '2,12p' "$0"
  exit 2
fi
model=$1 input=$2
shift 2
ranks=()
while (($#)) && [[ $1 != -- ]]; do
  ranks+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
extra=("$@")
((${#ranks[@]})) || ranks=(1 2 4)
cores=${RWKV_EMBED_CORES:-$(nproc)}
bin=${BUILD:-build/release}/rwkv-embed-mpi
[[ -x $bin ]] || { echo "mpi_scaling: $bin not built (needs -DRWKV_EMBED_MPI=ON and Open MPI)" >&2; exit 2; }
mpirun_cmd=("${MPIRUN:-mpirun}" --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && mpirun_cmd+=(--allow-run-as-root)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

runs=()
for n in "${ranks[@]}"; do
  threads=$((cores / n > 0 ? cores / n : 1))
  echo "mpi_scaling: $n rank(s) x $threads thread(s)" >&2
  OMP_WAIT_POLICY=passive "${mpirun_cmd[@]}" -np "$n" "$bin" embed --model "$model" \
    --input "$input" --output "$out/n$n.npy" --threads "$threads" "${extra[@]}" >&2
  if [[ $n != "${ranks[0]}" ]] && ! cmp -s "$out/n${ranks[0]}.npy" "$out/n$n.npy"; then
    echo "mpi_scaling: output of $n ranks differs from ${ranks[0]} rank(s)" >&2
    exit 1
  fi
  runs+=("$out/n$n.npy.run.json")
done

python3 - "$cores" "${runs[@]}" <<'PY'
import json, sys
cores = int(sys.argv[1])
runs = [json.load(open(p)) for p in sys.argv[2:]]
base = runs[0]
def rate(r): return r["tokens_this_run"] / r["seconds"]["total"]
print(f"\n{base['sentences']} sentences, {base['tokens_this_run']} tokens, {cores} cores "
      "(one machine: ranks share the cores; efficiency = overhead, not speed-up)\n")
print("| ranks x threads | shards | wall s | embed loop s | tokens/s (wall) | efficiency vs "
      f"{base['ranks']} rank | load balance (max/mean busy) | outside embedding s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in runs:
    s = r["seconds"]
    busy = max(k["busy_seconds"] for k in r["per_rank"])
    print(f"| {r['ranks']} x {r['threads_per_rank']} | {r['shards']} | {s['total']:.2f} | "
          f"{s['embed_loop']:.2f} | {rate(r):.1f} | {rate(r) / rate(base):.3f} | "
          f"{r['load_balance_max_over_mean']:.3f} | {s['total'] - busy:.2f} |")
# Cluster model (README "Clusters (MPI)"): one rank per node at the N = 1 rate R tokens/s;
# T(P) = fixed (load, plan, count, GEMM choice) + tokens / (P * R) + one shard (the tail).
s = base["seconds"]
fixed = s["total"] - s["embed_loop"]
R = base["tokens_this_run"] / s["embed_loop"]
per_sentence = base["tokens_this_run"] / base["sentences"]
shard_s = max(t["seconds"] for t in base["shard_timings"])
print(f"\nper-node rate R = {R:.1f} tokens/s = {R / per_sentence:.2f} sentences/s "
      f"({per_sentence:.1f} tokens/sentence); fixed cost {fixed:.2f} s; longest shard {shard_s:.2f} s")
for sentences, nodes in ((1e8, 64),):
    t = fixed + sentences * per_sentence / (nodes * R)
    print(f"model: {sentences:.0e} sentences on {nodes} such nodes: {t / 3600:.1f} h "
          f"(+ one shard of tail)")
PY
