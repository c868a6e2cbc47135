#!/usr/bin/env bash
# The ARM benchmark: guest instructions per frame, per stage and at load, for every engine and
# backbone form, on the cores of the boards in targets/, counted under qemu-user with a TCG
# plugin (scripts/bench/arm/insn-count.c). Prints Markdown tables for BENCHMARKS.md.
#
# INSTRUCTION COUNTS ARE A PROXY FOR BOARD TIME, NOT TIME: they leave out caches, memory
# bandwidth, pipelines and clocks. Compare rows on ONE core model (ratios); never compare an
# instruction count with a time, nor counts across core models as speeds.
#
#   scripts/bench/arm.sh [CORE…]          CORE = a53 a72 a76 a7 (default: all four)
#
# Environment: FRAMES (default 3: the figure is the median of frames 2..FRAMES; frame 1 pays
# one-time set-up), JOBS (parallel emulators, default 2), ROWS (a regex of row names to run),
# IMAGE (default tests/fixtures/photos/china.jpg, a 640×427 JPEG photo), THREADS=1 (add rows at
# --threads 4, counted exactly with atomic adds), PROFILE=CORE.ROW (also count that row by
# function from its second frame on: scripts/bench/arm/profile.py; FRAMES=11 gives ten frames).
#
# How: one aarch64 binary (the rpi4 profile's flags, target-cpu=cortex-a72, which every 64-bit
# core here runs) with the `ort` feature, and one armv7 binary (rpi-armv7), release profile.
# Each run is `glance bench --threads 1 --warmup 0 --frames FRAMES IMAGE` with
# GLANCE_INSN_MARKS=1, so glance marks each stage boundary with a system call the plugin sees;
# under `unshare -m`, /proc/cpuinfo is bind-mounted with the emulated core's own text
# (qemu-user 7.2 shows the host's x86 one: onnxruntime's cpuinfo then crashes and tract misses
# fp16). onnxruntime is the aarch64 wheel's libonnxruntime.so, the version scripts/python-env.sh
# pins. The last table's sanity row runs a loop of known length (scripts/bench/arm/known-loop.c):
# a plugin that miscounts shows there.
#
# Needs root (unshare -m, mount --bind, apt-get). Installs qemu-user, the cross compilers and the
# qemu source's plugin header when missing; what cannot be installed is a loud SKIPPED, exit 3.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { printf '\033[1marm-bench:\033[0m %s\n' "$*" >&2; }
skip() { printf '\n\033[1;33m*** SKIPPED: %s ***\033[0m\n\n' "$*" >&2; exit 3; }
WORK="${CARGO_TARGET_DIR:-$ROOT/target}/arm-bench"
mkdir -p "$WORK/runs"
FRAMES=${FRAMES:-3}
JOBS=${JOBS:-2}
IMAGE=${IMAGE:-$ROOT/tests/fixtures/photos/china.jpg}
CORES=("$@")
[ ${#CORES[@]} -gt 0 ] || CORES=(a53 a72 a76 a7)
[ "$(id -u)" -eq 0 ] || skip "needs root (unshare -m and mount --bind for /proc/cpuinfo)"

# --- tools -------------------------------------------------------------------------------------
need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need+=(libstdc++6-arm64-cross)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } \
    || skip "cannot install ${need[*]}"
fi

# The plugin header must be the running qemu's: from Debian's source package of that qemu.
QEMU_VERSION=$(dpkg-query -W -f '${source:Version}' qemu-user 2>/dev/null || true)
HEADER="$WORK/qemu-$QEMU_VERSION/qemu-plugin.h"
if [ ! -s "$HEADER" ]; then
  say "fetching the plugin header from Debian's qemu $QEMU_VERSION source"
  if ! apt-get source --print-uris qemu >/dev/null 2>&1 || ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$(. /etc/os-release; echo "$VERSION_CODENAME")" "$(. /etc/os-release; echo "$VERSION_CODENAME")" \
      > /etc/apt/sources.list.d/glance-deb-src.sources
    apt-get update -qq || skip "apt-get update failed (deb-src for qemu)"
  fi
  SRC=$(mktemp -d)
  ( cd "$SRC" && apt-get source --download-only "qemu=$QEMU_VERSION" >/dev/null 2>&1 ) \
    || skip "cannot download Debian's qemu $QEMU_VERSION source (for qemu-plugin.h)"
  tar -xJf "$SRC"/qemu_*.orig.tar.xz -C "$SRC" --wildcards '*/include/qemu/qemu-plugin.h'
  mkdir -p "$(dirname "$HEADER")"
  cp "$SRC"/qemu-*/include/qemu/qemu-plugin.h "$HEADER"
  rm -rf "$SRC"
fi
PLUGIN="$WORK/insn-count.so"
gcc -shared -fPIC -O2 -Wall -Werror -I "$(dirname "$HEADER")" -o "$PLUGIN" scripts/bench/arm/insn-count.c
aarch64-linux-gnu-gcc -O2 -static -o "$WORK/known-loop-aarch64" scripts/bench/arm/known-loop.c
arm-linux-gnueabihf-gcc -O2 -static -o "$WORK/known-loop-armv7" scripts/bench/arm/known-loop.c

# --- binaries ----------------------------------------------------------------------------------
# Unstripped (symbols change no instruction), so that PROFILE= can name functions.
export CARGO_PROFILE_RELEASE_STRIP=none
A64=$(GLANCE_BOARD_FEATURES=ort scripts/board/cross-build.sh rpi4 release) || skip "no aarch64 build"
# The armv7 binary only when its core is asked for: its build is as long as the aarch64 one's.
ARM7=""
if [[ " ${CORES[*]} " == *" a7 "* ]]; then
  ARM7=$(GLANCE_BOARD_FEATURES= scripts/board/cross-build.sh rpi-armv7 release) || skip "no armv7 build"
fi
ORT_VERSION=$(sed -n 's/^ORT_VERSION=\(.*\)/\1/p' scripts/python-env.sh)
ORT_DIR="$WORK/onnxruntime-$ORT_VERSION-aarch64"
if [ ! -s "$ORT_DIR/libonnxruntime.so" ]; then
  say "onnxruntime $ORT_VERSION for aarch64 (PyPI wheel)"
  TMPW=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 \
    --python-version 3.11 "onnxruntime==$ORT_VERSION" -d "$TMPW" || skip "cannot download the aarch64 onnxruntime wheel"
  mkdir -p "$ORT_DIR"
  python3 - "$TMPW"/onnxruntime-*.whl "$ORT_DIR" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if os.path.basename(n).startswith("libonnxruntime.so."):
        open(os.path.join(sys.argv[2], "libonnxruntime.so"), "wb").write(z.read(n))
PY
  rm -rf "$TMPW"
fi

# --- emulated cores ----------------------------------------------------------------------------
# /proc/cpuinfo as each board's kernel prints it (scripts/bench/arm/cpuinfo.sh says why).
qemu_for() { case "$1" in a7) echo "qemu-arm -L /usr/arm-linux-gnueabihf -cpu cortex-a7" ;;
                         *) echo "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-$1" ;; esac; }
