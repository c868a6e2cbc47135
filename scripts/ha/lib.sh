# Shared by scripts/ha/*.sh (sourced, not run): where the Home Assistant root lives and how
# to run a command inside it.
#
# Home Assistant needs a newer Python than Debian 12 has, so it runs in a Debian 13 (trixie)
# root made by debootstrap under the repo's target dir (never committed). Commands run in it
# through `in_root`: a private mount namespace (unshare) with /proc, /dev and /sys bound in, so
# the mounts vanish with the command and nothing is left mounted on the host.

HA_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Everything lives here: the root, the pip cache, and each run's config dir.
HA_DIR="${GLANCE_HA_DIR:-${CARGO_TARGET_DIR:-$HA_REPO/target}/ha}"
HA_ROOT="$HA_DIR/root"
# The venv inside the root (a path inside the root, as the root sees it).
HA_VENV=/opt/homeassistant

# Pinned: Home Assistant 2026.2.3 is the newest release whose Requires-Python (>=3.13.2) admits
# trixie's Python 3.13; 2026.3 and later need Python 3.14. Its integrations' own requirements
# (frontend, paho-mqtt, …) come pinned in their manifests (scripts/ha/requirements.py).
HA_VERSION=2026.2.3

ha_say() { printf '\033[1m%s:\033[0m %s\n' "$(basename "$0")" "$*" >&2; }

# Prints SKIPPED loudly and exits 3: Home Assistant cannot be had on this machine.
ha_skip() {
  printf '\n\033[1;33m*** SKIPPED: %s ***\033[0m\n\n' "$*" >&2
  exit 3
}

# in_root CMD [ARG…]: runs CMD chrooted into $HA_ROOT, with the host's DNS and CA bundle (the
# registries may only be reachable through a TLS-inspecting proxy whose CA the host trusts).
in_root() {
  local ca=/etc/ssl/certs/ca-certificates.crt
  mkdir -p "$HA_ROOT/etc/ssl/certs" "$HA_DIR/pip-cache" "$HA_ROOT/root/.cache/pip"
  cp -L /etc/resolv.conf "$HA_ROOT/etc/resolv.conf" 2>/dev/null || true
  if [ -f "$ca" ]; then
    cp -L "$ca" "$HA_ROOT/etc/ssl/host-ca.crt"
  elif [ ! -f "$HA_ROOT/etc/ssl/host-ca.crt" ]; then
    # No host bundle: the root's own (debootstrap includes ca-certificates).
    ln -sf certs/ca-certificates.crt "$HA_ROOT/etc/ssl/host-ca.crt"
  fi
  unshare --mount --propagation private -- /bin/sh -euc '
    root=$1; cache=$2; shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs tmpfs "$root/tmp"
    mount --bind "$cache" "$root/root/.cache/pip"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TZ=UTC \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      PIP_CERT=/etc/ssl/host-ca.crt SSL_CERT_FILE=/etc/ssl/host-ca.crt \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
      "$@"
  ' in_root "$HA_ROOT" "$HA_DIR/pip-cache" "$@"
}
