#!/usr/bin/env bash
# Tower encode time of every projector type: an image's tokens from its pixels through the same random-weight
# mmproj file, vlmd (`vlmbench projector`: MultimodalProjector.imageTokens) against llama.cpp's mtmd (tokenize +
# mtmd_encode_chunk of every image chunk, bench/projectors_reference.py), both on 2 threads, the best of REPEATS after a
# warm-up. The two sides alternate, type by type, ROUNDS times (the order flips each round), so a shared machine's
# load falls on both alike; the table gives the median over rounds of each side's best, and the load seen.
#
#   bash bench/projectors.sh [DIR] [ROUNDS]
#     DIR     the bench mmproj files, written by projectors_reference.py when missing (default /tmp/vlmd-projector-bench)
#     ROUNDS  default 2
#   env: VLMBENCH (default .build/release/vlmbench, built `swift build -c release --product vlmbench` when missing),
#        REFPY (default /work/refvenv/bin/python), IMAGE (default ../shared/data/images/astronaut.png), TYPES,
#        REPEATS (timed runs per side after the warm-up, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/vlmd-projector-bench}
rounds=${2:-2}
py=${REFPY:-/work/refvenv/bin/python}
vlmbench=${VLMBENCH:-.build/release/vlmbench}
image=${IMAGE:-../shared/data/images/astronaut.png}
types=${TYPES:-mlp idefics3 gemma3 qwen2vl qwen25vl}
repeats=${REPEATS:-3}

[ -f "$dir/qwen25vl.gguf" ] || "$py" bench/projectors_reference.py build "$dir"
[ -x "$vlmbench" ] || swift build -c release --product vlmbench
log=$(mktemp)
reference() { "$py" bench/projectors_reference.py time "$dir" "$1" "$image" "$repeats" | sed "s/^/$1 llama.cpp /" >> "$log"; }
ours() { "$vlmbench" projector --mmproj "$dir/$1.gguf" --image "$image" --threads 2 --repeats "$repeats" --max-tokens 256 | sed "s/^/$1 vlmd /" >> "$log"; }
for round in $(seq "$rounds"); do
  for t in $types; do
    if [ $((round % 2)) = 1 ]; then reference "$t"; ours "$t"; else ours "$t"; reference "$t"; fi
    echo "load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$log"
  done
done
cat "$log" >&2
"$py" - "$log" "$repeats" $types <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
loads = [float(l.split()[1]) for l in lines if l.startswith("load ")]
print(f"image encode, seconds (median over rounds of the best of {sys.argv[2]}; 1-min load average {min(loads):.1f}-{max(loads):.1f})")
print("| type | tokens (views) | llama.cpp mtmd | vlmd | vlmd / llama.cpp |")
print("|---|---|---|---|---|")
for t in sys.argv[3:]:
    best, shape = {}, ""
    for side in ("llama.cpp", "vlmd"):
        runs = [l for l in lines if l.startswith(f"{t} {side} ")]
        best[side] = statistics.median(float(re.search(r"best ([0-9.]+) s", l).group(1)) for l in runs)
        m = re.search(r"(\d+) tokens in (\d+) views", runs[0])
        shape = shape or f"{m.group(1)} ({m.group(2)})"
    print(f"| {t} | {shape} | {best['llama.cpp']:.3f} | {best['vlmd']:.3f} | {best['vlmd'] / best['llama.cpp']:.2f} |")
PY
rm -f "$log"
