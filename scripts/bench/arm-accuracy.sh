#!/usr/bin/env bash
# Accuracy of the half-precision path where it runs: the aarch64 binary of scripts/bench/arm.sh
# on an emulated Cortex-A76 (its /proc/cpuinfo bind-mounted), `glance classify --with-features`
# at --precision f16 against --precision f32, on every image given. Prints the feature cosine
# (lowest, median) and how often the top-1 label agrees, as a Markdown row for BENCHMARKS.md.
#
#   scripts/bench/arm-accuracy.sh NAME IMAGE|DIR…     (root: unshare -m; run arm.sh first)
#
# The real-photo set: scripts/bench/make-photo-set.py OUT (with the venv of scripts/python-env.sh
# scikit-image scikit-learn), then OUT/test and OUT/unknown.
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=${1:?usage: scripts/bench/arm-accuracy.sh NAME IMAGE|DIR…}; shift
WORK="${CARGO_TARGET_DIR:-target}/arm-bench"
BIN="${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/release/glance"
[ -x "$BIN" ] || { echo "no $BIN: run scripts/bench/arm.sh first" >&2; exit 2; }
mkdir -p "$WORK"
scripts/bench/arm/cpuinfo.sh a76 > "$WORK/cpuinfo-a76"
images=()
for a in "$@"; do
  if [ -d "$a" ]; then while IFS= read -r f; do images+=("$f"); done < <(find "$a" -type f \( -name '*.jpg' -o -name '*.png' \) | sort)
  else images+=("$a"); fi
done
for p in f32 f16; do
  unshare -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$WORK/cpuinfo-a76" \
    qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a76 "$BIN" classify \
    --model models/efficientnet_lite0_int8w.onnx --precision "$p" --format json --with-features \
    "${images[@]}" > "$WORK/accuracy-$p.jsonl" &
done
wait
python3 - "$WORK/accuracy-f32.jsonl" "$WORK/accuracy-f16.jsonl" "$NAME" <<'PY'
import json, math, statistics, sys
a = {r["source"]: r for r in map(json.loads, open(sys.argv[1]))}
b = {r["source"]: r for r in map(json.loads, open(sys.argv[2]))}
assert a and a.keys() == b.keys(), "the two runs classified different images"
cos, same = [], 0
for k, r in a.items():
    fa, fb = r["features"], b[k]["features"]
    cos.append(sum(x * y for x, y in zip(fa, fb)) / math.sqrt(sum(x * x for x in fa) * sum(y * y for y in fb)))
    same += r["label"] == b[k]["label"]
print(f"| {sys.argv[3]} | {len(a)} | {min(cos):.6f} | {statistics.median(cos):.6f} | {same}/{len(a)} ({100 * same / len(a):.1f}%) |")
PY
