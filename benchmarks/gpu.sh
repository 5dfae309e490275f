#!/usr/bin/env bash
# The GPU check, ready for the day a GPU is lent: on a CUDA machine, with what is installed (it
# installs nothing), run in < 10 minutes
#   1. training throughput, icsim vs the Hugging Face reference loop (Garg and quick configs),
#   2. many seeds: 16 models in one vmapped step vs one model,
#   3. fraction of the measured sgemm rate (Garg config),
#   4. the batched solvers whose >= 50x targets a CPU could not reach (issues 19-21: mixture
#      EM, Lloyd/soft EM, the spectral solvers) against their NumPy/scikit-learn loops,
#   5. `icsim reproduce NAME --profile full --smoke --device cuda` for every registered experiment,
# and write benchmarks/results/gpu-*.json plus the "GPU" section of benchmarks/RESULTS.md.
#
#   benchmarks/gpu.sh                 # on the GPU machine (default --device cuda)
#   benchmarks/gpu.sh --device cpu    # the plumbing, with every part cut to its smallest; writes
#                                     # results/gpu-plumbing-cpu-*.json, leaves RESULTS.md alone
# Environment: PYTHON (default: python), BUDGET_S (default 540, leaving a minute of the 10 for
# start-up; 900 with --device cpu: the parts' time limits add up to it), EACH_S (one reproduction's
# limit, default 60 on a GPU, 600 on a CPU), EXPERIMENTS (names to reproduce; default: all).
set -u
DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument '$1' (allowed: --device cuda|cpu)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cuda:*|cpu) ;; *) echo "gpu.sh: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;; esac
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-python}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
BUDGET="${BUDGET_S:-540}"
[ "$DEVICE" = cpu ] && BUDGET="${BUDGET_S:-900}"  # the plumbing spends no GPU time
EACH="${EACH_S:-}"
if [ "$DEVICE" = cpu ]; then
  PREFIX=gpu-plumbing-cpu-
  # one thread: a second one only waits for a busy core on a shared CPU (RESULTS.md)
  TT=(--quick --configs quick --reps 1 --threads 1); MS=(--quick --ks 1 16 --reps 1 --threads 1)
  FP=(--quick --configs quick --reps 1 --profile --threads 1); EACH="${EACH:-600}"
  SV=(--problems 256 --reps 1 --threads 1); PM=(--clock cpu --sklearn-problems 128)
else
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu.sh: CUDA is not available here; run with --device cpu for the plumbing." >&2; exit 2; }
  PREFIX=gpu-
  TT=(); MS=(--ks 1 4 16); FP=(--configs garg --reps 5); EACH="${EACH:-60}"
  SV=(--reps 5); PM=(--clock wall)
fi
OUT="$HERE/results"; mkdir -p "$OUT"
START=$(date +%s)
status=0
part() {  # part NAME SECONDS CMD...: run with a time limit; a failure is recorded, not fatal
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s) =="
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=10 "$limit" "$@"; local rc=$?
  echo "{\"part\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}" >> "$OUT/${PREFIX}parts.jsonl"
  [ $rc -eq 0 ] || { echo "gpu.sh: $name exited with $rc" >&2; status=1; }
}
rm -f "$OUT/${PREFIX}parts.jsonl"
cd "$HERE"
part train_throughput $(( BUDGET * 27 / 100 )) "$PY" train_throughput.py --device "$DEVICE" "${TT[@]}" --out "$OUT/${PREFIX}train_throughput.json"
part many_seeds $(( BUDGET * 12 / 100 )) "$PY" many_seeds.py --device "$DEVICE" "${MS[@]}" --out "$OUT/${PREFIX}many_seeds.json"
part fraction_of_peak $(( BUDGET * 12 / 100 )) "$PY" fraction_of_peak.py --device "$DEVICE" "${FP[@]}" --out "$OUT/${PREFIX}fraction_of_peak.json"
part bench_mixture_em $(( BUDGET * 4 / 100 )) "$PY" bench_mixture_em.py --device "$DEVICE" "${SV[@]}" --out "$OUT/${PREFIX}bench_mixture_em.json"
part bench_clustering $(( BUDGET * 4 / 100 )) "$PY" bench_clustering.py --device "$DEVICE" "${SV[@]}" --sklearn-problems 128 --out "$OUT/${PREFIX}bench_clustering.json"
part bench_power_method $(( BUDGET * 4 / 100 )) "$PY" bench_power_method.py --quick --device "$DEVICE" "${SV[@]}" "${PM[@]}" --out "$OUT/${PREFIX}bench_power_method.json"
part reproduce_smoke $(( BUDGET * 37 / 100 )) "$PY" gpu_report.py smoke --device "$DEVICE" --each-s "$EACH" ${EXPERIMENTS:+--only $EXPERIMENTS} --out "$OUT/${PREFIX}reproduce_smoke.json"
"$PY" gpu_report.py section --prefix "$PREFIX" --device "$DEVICE" || status=1
echo "gpu.sh: done in $(( $(date +%s) - START )) s (device $DEVICE, status $status)"
exit $status
