#!/bin/sh
# Runs inside the camera VM (scripts/ci/camera-vm.sh): loads the test camera drivers and runs
# the camera tests of the integration test binary $1. Exit 3 when a driver cannot be loaded.
set -eu
tests_bin="$1"
# vivid: one instance with a video capture node only (node_types bit 0), single-planar formats.
modprobe vivid n_devs=1 node_types=0x1 multiplanar=1 || exit 3
# v4l2loopback: one device that shows as a capture device once ffmpeg writes to it (the same
# options as LOOPBACK_OPTIONS in tests/cameras.rs, which removes and loads it again).
modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="glance loopback" || exit 3
v4l2-ctl --list-devices
cd /tmp
# --nocapture: the figures (mean |Δ| against ffmpeg, CPU while waiting, time to resume) go to
# the CI log.
exec "$tests_bin" --ignored --test-threads 1 --nocapture cameras::
