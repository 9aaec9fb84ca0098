#!/usr/bin/env bash
# Load test of `rwkv-embed serve` on loopback (docs/server.md#load-test). Bounded: every wrk run stops
# after its request count (or --max-seconds), and the server is stopped at the end (SIGTERM).
#
#   scripts/loadtest.sh --model DIR [--requests 10000] [--connections 64] [--rounds 3]
#       [--serial-requests 500] [--single-requests 200] [--embed-sentences 4000]
#       [--min-sentences 1] [--max-sentences 16] [--threads N] [--precision f32|bf16]
#       [--gemm-path P] [--max-batch-tokens N] [--max-batch-delay-ms N] [--format base64|float]
#       [--timeout SECONDS] [--warmup-requests 200] [--out DIR] [--bin PATH]
#
# Measures, on MRPC sentences (RWKV_EMBED_SHARED, default ../shared), 1-16 per request:
#  - ROUNDS rounds of REQUESTS requests at CONNECTIONS connections: errors (non-200 and socket),
#    p50/p90/p99 latency, requests/s and sentences/s, server RSS sampled every 0.5 s throughout
#    (per round: min/max/end; growth from round 1 to the last);
#  - the same bodies over 1 connection (SERIAL requests): the batching gain is the sentences/s at
#    CONNECTIONS over this;
#  - single-sentence requests over 1 connection (SINGLE): p50/p99 latency;
#  - `rwkv-embed embed` on the same sentences in one process with the same options: sentences/s
#    (load time subtracted: a 1-sentence run is timed too) and its 1-sentence wall time.
# A request not answered within --timeout (wrk's per-request limit) counts as a socket error;
# give a model that takes minutes per queue of 64 requests a larger one (Finch-1B6 on 2 cores: 600).
# Prints a Markdown summary table; raw logs go to OUT (default build/loadtest).
set -euo pipefail
cd "$(dirname "$0")/.."

model="" requests=10000 connections=64 rounds=3 serial=500 single=200 embed_sentences=4000
min_s=1 max_s=16 threads=0 precision=f32 gemm_path="" max_batch_tokens=16384 delay_ms=2
format=base64 out=build/loadtest bin=build/release/rwkv-embed max_seconds=900 timeout=120 warmup=200
while (($#)); do
  case $1 in
    --model) model=$2 ;; --requests) requests=$2 ;; --connections) connections=$2 ;;
    --rounds) rounds=$2 ;; --serial-requests) serial=$2 ;; --single-requests) single=$2 ;;
    --embed-sentences) embed_sentences=$2 ;; --min-sentences) min_s=$2 ;;
    --max-sentences) max_s=$2 ;; --threads) threads=$2 ;; --precision) precision=$2 ;;
    --gemm-path) gemm_path=$2 ;; --max-batch-tokens) max_batch_tokens=$2 ;;
    --max-batch-delay-ms) delay_ms=$2 ;; --format) format=$2 ;; --out) out=$2 ;; --bin) bin=$2 ;;
    --max-seconds) max_seconds=$2 ;; --timeout) timeout=$2 ;;
    --warmup-requests) warmup=$2 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "loadtest: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $model ]] || { echo "loadtest: --model DIR is required" >&2; exit 2; }
for n in "$requests" "$connections" "$rounds" "$serial" "$single" "$embed_sentences" "$min_s" \
         "$max_s" "$threads" "$max_batch_tokens" "$delay_ms" "$max_seconds" "$timeout" "$warmup"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "loadtest: '$n' is not a count" >&2; exit 2; }
done
((min_s >= 1 && max_s >= min_s && connections >= 1 && requests >= 1)) ||
  { echo "loadtest: need 1 <= min-sentences <= max-sentences, connections >= 1" >&2; exit 2; }
command -v wrk >/dev/null || { echo "loadtest: wrk not found (apt-get install wrk)" >&2; exit 2; }
[[ -x $bin ]] || { echo "loadtest: $bin not built (cmake --build --preset release)" >&2; exit 2; }
shared=${RWKV_EMBED_SHARED:-../shared}
data=$shared/data/mrpc/train.tsv
[[ -f $data ]] || { echo "loadtest: $data not found (set RWKV_EMBED_SHARED)" >&2; exit 2; }
mkdir -p "$out"
wrk_threads=$(( $(nproc) < connections ? $(nproc) : connections ))

