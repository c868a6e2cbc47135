#!/usr/bin/env bash
# The project's one test command (README.md): installs what the tests need, then runs every test
# of the workspace. Safe to run on a fresh Debian 12 machine with Rust; re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1mtest.sh:\033[0m %s\n' "$*" >&2; }

# Debian packages the tests use; each is installed only when missing.
# socat: serial tests through a pty pair; ffmpeg: MJPEG streams and camera pixel formats;
# gcc + linux-libc-dev: the V4L2 ABI check against <linux/videodev2.h>; mosquitto: the MQTT
# tests' broker, openssl: its TLS certificates; chromium + chromium-driver: the web console in
# a real browser; strace: the benchmark's stage marks (scripts/bench/arm.sh counts between them).
PACKAGES=(dataset-fashion-mnist socat ffmpeg gcc linux-libc-dev mosquitto openssl chromium chromium-driver strace)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Installed above: the tests that need it fail rather than skip without it.
export GLANCE_REQUIRE_STRACE=1

# The onnxruntime engine's tests load libonnxruntime.so from the pinned onnxruntime wheel (PyPI).
# If it cannot be installed here they say SKIPPED loudly; with it they must pass.
if ORT_LIB=$(scripts/python-env.sh --ort-library); then
  export ORT_DYLIB_PATH="$ORT_LIB" GLANCE_REQUIRE_ORT=1
  log "onnxruntime engine tests use $ORT_LIB"
else
  printf '\n\033[1;33m*** onnxruntime could not be installed: the --engine ort tests will be SKIPPED ***\033[0m\n\n' >&2
  unset GLANCE_REQUIRE_ORT
fi

# The web console's browser test drives chromium with selenium (PyPI) and parses /metrics with
# prometheus-client; without them it says SKIPPED loudly.
if BROWSER_PY=$(scripts/python-env.sh selenium==4.38.0 prometheus-client==0.26.0) \
   && command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  export GLANCE_BROWSER_PY="$BROWSER_PY" GLANCE_REQUIRE_BROWSER=1
  log "the web console's browser test uses chromium $(chromium --version 2>/dev/null | awk '{print $2}')"
else
  printf '\n\033[1;33m*** chromium or selenium could not be installed: the browser test will be SKIPPED ***\033[0m\n\n' >&2
  unset GLANCE_REQUIRE_BROWSER
fi

log "cargo test --workspace"
cargo test --workspace --locked

# What boards build: no workbench, no onnxruntime engine, no embedded backbone, the four camera
# image formats, MQTT (with TLS) and the web console. The tests that need more say so with cfg;
# the rest run against this build, the default backbone passed as a file (tests/util.rs,
# glance_command).
log "cargo test --workspace --no-default-features --features net (the board's features)"
cargo test --workspace --locked --no-default-features --features net
