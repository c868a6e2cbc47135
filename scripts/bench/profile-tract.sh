#!/usr/bin/env bash
# Where tract's frame time goes: `perf record` over `glance bench` (release build, 1 thread, the
# fp32 backbone on the bench frames), then the hottest functions. Installs Debian's linux-perf
# when missing. Usage: scripts/bench/profile-tract.sh [MODEL] [FRAMES]   (defaults: fp32, 60)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="models/efficientnet_lite0_${1:-fp32}.onnx"
FRAMES="${2:-60}"
BIN="${CARGO_TARGET_DIR:-target}/release/glance"
if ! command -v perf >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq linux-perf >/dev/null
fi
cargo build --release --locked --bin glance >&2
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
PY=$(scripts/python-env.sh)
"$PY" scripts/bench/python-pipeline.py frames "$DATA/frames" 24
perf record -q -F 999 -o "$DATA/perf.data" "$BIN" bench --model "$MODEL" --frames "$FRAMES" \
  "$DATA"/frames/*/*.jpg >&2
# Self time per function, grouped: depthwise convolutions, matrix products, packing / im2col.
perf report -i "$DATA/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
  | awk '/^ +[0-9.]+%/ {pct=$1; sub(/%/,"",pct); $1=""; $2=""; sym=$0; gsub(/^ +| +-.*$/,"",sym);
         g="other";
         if (sym ~ /depth_?wise/) g="depthwise convolution";
         else if (sym ~ /mmm_f32|mmm::run|mmm::/) g="matrix products (tract-linalg kernels)";
         else if (sym ~ /pack|im2col|Im2col|ZoneScanner|patches/) g="packing / im2col / patches";
         else if (sym ~ /zune_jpeg|jpeg/) g="JPEG decode";
         else if (sym ~ /fast_image_resize/) g="resize";
         sum[g]+=pct; if (n<15) {printf "%6.2f%%  %s\n", pct, sym; n++}}
       END {print ""; for (g in sum) printf "%6.1f%%  %s\n", sum[g], g}'