for c in a53 a72 a76 a7; do scripts/bench/arm/cpuinfo.sh "$c" > "$WORK/cpuinfo-$c"; done

# count CORE NAME MODE BINARY ARGS… : runs one emulated process, leaves $WORK/runs/CORE.NAME.txt
count() {
  local core=$1 name=$2 mode=$3; shift 3
  local out="$WORK/runs/$core.$name.txt"
  rm -f "$out"
  # shellcheck disable=SC2046
  unshare -m sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$WORK/cpuinfo-$core" \
    env GLANCE_INSN_MARKS=1 ORT_DYLIB_PATH="$ORT_DIR/libonnxruntime.so" \
    $(qemu_for "$core") -plugin "$PLUGIN,out=$out,mode=$mode" "$@" \
    > "$WORK/runs/$core.$name.log" 2>&1 \
    || { say "$core $name failed: $(tail -3 "$WORK/runs/$core.$name.log")"; rm -f "$out"; }
}
export -f count qemu_for say
export WORK PLUGIN ORT_DIR

M="--model models/efficientnet_lite0"
# name | backbone (--model FILE or --bundle FILE) | engine flags (tract: precision; ort)
ROWS_A64=(
  "tract-int8w|${M}_int8w.onnx|--engine tract --precision f32"
  "tract-int8w-f16|${M}_int8w.onnx|--engine tract --precision f16"
  "tract-fp32|${M}_fp32.onnx|--engine tract --precision f32"
  "tract-fp32-f16|${M}_fp32.onnx|--engine tract --precision f16"
  "tract-qdq|${M}_qdq.onnx|--engine tract --precision f32"
  "ort-fp32|${M}_fp32.onnx|--engine ort"
  "ort-qdq|${M}_qdq.onnx|--engine ort"
  "ort-int8w|${M}_int8w.onnx|--engine ort"
)
# The bigger backbones on their default paths (`ROWS='^lite'` runs only these).
for v in lite1 lite2; do
  ROWS_A64+=(
    "$v-tract-int8w|--model models/efficientnet_${v}_int8w.onnx|--engine tract --precision f32"
    "$v-tract-int8w-f16|--model models/efficientnet_${v}_int8w.onnx|--engine tract --precision f16"
    "$v-ort-qdq|--model models/efficientnet_${v}_qdq.onnx|--engine ort"
  )
