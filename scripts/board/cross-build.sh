#!/usr/bin/env bash
# Cross-compiles a stripped `glance` (board runtime only, no host workbench) for one board
# profile in targets/, with Debian's cross gcc as linker.
#
#   scripts/board/cross-build.sh BOARD [PROFILE]     BOARD = rpi4 | rpi5 | rpi-armv7 | jetson-orin | …
#                                              PROFILE = board (default: full LTO, 1 codegen
#                                              unit, stripped, no unwind tables), release, or
#                                              ci-arm (quickest to build; CI's check)
#
# Built with `--no-default-features --features net` (MQTT with TLS and the web console);
# GLANCE_BOARD_FEATURES= (empty) leaves those out, for the size comparison in BENCHMARKS.md.
# Prints the binary's path on stdout. Installs what it needs (rustup target, gcc cross linker,
# cross libc) when missing. Exit status 3 means "cannot build here" (a target or package that
# cannot be installed), said loudly on stderr; callers report that as SKIPPED, never as passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1mcross-build:\033[0m %s\n' "$*" >&2; }
skip() { printf '\n\033[1;33m*** SKIPPED: %s ***\033[0m\n\n' "$*" >&2; exit 3; }

BOARD="${1:?usage: scripts/board/cross-build.sh BOARD [board|release]}"
PROFILE="${2:-board}"
TOML="targets/$BOARD.toml"
[ -f "$TOML" ] || { say "no board profile $TOML (have: $(ls targets | sed 's/\.toml$//' | tr '\n' ' '))"; exit 2; }
TRIPLE=$(sed -n 's/^target *= *"\(.*\)".*/\1/p' "$TOML")
# rustflags = ["-C", "target-cpu=cortex-a72"]  →  -C target-cpu=cortex-a72
FLAGS=$(sed -n 's/^rustflags *= *\[\(.*\)\].*/\1/p' "$TOML" | tr -d '",')
# The board profile aborts on a panic (panic = "abort"), so nothing ever unwinds: leave out the
# unwind tables (.eh_frame), 1.9 MB of a 16 MB binary. A panic still prints its message and
# file:line; only RUST_BACKTRACE's frame list is lost, and a stripped binary has no names for
# it anyway. (Cargo profiles cannot carry rustflags on stable Rust, hence here.)
[ "$PROFILE" = board ] && FLAGS="$FLAGS -C force-unwind-tables=no"
case "$TRIPLE" in
  aarch64-unknown-linux-gnu) GCC=aarch64-linux-gnu-gcc; PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
  armv7-unknown-linux-gnueabihf) GCC=arm-linux-gnueabihf-gcc; PKGS=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
  *) say "no cross toolchain known for $TRIPLE"; exit 2 ;;
esac

if ! rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE"; then
  say "rustup target add $TRIPLE"
  rustup target add "$TRIPLE" >&2 || skip "the Rust target $TRIPLE cannot be installed on this machine"
fi
if ! command -v "$GCC" >/dev/null; then
  say "installing ${PKGS[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PKGS[@]}" >/dev/null; } \
    || skip "cannot install ${PKGS[*]} (the $TRIPLE linker)"
fi

# Board flags apply to the target only (not to build scripts and proc macros, which run here).
VAR="CARGO_TARGET_$(echo "$TRIPLE" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
export "$VAR=$FLAGS"
# Stripped unless the caller says otherwise (scripts/bench/arm.sh keeps symbols for its profile).
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-symbols}"
say "$BOARD: $TRIPLE, profile $PROFILE, $VAR=\"$FLAGS\""
cargo build --locked --profile "$PROFILE" --target "$TRIPLE" --bin glance --no-default-features --features "${GLANCE_BOARD_FEATURES-net}" >&2
BIN="${CARGO_TARGET_DIR:-target}/$TRIPLE/$PROFILE/glance"
say "$BIN: $(stat -c %s "$BIN") bytes"
echo "$BIN"
