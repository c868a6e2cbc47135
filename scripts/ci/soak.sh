#!/usr/bin/env bash
# Soak test (not in CI): `glance run` for DURATION seconds (default 3600) on a looping MJPEG
# stream at 10 frames/s from ffmpeg, deciding with the embedded backbone, writing JSON lines to
# a serial pseudo-terminal (socat) whose peer comes and goes (20 s reading, 10 s gone) and which
# sends `enroll soak 2` / `forget soak` every few seconds, with the store autosaved to a file.
# Every 10 s it samples the process's RSS, open file descriptors and threads from /proc; after a
# 5-minute warm-up it fails if RSS grows by more than 20 MB, fds by more than 8 or threads by
# more than 4, or if glance exits early. Prints a Markdown table of the samples' summary.
# Usage: scripts/ci/soak.sh [DURATION_SECONDS] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-3600}"
WORK="${2:-target/soak}"
WARMUP=$(( DURATION < 600 ? DURATION / 5 : 300 ))
mkdir -p "$WORK"
for tool in ffmpeg socat; do
  command -v "$tool" >/dev/null || { echo "soak: needs $tool (apt-get install $tool)"; exit 2; }
done
cargo build -q --locked --bin glance
GLANCE="${CARGO_TARGET_DIR:-target}/debug/glance"
rm -f "$WORK"/pty-* "$WORK"/s.store* "$WORK/peer.log"

socat -d -d "pty,raw,echo=0,link=$WORK/pty-board" "pty,raw,echo=0,link=$WORK/pty-peer" \
  2>"$WORK/socat.log" &
SOCAT=$!
for _ in $(seq 50); do [ -e "$WORK/pty-peer" ] && break; sleep 0.1; done

ffmpeg -v error -y -loop 1 -i tests/fixtures/photos/coffee.png -i tests/fixtures/photos/chelsea.png \
  -filter_complex "[0:v]scale=640:480,setsar=1[a];[1:v]scale=640:480,setsar=1[b];[a][b]concat=n=2:v=1,trim=duration=4" \
  -r 10 -f mjpeg "$WORK/clip.mjpeg" 2>/dev/null || \
  ffmpeg -v error -y -loop 1 -i tests/fixtures/photos/coffee.png -vf scale=640:480 -t 4 -r 10 -f mjpeg "$WORK/clip.mjpeg"

( ffmpeg -v error -re -stream_loop -1 -i "$WORK/clip.mjpeg" -c copy -f mjpeg - 2>/dev/null \
  | "$GLANCE" run --source - --output "serial:$WORK/pty-board" --format json \
      --store "$WORK/s.store" --heartbeat 5 >"$WORK/glance.out" 2>"$WORK/glance.err" ) &
PIPE=$!
sleep 2
PID=$(pgrep -n -f "glance run --source - --output serial:$WORK/pty-board" || true)
[ -n "$PID" ] || { echo "soak: glance did not start"; cat "$WORK/glance.err"; exit 1; }

# The serial peer: reads for 20 s, sends commands, goes away for 10 s.
( while true; do
    timeout 20 cat "$WORK/pty-peer" >> "$WORK/peer.log" 2>/dev/null &
    for _ in 1 2 3; do
      printf 'enroll soak 2\n' > "$WORK/pty-peer"; sleep 3
      printf 'forget soak\n' > "$WORK/pty-peer"; sleep 3
    done
    wait; sleep 10
  done ) &
PEER=$!

cleanup() { kill "$PEER" "$SOCAT" 2>/dev/null || true; pkill -P "$PIPE" 2>/dev/null || true; kill "$PIPE" 2>/dev/null || true; }
trap cleanup EXIT

sample() { # prints rss_kb fds threads
  awk '/^VmRSS/ {r=$2} /^Threads/ {t=$2} END {printf "%s %s ", r, t}' "/proc/$PID/status"
  ls "/proc/$PID/fd" | wc -l
}
echo "t_s rss_kb threads fds" > "$WORK/samples.txt"
start=$(date +%s)
base=""
status=0
while :; do
  now=$(( $(date +%s) - start ))
  [ "$now" -ge "$DURATION" ] && break
  if ! kill -0 "$PID" 2>/dev/null; then echo "soak: glance exited after $now s"; status=1; break; fi
  read -r rss thr fds < <(sample)
  echo "$now $rss $thr $fds" >> "$WORK/samples.txt"
  if [ "$now" -ge "$WARMUP" ] && [ -z "$base" ]; then base="$rss $thr $fds"; fi
  sleep 10
done
decided=$(grep -c '"seq"' "$WORK/peer.log" || true)
replies=$(grep -c '"reply"' "$WORK/peer.log" || true)
[ "$decided" -gt 0 ] || { echo "soak: the serial peer read no decisions"; status=1; }
python3 - "$WORK/samples.txt" "$base" "$DURATION" "$WARMUP" "$status" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]).read().splitlines()[1:]]
dur, warm, status = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
after = [r for r in rows if r[0] >= warm] or rows
b = after[0]
mx = [max(r[i] for r in after) for i in range(4)]
last = rows[-1]
grow = (mx[1] - b[1], mx[2] - b[2], mx[3] - b[3])
ok = status == 0 and grow[0] <= 20_000 and grow[2] <= 8 and grow[1] <= 4
print(f"| duration | samples | RSS after warm-up -> max (MB) | threads | fds | verdict |")
print(f"|---|---|---|---|---|---|")
print(f"| {dur} s | {len(rows)} | {b[1]/1024:.1f} -> {mx[1]/1024:.1f} (+{grow[0]/1024:.1f}) | {b[2]} -> {mx[2]} | {b[3]} -> {mx[3]} | {'PASS' if ok else 'FAIL'} |")
sys.exit(0 if ok else 1)
PY
echo "the peer read $decided decisions and $replies command replies while it was there (logs in $WORK)"
