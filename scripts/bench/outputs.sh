#!/usr/bin/env bash
# Does talking to the user's world slow the frame loop? Frames per second of `glance run` over
# the same JPEG frames with no side outputs, and with MQTT (a local mosquitto) plus the web
# console with one client watching /stream.mjpg, in one run, the two configurations alternating
# round by round. Release build, 1 backbone thread, the default backbone, --decode-ahead on.
#
#   scripts/bench/outputs.sh [ROUNDS] [FRAMES]      default 5 rounds of 300 frames
#
# Prints a Markdown table for BENCHMARKS.md: per configuration the median and range of frames/s
# and the ratio of medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-5}"
FRAMES="${2:-300}"
say() { printf '\033[1moutputs:\033[0m %s\n' "$*" >&2; }

command -v mosquitto >/dev/null || { say "needs mosquitto (apt-get install mosquitto)"; exit 1; }
command -v curl >/dev/null || { say "needs curl"; exit 1; }
cargo build --release --locked --bin glance >&2
GLANCE=target/release/glance
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# The six fixture photos as 640x480 JPEGs, as a USB camera's MJPEG would give them.
PY=$(scripts/python-env.sh)
"$PY" - "$WORK/frames" <<'PYEOF'
import sys, pathlib
from PIL import Image
out = pathlib.Path(sys.argv[1]); out.mkdir()
for p in sorted(pathlib.Path("tests/fixtures/photos").glob("*.png")):
    Image.open(p).convert("RGB").resize((640, 480)).save(out / (p.stem + ".jpg"), quality=85)
PYEOF

PORT=$((20000 + RANDOM % 20000)); WEB=$((PORT + 1))
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n' "$PORT" > "$WORK/mq.conf"
mosquitto -c "$WORK/mq.conf" &
sleep 1

run() { # $1 = off|on; prints frames/s
  local extra=() watcher=""
  if [ "$1" = on ]; then
    extra=(--mqtt "mqtt://127.0.0.1:$PORT/bench" --web "127.0.0.1:$WEB")
  fi
  RUST_LOG=info "$GLANCE" run --source "$WORK/frames" --loop --frames "$FRAMES" --threads 1 --format json \
    --heartbeat 1 "${extra[@]}" > /dev/null 2> "$WORK/err.log" &
  local pid=$!
  if [ "$1" = on ]; then
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$WEB/healthz" && break; sleep 0.1; done
    curl -s -N -o /dev/null "http://127.0.0.1:$WEB/stream.mjpg" & watcher=$!
  fi
  wait "$pid"
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
  # glance's own figure: frames over the time from the first frame asked for to the last
  # decided (the model's load excluded).
  sed -n 's/.* frames in .* s (\([0-9.]*\) frames\/s).*/\1/p' "$WORK/err.log" | tail -1
}

declare -a OFF ON
for r in $(seq "$ROUNDS"); do
  OFF+=("$(run off)"); ON+=("$(run on)")
  say "round $r: off ${OFF[-1]} fps, on ${ON[-1]} fps"
done

stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.2f %.2f %.2f\n", m, a[1], a[NR]}'; }
read -r OFF_MED OFF_MIN OFF_MAX <<<"$(stats "${OFF[@]}")"
read -r ON_MED ON_MIN ON_MAX <<<"$(stats "${ON[@]}")"
echo "| configuration | frames/s median | min–max | ratio to off |"
echo "|---|---|---|---|"
echo "| no MQTT, no web | $OFF_MED | $OFF_MIN–$OFF_MAX | 1.000 |"
echo "| MQTT (local mosquitto) + web console, one client on /stream.mjpg | $ON_MED | $ON_MIN–$ON_MAX | $(awk -v a="$ON_MED" -v b="$OFF_MED" 'BEGIN{printf "%.3f", a/b}') |"
echo
echo "$ROUNDS rounds of $FRAMES frames each, frames/s as glance reports it (model load excluded), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