# Request bodies: 1000 of MIN-MAX random MRPC sentences each (seeded), and 1-sentence ones.
python3 - "$data" "$out" "$min_s" "$max_s" "$format" <<'PY'
import json, random, sys
data, out, lo, hi, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sentences = []
with open(data, encoding="utf-8-sig") as f:
    next(f)
    for line in f:
        cols = line.rstrip("\n").split("\t")
        sentences += [s for s in cols[3:5] if s]
rng = random.Random(0)
with open(f"{out}/bodies.jsonl", "w") as b, open(f"{out}/sentences.txt", "w") as s:
    for _ in range(1000):
        pick = [rng.choice(sentences) for _ in range(rng.randint(lo, hi))]
        b.write(json.dumps({"input": pick, "encoding_format": fmt}) + "\n")
        s.write("\n".join(pick) + "\n")
with open(f"{out}/single.jsonl", "w") as b, open(f"{out}/one.txt", "w") as s:
    for i in range(200):
        b.write(json.dumps({"input": sentences[i], "encoding_format": fmt}) + "\n")
    s.write(sentences[0] + "\n")
PY
mean_sentences=$(python3 -c "import json,sys; l=[len(json.loads(x)['input']) for x in open(sys.argv[1])]; print(sum(l)/len(l))" "$out/bodies.jsonl")

opts=(--model "$model" --precision "$precision")
((threads > 0)) && opts+=(--threads "$threads")
[[ -n $gemm_path ]] && opts+=(--gemm-path "$gemm_path")
server_log=$out/server.log rss_log=$out/rss.log
"$bin" serve "${opts[@]}" --host 127.0.0.1 --port 0 --max-batch-tokens "$max_batch_tokens" \
  --max-batch-delay-ms "$delay_ms" --max-concurrent-requests $((connections + 64)) \
  >"$server_log" 2>&1 &
