#!/usr/bin/env bash
# Does --capture stall the frame loop? The same recording decided with and without capture,
# alternated in one run, every frame made a capture candidate (--capture-margin 1) and the
# per-minute allowance lifted, so the writer is as busy as it can be; frames/s side by side,
# and the folder's size against its cap after each run. Three sources:
#   mjpeg  a 640×480 MJPEG recording, decided as fast as glance can (`--drop never`; a camera's
#          own JPEGs are written as they are);
#   png    the same frames as PNG files, as fast as glance can (decoded frames are kept and
#          encoded by the capture thread);
#   live   the recording played at 30 frames/s by ffmpeg (`-re`) through an `exec:` source: a
#          live stream, newest frame kept, as a camera is read. Here a stall shows as frames
#          dropped and as a longer capture-to-decision latency (p99), not only as frames/s.
# Prints a Markdown table.
#
#   scripts/bench/capture.sh [FRAMES]     (default 300 frames a run; ffmpeg is installed if missing)
#
# env ROUNDS (default 3), SOURCES (default "mjpeg png live") and BUNDLE (a bundle every run
# decides with; by default the embedded ImageNet backbone). A round is four runs in turn: without
# capture, every frame, the default allowance, and without capture again (the control: the
# ratio of two identical runs shows what the machine's own noise does), reversed every other
# round, so slow drifts fall on both sides. The closing table gives each setting's median ratio
# over the rounds with a 95% bootstrap interval of that median (fixed seed), and whether the
# interval shows "within 5%" (its low end at 0.95 or above), refutes it (its high end below
# 0.95), or cannot tell on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
FRAMES="${1:-300}"
ROUNDS="${ROUNDS:-3}"
SOURCES="${SOURCES:-mjpeg png live}"
CAP_MB="${CAP_MB:-5}"
command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg; }
cargo build --release --locked --bin glance >&2
G="${CARGO_TARGET_DIR:-target}/release/glance"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# A moving picture: a slow pan over a photo, so frames differ and JPEG sizes are realistic.
ffmpeg -v error -y -loop 1 -i tests/fixtures/photos/china.jpg \
  -vf "scale=1280:960,crop=640:480:'t*40':'t*20'" -r 30 -frames:v "$FRAMES" -f mjpeg "$W/clip.mjpeg"
mkdir -p "$W/png"
ffmpeg -v error -y -i "$W/clip.mjpeg" "$W/png/%05d.png"

