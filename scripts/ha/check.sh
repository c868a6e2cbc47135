#!/usr/bin/env bash
# glance's MQTT discovery in a real Home Assistant: installs it (scripts/ha/install.sh), starts a
# mosquitto and Home Assistant on free loopback ports, onboards it and adds its MQTT integration
# the way a user's clicks would (the same REST calls its frontend makes), then
# scripts/ha/check.py runs `glance run --mqtt` and checks what Home Assistant made of it.
#
#   scripts/ha/check.sh [SCREENSHOT.png]
#
# With SCREENSHOT, a headless Chromium (as tests/browser) logs in and saves the device page.
# Not part of scripts/test.sh (a first install downloads ~1.3 GB); tests/mqtt.rs checks the same
# payloads against Home Assistant's documented schema on every run. Exit 0 when every check
# passed, 3 after a loud SKIPPED when Home Assistant cannot be installed here, 1 otherwise.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$HA_REPO"
SHOT="${1:-}"
[ -z "$SHOT" ] || SHOT="$(realpath -m "$SHOT")"

scripts/ha/install.sh || exit $?
if ! command -v mosquitto >/dev/null; then
  ha_say "installing mosquitto"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } >/dev/null \
    || ha_skip "cannot install mosquitto"
fi
cargo build --locked --bin glance >&2
GLANCE="${CARGO_TARGET_DIR:-$HA_REPO/target}/debug/glance"
PY=$(scripts/python-env.sh selenium==4.38.0)

# Each run gets a fresh Home Assistant config dir inside the root (as the root sees it: $RUN_IN).
RUN_IN="/var/lib/glance-ha/run-$$"
RUN="$HA_ROOT$RUN_IN"
mkdir -p "$RUN"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MQ_PORT=$(free_port); HA_PORT=$(free_port)
cleanup() {
  pkill -TERM -f "hass --config $RUN_IN" 2>/dev/null || true
  [ -n "${MQ_PID:-}" ] && kill "$MQ_PID" 2>/dev/null || true
  sleep 1
  pkill -KILL -f "hass --config $RUN_IN" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' \
  "$MQ_PORT" > "$RUN/mosquitto.conf"
mosquitto -c "$RUN/mosquitto.conf" 2> "$RUN/mosquitto.log" &
MQ_PID=$!

# The least Home Assistant that has a frontend and MQTT (no default_config: no Bluetooth, no
# zeroconf, nothing that reaches for hardware or the internet). Warnings from MQTT are what the
# checks read in the log, so its logger is at debug.
cat > "$RUN/configuration.yaml" <<EOF
homeassistant:
  name: glance check
  time_zone: UTC
  unit_system: metric
  country: GB
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: $HA_PORT
frontend:
config:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: debug
EOF
ha_say "starting Home Assistant $HA_VERSION on 127.0.0.1:$HA_PORT, mosquitto on $MQ_PORT"
# --skip-pip: everything it needs was installed by install.sh; nothing is fetched at run time.
in_root "$HA_VENV/bin/hass" --config "$RUN_IN" --skip-pip --log-file "$RUN_IN/home-assistant.log" \
  > "$RUN/hass.out" 2>&1 &

set +e
"$PY" scripts/ha/check.py --ha "http://127.0.0.1:$HA_PORT" --broker "127.0.0.1:$MQ_PORT" \
  --glance "$GLANCE" --log "$RUN/home-assistant.log" ${SHOT:+--screenshot "$SHOT"}
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  ha_say "FAILED; Home Assistant's log: $RUN/home-assistant.log"
  tail -n 30 "$RUN/hass.out" >&2 || true
  exit 1
fi
rm -rf "$RUN"
ha_say "every check passed"
