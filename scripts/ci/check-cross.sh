#!/usr/bin/env bash
# CI step for the ARM boards: cross-builds `glance` for the Raspberry Pi 4 profile (aarch64) and
# the 32-bit Raspberry Pi profile (armv7), runs `glance classify --format json --with-features`
# on the fixture photos under qemu-user, and compares with the native run: the same top-1 label
# for every photo and feature cosine >= 0.999; and the Pi 5's half-precision path on an
# emulated Cortex-A76 (cosine >= 0.99). Prints each binary's size.
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
# Legs: NAME | board profile built | emulated core (cpuinfo bind-mounted; "" = qemu's default
# core and the host's cpuinfo) | glance flags | lowest feature cosine allowed.
# rpi5-f16 runs the Pi 4 binary on an emulated Cortex-A76 with half-precision arithmetic, the
# Pi 5 profile's path (targets/rpi5.toml): f16 rounds every product, hence 0.99 (BENCHMARKS.md
# "ARM: instructions per frame" gives what it measured).
legs=(
  "rpi4|rpi4||--precision f32|0.999"
  "rpi5-f16|rpi4|a76|--precision f16|0.99"
  "rpi-armv7|rpi-armv7||--precision f32|0.999"
)
declare -A runner=([rpi4]="qemu-aarch64 -L /usr/aarch64-linux-gnu" [rpi-armv7]="qemu-arm -L /usr/arm-linux-gnueabihf")
declare -A built=()
for leg in "${legs[@]}"; do
  IFS='|' read -r name board core flags min_cos <<< "$leg"
  if [ -z "${built[$board]:-}" ]; then
    set +e
    bin=$(scripts/board/cross-build.sh "$board" "$PROFILE")
    rc=$?
    set -e
    if [ "$rc" -eq 3 ]; then skipped+=("$board (cannot build here)"); built[$board]=none; continue; fi
    [ "$rc" -eq 0 ] || exit "$rc"
    built[$board]=$bin
    size=$(stat -c %s "$bin")
    say "$board: $bin is $size bytes ($(( size / 1024 / 1024 )) MiB)"
  fi
  bin=${built[$board]}
  [ "$bin" != none ] || { skipped+=("$name (no $board build)"); continue; }
  read -r -a qemu <<< "${runner[$board]}"
  if ! command -v "${qemu[0]}" >/dev/null; then skipped+=("$name (no ${qemu[0]})"); continue; fi
  wrap=()
  if [ -n "$core" ]; then
    scripts/bench/arm/cpuinfo.sh "$core" > "$TMP/cpuinfo-$core"
    if ! unshare -m true 2>/dev/null; then skipped+=("$name (unshare -m needs root)"); continue; fi
    wrap=(unshare -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$TMP/cpuinfo-$core")
    qemu+=(-cpu "cortex-$core")
  fi
  read -r -a extra <<< "$flags"
  # Emulation runs the backbone ~1000x slower than native (≈40 s a photo on aarch64): three
  # fixtures of three kinds (a cup, a cat, a man with a camera) on each board, for CI's time.
  photos=(tests/fixtures/photos/coffee.png tests/fixtures/photos/chelsea.png tests/fixtures/photos/camera.png)
  t0=$(date +%s)
  # Board builds carry no embedded backbone (cargo feature embedded-model): pass the same file.
  RUST_LOG=info "${wrap[@]}" "${qemu[@]}" "$bin" classify --model models/efficientnet_lite0_int8w.onnx "${extra[@]}" \
    --format json --with-features "${photos[@]}" > "$TMP/$name.jsonl" 2> "$TMP/$name.log" \
    || { cat "$TMP/$name.log" >&2; exit 1; }
  say "$name: classified the fixtures under ${qemu[*]:0:1} ${core:+(cortex-$core)} in $(( $(date +%s) - t0 )) s"
  # The path must be the one asked for: f16 falls back to f32 on a core without FP16.
  case "$flags" in *f16*)
    grep -q "backbone in f16" "$TMP/$name.log" || { cat "$TMP/$name.log" >&2; say "$name: f16 was not used"; exit 1; } ;;
  esac
  python3 - "$TMP/native.jsonl" "$TMP/$name.jsonl" "$name" "$min_cos" <<'PY'
import json, math, sys
native = {r["source"]: r for r in map(json.loads, open(sys.argv[1]))}
arm = [json.loads(l) for l in open(sys.argv[2])]
board, min_cos = sys.argv[3], float(sys.argv[4])
assert len(arm) > 0, f"{board}: no results"
worst = 1.0
for a in arm:
    n = native[a["source"]]
    fa, fb = n["features"], a["features"]
    cos = sum(x * y for x, y in zip(fa, fb)) / (math.sqrt(sum(x * x for x in fa)) * math.sqrt(sum(y * y for y in fb)))
    worst = min(worst, cos)
    ok = n["label"] == a["label"] and cos >= min_cos
    print(f"  {board}: {a['source'].split('/')[-1]:<22} native {n['label']!r:<14} arm {a['label']!r:<14} cosine {cos:.6f}{'' if ok else '   <-- MISMATCH'}")
    assert ok, f"{board}: {a['source']} differs from the native run (cosine below {min_cos} or another label)"
print(f"  {board}: every top-1 label agrees; lowest feature cosine {worst:.6f} (at least {min_cos})")
PY
done
if [ "${#skipped[@]}" -gt 0 ]; then
  printf '\n\033[1;33m*** SKIPPED: %s ***\033[0m\n\n' "${skipped[*]}" >&2
  exit 3
fi