done
ROWS_A7=(
  "tract-int8w|${M}_int8w.onnx|--engine tract"
  "tract-fp32|${M}_fp32.onnx|--engine tract"
  "tract-qdq|${M}_qdq.onnx|--engine tract"
  "lite1-tract-int8w|--model models/efficientnet_lite1_int8w.onnx|--engine tract"
  "lite2-tract-int8w|--model models/efficientnet_lite2_int8w.onnx|--engine tract"
)
# Lite0 at a smaller input side (`fit --backbone lite0-192|lite0-160`) exists only in a bundle:
# each runs a bundle fitted on the fixture photos, beside one fitted at 224² the same way, so the
# head stage is the same work (`ROWS='^side'` runs only these).
for side in 224 192 160; do
  b="--bundle $WORK/bundles/lite0-$side.glance"
  ROWS_A64+=(
    "side$side-tract-int8w|$b|--engine tract --precision f32"
    "side$side-tract-int8w-f16|$b|--engine tract --precision f16"
  )
  ROWS_A7+=("side$side-tract-int8w|$b|--engine tract")
done
# Lite0 multi-level (`fit --backbone lite0-ml`), a bundle fitted the same way, beside side224
# (`ROWS='^(side224|ml)-'`).
b="--bundle $WORK/bundles/lite0-ml.glance"
ROWS_A64+=(
  "ml-tract-int8w|$b|--engine tract --precision f32"
  "ml-tract-int8w-f16|$b|--engine tract --precision f16"
)
ROWS_A7+=("ml-tract-int8w|$b|--engine tract")
bundles_made=""
make_bundles() {
  [ -n "$bundles_made" ] && return
  say "bundles at 224², 192² and 160², and lite0-ml (glance-host fit on the fixture photos)"
  cargo build -q --locked --bin glance-host
  d="$WORK/bundles/photos"
  rm -rf "$d"; mkdir -p "$d/indoor" "$d/outdoor"
  for f in camera chelsea coffee; do ln -s "$ROOT"/tests/fixtures/photos/$f.* "$d/indoor/"; done
  for f in china flower motorcycle_right; do ln -s "$ROOT"/tests/fixtures/photos/$f.* "$d/outdoor/"; done
  for side in 224 192 160 ml; do
    b=lite0-$side; [ $side = 224 ] && b=lite0
    "${CARGO_TARGET_DIR:-$ROOT/target}/debug/glance-host" fit "$d" --backbone "$b" \
      -q --cache "$WORK/bundles/cache" --out "$WORK/bundles/lite0-$side.glance" >/dev/null
  done
  bundles_made=1
}
jobs_file="$WORK/jobs"
: > "$jobs_file"
for core in "${CORES[@]}"; do
  if [ "$core" = a7 ]; then bin=$ARM7; rows=("${ROWS_A7[@]}"); else bin=$A64; rows=("${ROWS_A64[@]}"); fi
  for row in "${rows[@]}"; do
    IFS='|' read -r name src flags <<< "$row"
    if [ -n "${ROWS:-}" ] && ! [[ $name =~ $ROWS ]]; then continue; fi
    [[ $src == --bundle* ]] && make_bundles
    echo "count $core $name inline $bin bench $src $flags --threads 1 --warmup 0 --frames $FRAMES --format json $IMAGE" >> "$jobs_file"
    if [ "${PROFILE:-}" = "$core.$name" ]; then
      echo "count $core $name-profile profile,reset=3:2 $bin bench $src $flags --threads 1 --warmup 0 --frames $FRAMES --format json $IMAGE" >> "$jobs_file"
    fi
    if [ "${THREADS:-1}" != 1 ] && [[ $name == tract-int8w* ]]; then
      echo "count $core $name-t1 atomic $bin bench $src $flags --threads 1 --warmup 0 --frames $FRAMES --format json $IMAGE" >> "$jobs_file"
      echo "count $core $name-t4 atomic $bin bench $src $flags --threads 4 --warmup 0 --frames $FRAMES --format json $IMAGE" >> "$jobs_file"
    fi
  done
  kl=$WORK/known-loop-aarch64; [ "$core" = a7 ] && kl=$WORK/known-loop-armv7
  echo "count $core known-loop inline $kl 10000000" >> "$jobs_file"
done
say "$(wc -l < "$jobs_file") emulated runs, $JOBS at a time (each a few minutes)"
t0=$(date +%s)
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$JOBS" -I{} bash -c '{}'
say "emulation took $(( $(date +%s) - t0 )) s"

