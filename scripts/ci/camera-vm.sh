#!/usr/bin/env bash
# CI step: glance against the kernel's own camera drivers, in a throwaway VM. virtme-ng (PyPI)
# boots Debian's stock kernel (linux-image-amd64) over this machine's own filesystem under qemu
# (TCG: KVM guests hang on these machines), with vivid (the kernel's virtual test camera) and
# v4l2loopback (built by DKMS against that kernel's headers) loaded; inside, the ignored tests
# of tests/cameras.rs run against the test build's glance.
#
#   scripts/ci/camera-vm.sh
#
# Installs what it needs (Debian: qemu-system-x86, busybox-static, linux-image-amd64 and its
# headers, v4l2loopback-dkms, v4l-utils, ffmpeg; PyPI: virtme-ng, pinned). Exit 0 when the tests
# pass, 1 when one fails, 3 after a loud SKIPPED when the VM cannot be had here.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1mcamera-vm:\033[0m %s\n' "$*" >&2; }
skip() { printf '\n\033[1;33m*** SKIPPED: the camera VM tests did not run: %s ***\033[0m\n\n' "$*" >&2; exit 3; }
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VIRTME_NG_VERSION=1.42
t0=$(date +%s)

# 1. Debian packages (each only when missing).
PACKAGES=(qemu-system-x86 busybox-static linux-image-amd64 linux-headers-amd64 dkms v4l2loopback-dkms v4l-utils ffmpeg)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"; } \
    >"$TARGET_DIR/camera-vm-apt.log" 2>&1 || skip "cannot install ${missing[*]} (log: $TARGET_DIR/camera-vm-apt.log)"
fi

# 2. The kernel: the newest Debian image that has vivid, and v4l2loopback built for it.
KVER=""
for k in $(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V); do
  modinfo -k "$k" vivid >/dev/null 2>&1 && KVER="$k"
done
[ -n "$KVER" ] || skip "no Debian amd64 kernel with the vivid module in /boot"
if ! modinfo -k "$KVER" v4l2loopback >/dev/null 2>&1; then
  say "building v4l2loopback for $KVER (DKMS)"
  dkms autoinstall -k "$KVER" >"$TARGET_DIR/camera-vm-dkms.log" 2>&1 \
    || skip "DKMS could not build v4l2loopback for $KVER (log: $TARGET_DIR/camera-vm-dkms.log)"
fi

# 3. virtme-ng, pinned, in a venv of its own.
VENV="$TARGET_DIR/vm-venv"
if ! "$VENV/bin/vng" --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
  say "pip install virtme-ng==$VIRTME_NG_VERSION"
  python3 -m venv "$VENV" >&2 && "$VENV/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION" >&2 \
    || skip "cannot install virtme-ng $VIRTME_NG_VERSION from PyPI"
fi
export PATH="$VENV/bin:$PATH"

# 4. The test binary (the default features, as scripts/test.sh's first pass builds it).
tests_bin=$(cargo test --locked --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tests" and m.get("executable"):
        print(m["executable"])')
[ -x "$tests_bin" ] || { say "no integration test binary"; exit 1; }
say "ready after $(( $(date +%s) - t0 )) s: kernel $KVER, tests $tests_bin"

# 5. Boot and run. -cpu Nehalem: TCG emulates AVX slowly (35 s a frame against 3.7 s with SSE4.2
# only; BENCHMARKS.md "CI time"); glance picks its kernels at run time, so the same binary runs.
# mitigations=off: the guest would otherwise isolate page tables for this CPU model, and each
# system call would flush TCG's TLB (the tests took 171 s instead of 189 s without it). Output
# through a pipe: qemu opens /proc/self/fd/1 and /proc/self/fd/2 afresh, which truncates a log
# file they point at.
set +e
timeout 1500 vng --run "/boot/vmlinuz-$KVER" --disable-kvm --memory 2G --cpus 2 \
  --append mitigations=off --qemu-opts="-cpu Nehalem" \
  --exec "$PWD/scripts/ci/camera-vm-inside.sh $tests_bin" 2>&1 | cat
rc=${PIPESTATUS[0]}
set -e
say "the VM step took $(( $(date +%s) - t0 )) s (exit $rc)"
case "$rc" in
  0) exit 0 ;;
  3) skip "the drivers could not be loaded inside the VM" ;;
  124) say "the VM did not finish within 25 minutes"; exit 1 ;;
  *) exit 1 ;;
esac
