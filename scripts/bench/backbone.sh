#!/usr/bin/env bash
# Backbone latency, tract (glance) beside onnxruntime, same files, same image, same run, 1 thread.
# Prints a Markdown table for BENCHMARKS.md. Usage: scripts/bench/backbone.sh [RUNS]
# BACKBONES="lite0 lite1 lite2" times each backbone's three files (default: lite0).
# Needs Python 3 with venv; onnxruntime, numpy and pillow go into target/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-50}"
WARMUP=5
IMAGE=tests/fixtures/photos/coffee.png
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q onnxruntime numpy pillow
fi
cargo build --release --locked --example latency >&2
LATENCY="${CARGO_TARGET_DIR:-target}/release/examples/latency"
export OMP_NUM_THREADS=1
rows=()
for pass in 1 2; do  # two interleaved passes: a noisy neighbour shows up as disagreement
  for f in $(for v in ${BACKBONES:-lite0}; do for m in fp32 int8w qdq; do
               echo "models/efficientnet_${v}_$m.onnx"; done; done); do
    # tract with the build's kernels (x86-64: crates/tract-x86-kernels; its examples/side_by_side.rs
    # times each of its pieces against tract's own).
    rows+=("$("$LATENCY" --model "$f" --runs "$RUNS" --warmup "$WARMUP" "$IMAGE")")
    rows+=("$("$VENV/bin/python" scripts/bench/backbone-ort.py "$f" "$IMAGE" "$RUNS" "$WARMUP")")
  done
done
printf '%s\n' "${rows[@]}" | "$VENV/bin/python" scripts/bench/backbone-table.py
