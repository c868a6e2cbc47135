#!/usr/bin/env bash
# Backbone latency, tract (glance) beside onnxruntime, same files, same image, same run, 1 thread.
# Prints a Markdown table for BENCHMARKS.md. Usage: scripts/bench-backbone.sh [RUNS]
# Needs Python 3 with venv; onnxruntime, numpy and pillow go into target/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-50}"
WARMUP=5
IMAGE=tests/fixtures/photos/coffee.png
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q onnxruntime numpy pillow
fi
cargo build --release --bin glance-host >&2
export OMP_NUM_THREADS=1
rows=()
for pass in 1 2; do  # two interleaved passes: a noisy neighbour shows up as disagreement
  for m in fp32 int8w qdq; do
    f="models/efficientnet_lite0_$m.onnx"
    if [ "$m" != qdq ]; then
      rows+=("$(target/release/glance-host latency --model "$f" --runs "$RUNS" --warmup "$WARMUP" "$IMAGE")")
    fi
    rows+=("$("$VENV/bin/python" scripts/bench_backbone_ort.py "$f" "$IMAGE" "$RUNS" "$WARMUP")")
  done
done
printf '%s\n' "${rows[@]}" | "$VENV/bin/python" -c '
import json, sys, platform, os
rows = [json.loads(l) for l in sys.stdin if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"Host: {cpu}, {os.cpu_count()} cores; 1 thread; {rows[0][\"runs\"]} timed runs after 5 warm-up runs; 224x224 coffee.png.\n")
print("| pass | runtime | model file | median ms | p10 ms | p90 ms | load ms |")
print("|---|---|---|---|---|---|---|")
n = len(rows) // 2
for i, r in enumerate(rows):
    name = os.path.basename(r["model"]).replace("efficientnet_lite0_", "").replace(".onnx", "") if "/" in r["model"] else r["model"].replace("efficientnet-lite0-", "")
    print(f"| {1 + i // n} | {r[\"runtime\"]} | {name} | {r[\"median_ms\"]:.1f} | {r[\"p10_ms\"]:.1f} | {r[\"p90_ms\"]:.1f} | {r[\"load_ms\"]:.0f} |")
'