# --- tables ------------------------------------------------------------------------------------
python3 - "$WORK/runs" "$FRAMES" "$(git rev-parse --short HEAD)" "$QEMU_VERSION" "$ORT_VERSION" "${CORES[@]}" <<'PY'
import os, statistics, sys
runs, frames, commit, qemu, ort = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cores = sys.argv[6:]
boards = {"a53": "Pi 3 / Zero 2 W", "a72": "Pi 4", "a76": "Pi 5", "a7": "Pi 2, 32-bit"}
def parse(path):
    marks, total = [], None
    for line in open(path):
        f = line.split()
        if f[0] == "mark":
            marks.append((int(f[1]), int(f[2])))
        elif f[0] == "total":
            total = int(f[1])
    return marks, total
def frame_stages(marks):
    # 3 frame start, 4 decoded, 5 prepared, 6 backbone, 7 frame end
    frames, cur = [], None
    for mid, n in marks:
        if mid == 3:
            cur = {3: n}
        elif cur is not None and mid in (4, 5, 6, 7):
            cur[mid] = n
            if mid == 7:
                frames.append(cur); cur = None
    return frames
M = 1e6
print(f"Instructions counted under qemu-user {qemu} with scripts/bench/arm/insn-count.c, glance {commit}, "
      f"onnxruntime {ort} (aarch64 wheel). A PROXY FOR TIME, NOT TIME: compare rows within one core.\n")
for core in cores:
    names = sorted({f.split(".")[1] for f in os.listdir(runs) if f.startswith(core + ".") and f.endswith(".txt")})
    rows = []
    for name in names:
        if name == "known-loop" or name.endswith("-profile"):
            continue
        marks, total = parse(os.path.join(runs, f"{core}.{name}.txt"))
        d = dict()
        for mid, n in marks:
            d.setdefault(mid, n)
        fr = frame_stages(marks)
        steady = fr[1:] if len(fr) > 1 else fr
        if not steady or 1 not in d or 2 not in d:
            rows.append((name, None)); continue
        med = lambda a, b: statistics.median(f[b] - f[a] for f in steady)
        rows.append((name, dict(load=d[2] - d[1], decode=med(3, 4), prep=med(4, 5),
                                backbone=med(5, 6), head=med(6, 7), frame=med(3, 7), frames=len(fr))))
    if not rows:
        continue
    ok = [r for n, r in rows if r and n.startswith("ort-")]
    ref = min((r["frame"] for r in ok), default=None)
    print(f"\n#### cortex-{core} ({boards.get(core, '')}): instructions, 1 thread, median of frames 2–{frames}\n")
    print("| path | load (G) | decode (M) | prepare (M) | backbone (M) | head (M) | **frame (M)** |"
          + (" vs onnxruntime's best |" if ref else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if ref else ""))
    for name, r in rows:
        if r is None:
            print(f"| {name} | failed (see {core}.{name}.log) |"); continue
        line = (f"| {name} | {r['load']/1e9:.2f} | {r['decode']/M:.1f} | {r['prep']/M:.1f} | "
                f"{r['backbone']/M:.1f} | {r['head']/M:.2f} | **{r['frame']/M:.1f}** |")
        if ref:
            line += f" {r['frame']/ref:.2f}× |"
        print(line)
    t1 = [r for n, r in rows if r and n.endswith("-t1")]
    t4 = [r for n, r in rows if r and n.endswith("-t4")]
    if t1 and t4:
        print(f"\n4 threads against 1 (atomic counting, all threads): {t4[0]['frame']/M:.1f} M vs "
              f"{t1[0]['frame']/M:.1f} M per frame, overhead {100*(t4[0]['frame']/t1[0]['frame']-1):+.1f}%")
print("\n#### Sanity: a loop of exactly 2 × 10,000,000 instructions between two marks\n")
print("| core | counted | expected | difference |\n|---|---:|---:|---:|")
for core in cores:
    p = os.path.join(runs, f"{core}.known-loop.txt")
    if not os.path.exists(p):
        print(f"| {core} | missing | | |"); continue
    marks, _ = parse(p)
    got = marks[1][1] - marks[0][1]
    print(f"| {core} | {got:,} | 20,000,000 | {got-20_000_000:+,} (the mark's own system call) |")
    assert abs(got - 20_000_000) < 200, f"{core}: the plugin miscounts the known loop"
PY
if [ -n "${PROFILE:-}" ] && [ -s "$WORK/runs/$PROFILE-profile.txt" ]; then
  bin=$A64; [[ $PROFILE == a7.* ]] && bin=$ARM7
  echo; echo "#### $PROFILE by function: frames 2–$FRAMES together (the load and frame 1 left out)"; echo
  python3 scripts/bench/arm/profile.py "$WORK/runs/$PROFILE-profile.txt" "$bin" 30
fi
