#!/usr/bin/env bash
# CI step for the ARM boards: cross-builds `glance` for the Raspberry Pi 4 profile (aarch64) and
# the 32-bit Raspberry Pi profile (armv7), runs `glance classify --format json --with-features`
# on the fixture photos under qemu-user, and compares with the native run: the same top-1 label
# for every photo and feature cosine >= 0.999. Prints each binary's size.
#
#   scripts/ci/check-cross.sh [PROFILE]     PROFILE = board (default, what ships), release, or
#                                           ci-arm (what CI builds: quick to compile, Cargo.toml)
#
# A target or package that cannot be installed is reported as SKIPPED in capitals, and the
# script exits 3 (not 0) so that nobody mistakes a skip for a pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE="${1:-board}"
say() { printf '\033[1mcheck-cross:\033[0m %s\n' "$*" >&2; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if ! command -v qemu-aarch64 >/dev/null || ! command -v qemu-arm >/dev/null; then
  say "installing qemu-user"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-user >/dev/null \
    || say "cannot install qemu-user"
fi

cargo build --locked --bin glance >&2
"$TARGET_DIR/debug/glance" classify --format json --with-features tests/fixtures/photos/* > "$TMP/native.jsonl"

skipped=()
declare -A runner=([rpi4]="qemu-aarch64 -L /usr/aarch64-linux-gnu" [rpi-armv7]="qemu-arm -L /usr/arm-linux-gnueabihf")
for board in rpi4 rpi-armv7; do
  set +e
  bin=$(scripts/board/cross-build.sh "$board" "$PROFILE")
  rc=$?
  set -e
  if [ "$rc" -eq 3 ]; then skipped+=("$board (cannot build here)"); continue; fi
  [ "$rc" -eq 0 ] || exit "$rc"
  size=$(stat -c %s "$bin")
  say "$board: $bin is $size bytes ($(( size / 1024 / 1024 )) MiB)"
  read -r -a qemu <<< "${runner[$board]}"
  if ! command -v "${qemu[0]}" >/dev/null; then skipped+=("$board (no ${qemu[0]})"); continue; fi
  # Emulation runs the backbone ~1000x slower than native (≈40 s a photo on aarch64): three
  # fixtures of three kinds (a cup, a cat, a man with a camera) on each board, for CI's time.
  photos=(tests/fixtures/photos/coffee.png tests/fixtures/photos/chelsea.png tests/fixtures/photos/camera.png)
  t0=$(date +%s)
  # Board builds carry no embedded backbone (cargo feature embedded-model): pass the same file.
  "${qemu[@]}" "$bin" classify --model models/efficientnet_lite0_int8w.onnx --format json \
    --with-features "${photos[@]}" > "$TMP/$board.jsonl"
  say "$board: classified the fixtures under ${qemu[0]} in $(( $(date +%s) - t0 )) s"
  python3 - "$TMP/native.jsonl" "$TMP/$board.jsonl" "$board" <<'PY'
import json, math, sys
native = {r["source"]: r for r in map(json.loads, open(sys.argv[1]))}
arm = [json.loads(l) for l in open(sys.argv[2])]
board = sys.argv[3]
assert len(arm) > 0, f"{board}: no results"
worst = 1.0
for a in arm:
    n = native[a["source"]]
    fa, fb = n["features"], a["features"]
    cos = sum(x * y for x, y in zip(fa, fb)) / (math.sqrt(sum(x * x for x in fa)) * math.sqrt(sum(y * y for y in fb)))
    worst = min(worst, cos)
    ok = n["label"] == a["label"] and cos >= 0.999
    print(f"  {board}: {a['source'].split('/')[-1]:<22} native {n['label']!r:<14} arm {a['label']!r:<14} cosine {cos:.6f}{'' if ok else '   <-- MISMATCH'}")
    assert ok, f"{board}: {a['source']} differs from the native run"
print(f"  {board}: every top-1 label agrees; lowest feature cosine {worst:.6f}")
PY
done
if [ "${#skipped[@]}" -gt 0 ]; then
  printf '\n\033[1;33m*** SKIPPED: %s ***\033[0m\n\n' "${skipped[*]}" >&2
  exit 3
fi
