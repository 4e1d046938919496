#!/usr/bin/env bash
# `vlm evaluate` on a CIFAR-10 binary file against an open_clip script doing the same work (read each
# record, preprocess, encode, classify with the 18 CIFAR templates; bench/evaluate_reference.py), same
# machine, same thread count, same batch size, the two alternating in every round.
#
#   bench/evaluate.sh [--model DIR]... [--limit N] [--threads N] [--batch-size N] [--rounds K] [--workers W]
#                     [--reference-first]
#
# Defaults: the full-size random-weight RN50 at /tmp/rnspeed-clip-rn50 (scripts/fixtures/make_clip_fixtures.py
# --full; its accuracy is chance, the work is the real one) and the trained demo CLIP
# ../shared/models/cifar-clip-rn64 (its accuracy is meaningful: 66.46 % on the whole file), the first
# 1,000 test images (--limit 10000: all of them), 2 threads, batch 32, 1 round, open_clip decoding in the
# main process (--workers W: in W DataLoader processes); vlmd runs first in each round unless --reference-first. PYTHON=/work/refvenv/bin/python; VLM=path of a vlm
# binary (default: this checkout's release build, built first; vlmd is taken from beside it).
# Prints each run as it ends, then a table: whole-command wall time (daemon or interpreter start, model
# load, text side, images) and the evaluation alone (the text side and the images), best of the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=()
LIMIT=1000
THREADS=2
BATCH=32
ROUNDS=1
WORKERS=0
REFERENCE_FIRST=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) MODELS+=("$2"); shift 2 ;;
    --limit) LIMIT="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --batch-size) BATCH="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --reference-first) REFERENCE_FIRST=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ ${#MODELS[@]} -gt 0 ]] || MODELS=(/tmp/rnspeed-clip-rn50 ../shared/models/cifar-clip-rn64)
PYTHON="${PYTHON:-/work/refvenv/bin/python}"
CIFAR=../shared/data/cifar-10
OUT="$(mktemp -d)"
if [[ -z "${VLM:-}" ]]; then
  echo "== building vlm and vlmd (swift build -c release)" >&2
  swift build -c release --product vlmd >&2
  swift build -c release --product vlm >&2
  VLM="$(swift build -c release --show-bin-path)/vlm"
fi

now() { date +%s.%N; }
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), threads=$THREADS, batch=$BATCH, limit=$LIMIT" >&2
run_vlmd() {
  start=$(now)
  "$VLM" evaluate --private --json --threads "$THREADS" --clip "$model" --dataset "$CIFAR/test_batch.bin" \
    --labels "$CIFAR/batches.meta.txt" --templates cifar --limit "$LIMIT" --batch-size "$BATCH" | tail -n 1 > "$OUT/vlmd.$index.$round.json"
  echo "{\"wall_s\": $(echo "$(now) - $start" | bc)}" > "$OUT/vlmd.$index.$round.wall"
  echo "   vlmd: $(cut -c1-120 "$OUT/vlmd.$index.$round.json")... $(cat "$OUT/vlmd.$index.$round.wall") (load after: $(cut -d" " -f1-3 /proc/loadavg))" >&2
}
run_reference() {
  start=$(now)
  OMP_NUM_THREADS="$THREADS" "$PYTHON" bench/evaluate_reference.py --model "$model" --dataset "$CIFAR/test_batch.bin" \
    --labels "$CIFAR/batches.meta.txt" --threads "$THREADS" --batch-size "$BATCH" --limit "$LIMIT" --workers "$WORKERS" \
    2>/dev/null > "$OUT/reference.$index.$round.json"
  echo "{\"wall_s\": $(echo "$(now) - $start" | bc)}" > "$OUT/reference.$index.$round.wall"
  echo "   open_clip: $(cut -c1-120 "$OUT/reference.$index.$round.json")... $(cat "$OUT/reference.$index.$round.wall") (load after: $(cut -d" " -f1-3 /proc/loadavg))" >&2
}
for round in $(seq 1 "$ROUNDS"); do
  for index in "${!MODELS[@]}"; do
    model="${MODELS[$index]}"
    echo "== round $round/$ROUNDS, $model: load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if [[ $REFERENCE_FIRST == 1 ]]; then run_reference; run_vlmd; else run_vlmd; run_reference; fi
  done
done

"$PYTHON" - "$OUT" "$ROUNDS" "${MODELS[@]}" <<'PY'
import json, sys
out, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def runs(side, index):
    for r in range(1, rounds + 1):
        result = json.load(open(f"{out}/{side}.{index}.{r}.json"))
        result["wall_s"] = json.load(open(f"{out}/{side}.{index}.{r}.wall"))["wall_s"]
        yield result
print("| model | images | vlm evaluate wall s | open_clip script wall s | ratio | evaluation alone: vlmd s | open_clip s | ratio | accuracy vlmd / open_clip | same confusion |")
print("|---|---|---|---|---|---|---|---|---|---|")
for index, model in enumerate(models):
    ours, ref = list(runs("vlmd", index)), list(runs("reference", index))
    wall_o, wall_r = min(r["wall_s"] for r in ours), min(r["wall_s"] for r in ref)
    eval_o, eval_r = min(r["seconds"] for r in ours), min(r["evaluate_s"] for r in ref)
    same = ours[0]["confusion"] == ref[0]["confusion"]
    print(f"| {model.rstrip('/').split('/')[-1]} | {ours[0]['count']} | {wall_o:.1f} | {wall_r:.1f} | {wall_o / wall_r:.2f}x "
          f"| {eval_o:.1f} | {eval_r:.1f} | {eval_o / eval_r:.2f}x | {100 * ours[0]['accuracy']:.2f} / {100 * ref[0]['accuracy']:.2f} % | {same} |")
PY
