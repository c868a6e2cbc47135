#!/usr/bin/env bash
# One command, one run: glance end to end on tract (a) and on onnxruntime (b) beside a Python
# reference pipeline (c: PIL decode + resize, onnxruntime, numpy head, brute-force kNN), on the
# same 200 real 640x480 JPEG frames, the same model file, 1 and 2 threads. Prints the Markdown
# table for BENCHMARKS.md (medians; ratios to (c) and to onnxruntime's backbone alone, which is
# (c)'s backbone column).
#
#   scripts/bench/run.sh [MODEL…]     MODEL = fp32 | int8w | qdq (default: fp32 qdq)
#
# Environment: FRAMES (200), THREADS ("1 2"), OUT (target/bench-run).
# Needs python3-venv; onnxruntime (pinned), numpy and pillow go into target/bench-venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
MODELS=("$@"); [ "${#MODELS[@]}" -gt 0 ] || MODELS=(fp32 qdq)
FRAMES="${FRAMES:-200}"
THREADS="${THREADS:-1 2}"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/bench-run}"
BIN="${CARGO_TARGET_DIR:-target}/release"

PY=$(scripts/python-env.sh)
ORT_LIB=$(scripts/python-env.sh --ort-library)
say "building release glance and glance-host"
cargo build --release --locked --bin glance --bin glance-host >&2

rm -rf "$OUT"; mkdir -p "$OUT"
say "$FRAMES frames → $OUT/frames"
"$PY" scripts/bench/python-pipeline.py frames "$OUT/frames" "$FRAMES"
mapfile -t FILES < <(find "$OUT/frames" -name '*.jpg' | sort)
CLASSES=$(find "$OUT/frames" -mindepth 1 -maxdepth 1 -type d | wc -l)

results="$OUT/results.jsonl"
for m in "${MODELS[@]}"; do
  model="models/efficientnet_lite0_$m.onnx"
  [ -f "$model" ] || { say "no $model"; exit 2; }
  # A bundle for this model: a head over the frames' source photos and a store of every frame,
  # so head and kNN are part of glance's timing as on a board.
  bundle="$OUT/$m.glance"
  say "fitting $bundle"
  fit=$("$BIN/glance-host" fit "$OUT/frames" --model "$model" --external-backbone --no-cache -q \
    --split 0 --store-per-class 0 --store-precision f32 --out "$bundle" 2>&1)
  echo "$fit" >&2
  rows=$(echo "$fit" | sed -n 's/.*store \([0-9]*\) examples.*/\1/p')
  [ -n "$rows" ] || { say "cannot read the store size from glance-host fit"; exit 1; }
  for t in $THREADS; do
    for pass in 1 2; do  # two interleaved passes: a noisy neighbour shows up as disagreement
      for engine in tract ort; do
        say "$m, $t thread(s), glance on $engine (pass $pass)"
        "$BIN/glance" bench --bundle "$bundle" --model "$model" --engine "$engine" \
          --ort-library "$ORT_LIB" --threads "$t" --frames "$FRAMES" --warmup 10 \
          --format json "${FILES[@]}" \
          | "$PY" -c "import json,sys; r=json.load(sys.stdin); r.update(pipeline='$engine', model='$m', pass_=$pass); print(json.dumps(r))" >>"$results"
      done
      # Throughput of `glance run` over the same files, decoding ahead (the default) and not.
      for engine in tract ort; do
        for mode in ahead inline; do
          flag=(); [ "$mode" = inline ] && flag=(--no-decode-ahead)
          say "$m, $t thread(s), glance run on $engine, decode $mode (pass $pass)"
          fps=$(RUST_LOG=info "$BIN/glance" run --bundle "$bundle" --model "$model" \
            --engine "$engine" --ort-library "$ORT_LIB" --threads "$t" --heartbeat 0 \
            --source "$OUT/frames/*/*.jpg" --frames "$FRAMES" "${flag[@]}" 2>&1 >/dev/null \
            | sed -n 's/.* frames in .* (\([0-9.]*\) frames\/s).*/\1/p' | tail -1)
          [ -n "$fps" ] || { say "glance run printed no frames/s"; exit 1; }
          echo "{\"pipeline\": \"run-$mode\", \"engine\": \"$engine\", \"model\": \"$m\", \"threads\": $t, \"pass_\": $pass, \"frames_per_second\": $fps}" >>"$results"
        done
      done
      say "$m, $t thread(s), Python reference (pass $pass)"
      "$PY" scripts/bench/python-pipeline.py pipeline "$model" "$t" "$rows" "$CLASSES" "${FILES[@]}" \
        | "$PY" -c "import json,sys; r=json.load(sys.stdin); r.update(model='$m', pass_=$pass); print(json.dumps(r))" >>"$results"
    done
  done
done
say "results: $results"
"$PY" scripts/bench/python-pipeline.py table "$results"
