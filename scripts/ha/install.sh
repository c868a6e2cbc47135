#!/usr/bin/env bash
# Installs a real Home Assistant for checking glance's MQTT discovery against it
# (scripts/ha/start.sh runs it, tests/ha/check_discovery.py checks what it made).
#
#   scripts/ha/install.sh
#
# Debian 12 has Python 3.11 and Home Assistant needs 3.13, so this debootstraps a minimal
# Debian 13 (trixie) root into target/ha/root (the repo's target dir, or $CARGO_TARGET_DIR/ha,
# or $GLANCE_HA_DIR) and makes a venv in it with the pinned Home Assistant (see lib.sh for
# why that version), its frontend and paho-mqtt. Needs root and Debian's archive and PyPI.
#
# Idempotent: each step is skipped when done (a re-run takes a second). A first install
# takes a few minutes and about 1.3 GB. Exits 0 when installed, 3 (after a loud SKIPPED)
# when it cannot be installed here, 1 on any other failure.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MIRROR="${GLANCE_HA_MIRROR:-http://deb.debian.org/debian}"
# The root's Debian packages: Python 3.13 with venv, time zones (zoneinfo), CA certificates,
# and a C compiler with Python's headers: a few of Home Assistant's pins have no wheel for 3.13
# (lru-dict 1.3.0), so pip builds them.
ROOT_PACKAGES=python3,python3-venv,python3-dev,build-essential,tzdata,ca-certificates

start=$(date +%s)
[ "$(id -u)" -eq 0 ] || ha_skip "scripts/ha/install.sh needs root (debootstrap, chroot)"
command -v unshare >/dev/null && command -v chroot >/dev/null \
  || ha_skip "unshare or chroot is missing (util-linux, coreutils)"

# 1. The trixie root (its marker holds the package list it was made with).
if [ -f "$HA_ROOT/.glance-root-done" ] && [ "$(cat "$HA_ROOT/.glance-root-done")" != "$ROOT_PACKAGES" ]; then
  ha_say "adding packages to the root: $ROOT_PACKAGES"
  in_root nice -n 19 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"' \
    apt ${ROOT_PACKAGES//,/ } >"$HA_DIR/apt.log" 2>&1 \
    || { tail -n 20 "$HA_DIR/apt.log" >&2; ha_skip "apt-get in the trixie root failed (log: $HA_DIR/apt.log)"; }
  echo "$ROOT_PACKAGES" >"$HA_ROOT/.glance-root-done"
fi
if [ ! -f "$HA_ROOT/.glance-root-done" ]; then
  if ! command -v debootstrap >/dev/null; then
    ha_say "installing debootstrap"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } \
      >/dev/null || ha_skip "cannot install debootstrap from Debian's archive"
  fi
  [ -e /usr/share/debootstrap/scripts/trixie ] || ha_skip "this debootstrap does not know trixie"
  ha_say "debootstrapping trixie into $HA_ROOT (minbase + $ROOT_PACKAGES)"
  rm -rf "$HA_ROOT"
  mkdir -p "$HA_DIR"
  if ! nice -n 19 debootstrap --variant=minbase --include="$ROOT_PACKAGES" \
      trixie "$HA_ROOT" "$MIRROR" >"$HA_DIR/debootstrap.log" 2>&1; then
    tail -n 20 "$HA_DIR/debootstrap.log" >&2
    ha_skip "debootstrap of trixie failed (log: $HA_DIR/debootstrap.log)"
  fi
  echo "$ROOT_PACKAGES" >"$HA_ROOT/.glance-root-done"
fi
in_root python3 -c 'import sys; assert sys.version_info >= (3, 13, 2), sys.version' \
  || ha_skip "the trixie root has no Python >= 3.13.2"

# 2. The venv with Home Assistant. Its wheel pins its direct dependencies only. An integration's
# own requirements are in its manifest.json (Home Assistant pip-installs them when it first loads
# the integration, which check.sh turns off with --skip-pip), and the versions it was released
# with for shared packages (bleak, anyio, …) are in its package_constraints.txt, which pip does not
# read by itself. So: Home Assistant first, then the requirements of the integrations check.sh
# loads (scripts/ha/requirements.py), all under those constraints. The marker holds both lines.
marker="$HA_ROOT$HA_VENV/.glance-installed"
want="homeassistant==$HA_VERSION"
if [ "$(head -n 1 "$marker" 2>/dev/null)" != "$want" ]; then
  [ -x "$HA_ROOT$HA_VENV/bin/python" ] || in_root python3 -m venv "$HA_VENV"
  ha_say "pip install $want (into the root's $HA_VENV)"
  if ! in_root nice -n 19 "$HA_VENV/bin/pip" install -q --prefer-binary "$want" \
      >"$HA_DIR/pip.log" 2>&1; then
    tail -n 20 "$HA_DIR/pip.log" >&2
    ha_skip "pip could not install Home Assistant $HA_VERSION (log: $HA_DIR/pip.log)"
  fi
  site=$(in_root "$HA_VENV/bin/python" -c \
    'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent)')
  cp scripts/ha/requirements.py "$HA_ROOT/opt/glance-requirements.py"
  extra=$(in_root "$HA_VENV/bin/python" /opt/glance-requirements.py "$site")
  ha_say "pip install the integrations' requirements: $extra"
  # shellcheck disable=SC2086 # $extra is a list of requirements
  if ! in_root nice -n 19 "$HA_VENV/bin/pip" install -q --prefer-binary \
      -c "$site/package_constraints.txt" "$want" $extra >>"$HA_DIR/pip.log" 2>&1; then
    tail -n 20 "$HA_DIR/pip.log" >&2
    ha_skip "pip could not install the integrations' requirements (log: $HA_DIR/pip.log)"
  fi
  # Check every installed package against the constraints.
  in_root "$HA_VENV/bin/python" - <<'EOF' || ha_skip "Home Assistant's dependencies disagree with its constraints"
import importlib.metadata as md, pathlib, homeassistant, sys
from packaging.requirements import Requirement
bad = []
for line in (pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt").read_text().splitlines():
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        continue
    req = Requirement(line)
    try:
        have = md.version(req.name)
    except md.PackageNotFoundError:
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        bad.append(f"{req.name} {have} (wants {req.specifier})")
if bad:
    sys.exit("constraint mismatches: " + ", ".join(bad))
EOF
  printf '%s\n%s\n' "$want" "$extra" >"$marker"
fi
version=$(in_root "$HA_VENV/bin/python" -c 'import homeassistant.const as c; print(c.__version__)')
[ "$version" = "$HA_VERSION" ] || { ha_say "installed Home Assistant is $version, not $HA_VERSION"; exit 1; }
ha_say "Home Assistant $version is installed in $HA_ROOT$HA_VENV ($(($(date +%s) - start)) s)"
