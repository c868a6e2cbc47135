#!/usr/bin/env bash
# The project's Python environment for references and benchmarks: a venv in target/bench-venv with
# onnxruntime (pinned: its libonnxruntime.so is also what `--engine ort` loads in the tests),
# numpy and pillow, plus any extra packages given as arguments (e.g. scikit-learn, faiss-cpu).
#
#   scripts/python-env.sh [PACKAGE…]        prints the venv's python on stdout
#   scripts/python-env.sh --ort-library     prints the path of onnxruntime's libonnxruntime.so
#
# Creates or completes the venv when needed (PyPI); cheap when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CARGO_TARGET_DIR:-target}/bench-venv"
ORT_VERSION=1.32.0
say() { printf '\033[1mpython-env:\033[0m %s\n' "$*" >&2; }

want_lib=0
extra=()
for arg in "$@"; do
  case "$arg" in
    --ort-library) want_lib=1 ;;
    *) extra+=("$arg") ;;
  esac
done

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV" >&2 || {
    say "python3 -m venv failed (Debian: apt-get install python3-venv)"
    exit 1
  }
fi
PY="$(cd "$VENV" && pwd)/bin/python"
need=()
"$PY" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null \
  || need+=("onnxruntime==$ORT_VERSION")
"$PY" -c "import numpy" 2>/dev/null || need+=(numpy)
"$PY" -c "import PIL" 2>/dev/null || need+=(pillow)
for pkg in "${extra[@]}"; do
  "$VENV/bin/pip" show -q "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  say "pip install ${need[*]}"
  "$VENV/bin/pip" install -q "${need[@]}" >&2
fi

if [ "$want_lib" = 1 ]; then
  lib=$("$PY" -c "
import glob, os, onnxruntime
libs = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))
print(os.path.abspath(libs[0]) if libs else '')")
  [ -n "$lib" ] || { say "no libonnxruntime.so in the onnxruntime wheel"; exit 1; }
  echo "$lib"
else
  echo "$PY"
fi