fps() { # the run's closing log line: "N frames in S s (F frames/s), E errors, D dropped; … p99 X ms"
  sed -n 's/.* frames in .* s (\([0-9.]*\) frames\/s).*/\1/p' "$1" | tail -1
}
dropped() { sed -n 's/.* errors, \([0-9]*\) dropped.*/\1/p' "$1" | tail -1; }
p99() { sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p' "$1" | tail -1; }
# The live stream's rate: decisions a second between the first and the last decision's capture
# time (`time_ms`), so the run's start-up (the backbone's load, ffmpeg's start) is left out and
# 30.0 means every frame the stream sent was decided.
live_rate() {
  python3 -c '
import json, sys
t = [d["time_ms"] for d in map(json.loads, open(sys.argv[1])) if "time_ms" in d]
print(f"{(len(t) - 1) * 1000 / max(t[-1] - t[0], 1):.1f}")' "$1"
}
run() { # label source extra…   prints frames/s; the log stays in $W/label.err
  local label="$1" src="$2"; shift 2
  rm -rf "$W/cap"
  # A recording is decided as fast as glance can, every frame; the live stream at its own pace
  # (an `exec:` child is restarted when it ends, so the run stops after FRAMES frames).
  local opts=(--drop never)
  case "$src" in exec:*) opts=(--frames "$FRAMES") ;; esac
  [ -z "${BUNDLE:-}" ] || opts+=(--bundle "$BUNDLE")
  RUST_LOG=info "$G" run --source "$src" --format json "${opts[@]}" "$@" >"$W/$label.out" 2>"$W/$label.err"
  case "$src" in exec:*) live_rate "$W/$label.out" ;; *) fps "$W/$label.err" ;; esac
}
# The folder's files' bytes, as the cap counts them (du would add the folder's own block).
folder_bytes() { find "$W/cap" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
every() { run capture "$s" --capture "$W/cap" --capture-margin 1 --capture-per-minute 1000000 \
  --capture-max-mb "$CAP_MB" --heartbeat 0.2; }
default() { run capture-default "$s" --capture "$W/cap" --capture-margin 1 --capture-max-mb "$CAP_MB"; }
printf '| source | round | frames/s without | with --capture, every frame a candidate | ratio | captured (last status) | skipped, writer busy | folder MB (cap %s) | with --capture, default 6 a minute | ratio | dropped: without / every frame | p99 ms: without / every frame |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' "$CAP_MB"
for src in $SOURCES; do
  case "$src" in
    mjpeg) s="$W/clip.mjpeg" ;;
    png) s="$W/png" ;;
    # A raw MJPEG file carries no frame rate (ffmpeg would assume 25): say 30.
    live) s="exec:ffmpeg -v error -re -framerate 30 -stream_loop -1 -i $W/clip.mjpeg -c copy -f mjpeg -" ;;
    *) echo "unknown source $src (mjpeg, png, live)" >&2; exit 2 ;;
  esac
  for r in $(seq 1 "$ROUNDS"); do
    # $s is the source the functions above read.
    if [ $((r % 2)) = 1 ]; then
      a=$(run plain "$s"); b=$(every); bytes=$(folder_bytes)
      c=$(default); a2=$(run control "$s")
    else
      a2=$(run control "$s"); c=$(default)
      b=$(every); bytes=$(folder_bytes)
      a=$(run plain "$s")
    fi
    last=$(grep '"status"' "$W/capture.out" | tail -1)
    saved=$(echo "$last" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["capture"]["saved"])')
    busy=$(echo "$last" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["capture"]["busy"])')
    # $bytes: the folder after the every-frame run.
    mb=$(python3 -c "print(f'{$bytes/1e6:.3f}')")
    ratio=$(python3 -c "print(f'{$b/$a:.3f}')")
    ratio_default=$(python3 -c "print(f'{$c/$a:.3f}')")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |\n' "$src" "$r" "$a" "$b" "$ratio" "$saved" "$busy" "$mb" "$c" "$ratio_default" \
      "$(dropped "$W/plain.err")" "$(dropped "$W/capture.err")" "$(p99 "$W/plain.err")" "$(p99 "$W/capture.err")"
    python3 -c "import sys; sys.exit(0 if $bytes <= $CAP_MB * 1e6 else 1)" || { echo "the folder is over its cap" >&2; exit 1; }
    printf '%s\tevery frame a candidate\t%s\n%s\tdefault, 6 a minute\t%s\n' "$src" "$ratio" "$src" "$ratio_default" >> "$W/ratios.tsv"
    printf '%s\tnone (control: without, twice)\t%s\n' "$src" "$(python3 -c "print(f'{$a2/$a:.3f}')")" >> "$W/ratios.tsv"
  done
done
python3 - "$W/ratios.tsv" <<'PY'
import random, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    src, setting, ratio = line.rstrip("\n").split("\t")
    rows.setdefault((src, setting), []).append(float(ratio))
rng = random.Random(7)
print("\n| source | --capture | rounds | median ratio (with / without) | 95% interval of the median | within 5%? |")
print("|---|---|---:|---:|---|---|")
for (src, setting), r in rows.items():
    meds = sorted(statistics.median(rng.choices(r, k=len(r))) for _ in range(2000))
    lo, hi = meds[int(0.025 * len(meds))], meds[int(0.975 * len(meds)) - 1]
    verdict = "shown" if lo >= 0.95 else ("refuted" if hi < 0.95 else "cannot tell here")
    print(f"| {src} | {setting} | {len(r)} | {statistics.median(r):.3f} | {lo:.3f}–{hi:.3f} | {verdict} |")
PY
