#!/usr/bin/env bash
# Fashion-MNIST, full 60k train / 10k test (Debian's dataset-fashion-mnist): extraction throughput,
# fit time, peak memory and accuracy of the deep and raw heads, beside scikit-learn's
# LogisticRegression on the very same exported features. Prints a Markdown table.
# Usage: scripts/bench/fashion.sh [OUT_DIR]   (extraction takes ~20-30 min on 2 cores; cached after)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-target/bench-fashion}"
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
[ -e "$DATA/train-images-idx3-ubyte.gz" ] || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get update -qq; $sudo apt-get install -y -qq dataset-fashion-mnist time; }
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time; }
VENV=target/bench-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q onnxruntime numpy pillow scikit-learn
cargo build --release --bin glance-host >&2
H="${CARGO_TARGET_DIR:-target}/release/glance-host"
CACHE="$OUT/cache"
measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/$label.time" "$@" > "$OUT/$label.out" 2> "$OUT/$label.err" || { cat "$OUT/$label.err"; exit 1; }
}
rm -rf "$CACHE"
measure extract "$H" extract "$DATA" --cache "$CACHE" --export "$OUT/export" -q
measure extract-cached "$H" extract "$DATA" --cache "$CACHE" -q
measure fit-deep "$H" fit "$DATA" --cache "$CACHE" -q --out "$OUT/deep.glance"
measure eval-deep "$H" eval "$OUT/deep.glance" "$DATA" --cache "$CACHE" -q --format json
measure fit-raw "$H" fit "$DATA" --features raw -q --out "$OUT/raw.glance"
measure eval-raw "$H" eval "$OUT/raw.glance" "$DATA" -q --format json
"$VENV/bin/python" scripts/bench/fashion-sklearn.py "$OUT/export" "$DATA" > "$OUT/sklearn.json"
"$VENV/bin/python" - "$OUT" <<'PY'
import json, sys, os
o = sys.argv[1]
t = lambda k: [float(x) for x in open(f"{o}/{k}.time").read().split()[-2:]]
ev = lambda k: json.load(open(f"{o}/eval-{k}.out"))
sk = json.load(open(f"{o}/sklearn.json"))
d, r = ev("deep"), ev("raw")
ex, exc = t("extract"), t("extract-cached")
print(f"Fashion-MNIST {sk['train']} train / {sk['test']} test, {os.cpu_count()} cores; glance-host release build.\n")
print("| step | wall s | peak RSS MB | result |\n|---|---|---|---|")
print(f"| extract deep features (cold cache) | {ex[0]:.0f} | {ex[1]/1024:.0f} | {70000/ex[0]:.1f} images/s |")
print(f"| extract again (cache hit) | {exc[0]:.1f} | {exc[1]/1024:.0f} | |")
fd, fr = t("fit-deep"), t("fit-raw")
print(f"| fit deep head (cached features) | {fd[0]:.0f} | {fd[1]/1024:.0f} | |")
print(f"| fit raw-pixel head (32×32 RGB) | {fr[0]:.0f} | {fr[1]/1024:.0f} | |")
print()
print("| model | test accuracy | macro F1 | 1-NN accuracy (store) |\n|---|---|---|---|")
print(f"| glance deep head | {d['accuracy']*100:.2f}% | {d['macro_f1']:.4f} | {d['knn_accuracy']*100:.2f}% |")
print(f"| glance raw-pixel head | {r['accuracy']*100:.2f}% | {r['macro_f1']:.4f} | {r['knn_accuracy']*100:.2f}% |")
print(f"| scikit-learn {sk['sklearn']} LogisticRegression, same deep features (L2-normalised) | {sk['deep_lr_test_accuracy']*100:.2f}% | | |")
print(f"| scikit-learn LogisticRegression, raw 784 pixels | {sk['raw_lr_test_accuracy']*100:.2f}% | | |")
PY