server=$!
sampler=""
cleanup() {
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; fi
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap cleanup EXIT
port=""
for _ in $(seq 600); do
  port=$(grep -oE 'listening on http://127.0.0.1:[0-9]+' "$server_log" | grep -oE '[0-9]+$' || true)
  [[ -n $port ]] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$server_log" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "loadtest: server not ready" >&2; exit 1; }
url=http://127.0.0.1:$port/v1/embeddings
echo "loadtest: server pid $server on port $port; logs in $out" >&2

# RSS in kB every 0.5 s, with the phase written beside it.
echo warmup >"$out/phase"
(while kill -0 "$server" 2>/dev/null; do
   echo "$(cat "$out/phase") $(awk '/^VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null)"
   sleep 0.5
 done) >"$rss_log" &
sampler=$!

run_wrk() {  # NAME BODIES REQUESTS CONNECTIONS THREADS
  local name=$1 bodies=$2 n=$3 c=$4 t=$5
  echo "$name" >"$out/phase"
  local per_thread=$(( (n + t - 1) / t ))
  rm -f "$out/markers/$name".*
  mkdir -p "$out/markers"
  wrk -t "$t" -c "$c" -d "${max_seconds}s" --timeout "${timeout}s" -s scripts/loadtest.lua "$url" -- \
    "$bodies" "$per_thread" "$t" "$out/markers/$name." "${RWKV_EMBED_API_KEY:-}" \
    >"$out/$name.wrk" 2>&1
  grep '^LOADTEST' "$out/$name.wrk" | sed "s/^LOADTEST/$name/"
}

results=()
if ((warmup > 0)); then run_wrk warmup "$out/bodies.jsonl" "$warmup" "$connections" "$wrk_threads" >/dev/null; fi
for r in $(seq "$rounds"); do
  results+=("$(run_wrk "round$r" "$out/bodies.jsonl" "$requests" "$connections" "$wrk_threads")")
done
results+=("$(run_wrk serial "$out/bodies.jsonl" "$serial" 1 1)")
results+=("$(run_wrk single "$out/single.jsonl" "$single" 1 1)")
echo "done" >"$out/phase"
kill "$sampler" 2>/dev/null || true
sampler=""
kill -TERM "$server"
server_exit=0
wait "$server" || server_exit=$?
trap - EXIT

# embed on the same sentences (those of the first bodies), same options, same process shape.
head -n "$embed_sentences" "$out/sentences.txt" >"$out/embed-input.txt"
n_embed=$(wc -l <"$out/embed-input.txt")
embed_time() {  # wall seconds of one embed run
  local s e
  s=$(date +%s.%N)
  "$bin" embed "${opts[@]}" --layers final --pooling mean --normalize l2 --input "$1" \
    --output "$out/embed.npy" 2>>"$out/embed.log"
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
t_one=$(embed_time "$out/one.txt")
t_all=$(embed_time "$out/embed-input.txt")

python3 - "$mean_sentences" "$n_embed" "$t_one" "$t_all" "$rss_log" "$server_exit" "$connections" \
  "$model" "${results[@]}" <<'PY'
import sys
mean_s, n_embed, t_one, t_all, rss_log, server_exit, conns, model = sys.argv[1:9]
mean_s, n_embed, t_one, t_all = float(mean_s), int(n_embed), float(t_one), float(t_all)
runs = {}
for line in sys.argv[9:]:
    name, *kv = line.split()
    runs[name] = {k: float(v) for k, v in (x.split("=") for x in kv)}
rss = {}
for line in open(rss_log):
    parts = line.split()
    if len(parts) == 2:
        rss.setdefault(parts[0], []).append(int(parts[1]) / 1024)
embed_rate = (n_embed - 1) / max(t_all - t_one, 1e-9)
print(f"\n## Load test: {model}\n")
print("| run | requests | errors | p50 ms | p90 ms | p99 ms | requests/s | sentences/s | RSS MB min / max / end |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for name, r in runs.items():
    sent = 1.0 if name == "single" else mean_s
    rate = r["requests"] / r["duration_s"]
    m = rss.get(name)
    mem = f"{min(m):.1f} / {max(m):.1f} / {m[-1]:.1f}" if m else "- (run shorter than a sample)"
    print(f"| {name} ({int(conns) if name.startswith('round') else 1} conn) | {int(r['requests'])} | "
          f"{int(r['non200'] + r['socket_errors'])} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
          f"{r['p99_ms']:.1f} | {rate:.1f} | {rate * sent:.1f} | {mem} |")
rounds = [k for k in runs if k.startswith("round")]
last = rounds[-1]
best = max(runs[k]["requests"] / runs[k]["duration_s"] * mean_s for k in rounds)
serial = runs["serial"]["requests"] / runs["serial"]["duration_s"] * mean_s
print()
print(f"- errors in all runs: {int(sum(r['non200'] + r['socket_errors'] for r in runs.values()))}; server exit status after SIGTERM: {server_exit}")
print(f"- RSS end of round 1 -> end of {last}: {rss[rounds[0]][-1]:.1f} -> {rss[last][-1]:.1f} MB "
      f"({rss[last][-1] - rss[rounds[0]][-1]:+.1f} MB); max over rounds {max(max(rss[k]) for k in rounds):.1f} MB")
print(f"- batching gain: {best:.1f} sentences/s at {conns} connections vs {serial:.1f} at 1 = {best / serial:.2f}x")
print(f"- embed (one process, {n_embed} of the same sentences, load subtracted): {embed_rate:.1f} sentences/s; "
      f"server at {conns} connections = {100 * best / embed_rate:.0f}% of it")
print(f"- single sentence: server p50 {runs['single']['p50_ms']:.1f} ms / p99 {runs['single']['p99_ms']:.1f} ms "
      f"per request; embed of one sentence {t_one * 1000:.0f} ms wall (process start and model load included), "
      f"{1000 / embed_rate:.1f} ms per sentence in a batch")
PY
