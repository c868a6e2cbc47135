#!/usr/bin/env bash
# Few-shot enrolment with the on-device store alone (examples/few_shot.rs: the board's
# glance::Store, int8, nearest enrolled example), per backbone, on classes no bundle saw:
#  * Fashion-MNIST: 5-way over its last five classes (Sandal, Shirt, Sneaker, Bag, Ankle boot),
#    all 1000 test images of each, shots drawn from the training split;
#  * the real-photo set (scripts/bench/make-photo-set.py): 4-way, 20 test photos a class, shots
#    drawn from its 30 training photos.
# 1, 5 and 10 shots, mean and spread over 20 seeded draws. Prints a Markdown table.
#
#   scripts/bench/few-shot.sh [WORKDIR]   env BACKBONES="lite0 lite1 lite2", ENGINE=ort|tract,
#   FASHION_EXPORTS=DIR (a fashion-backbones.sh output: its <backbone>-export folders are reused)
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${1:-target/few-shot}"
BACKBONES="${BACKBONES:-lite0 lite1 lite2}"
ENGINE="${ENGINE:-ort}"
FASHION_EXPORTS="${FASHION_EXPORTS:-target/bench-fashion-backbones}"
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$WORK"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
[ -e "$DATA/train-images-idx3-ubyte.gz" ] || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq dataset-fashion-mnist; }
PY="$(scripts/python-env.sh scikit-image scikit-learn)"
engine=()
[ "$ENGINE" = ort ] && engine=(--engine ort --ort-library "$(scripts/python-env.sh --ort-library)")
cargo build --release --locked --bin glance-host --example few_shot >&2
H="${CARGO_TARGET_DIR:-target}/release/glance-host"
FS="${CARGO_TARGET_DIR:-target}/release/examples/few_shot"
[ -d "$WORK/photos/train" ] || "$PY" scripts/bench/make-photo-set.py "$WORK/photos" --train 30 --test 20 >&2
for b in $BACKBONES; do
  fx="$FASHION_EXPORTS/$b-export"
  if [ ! -s "$fx/test_features.npy" ]; then
    fx="$WORK/fashion-$b"
    "$H" extract "$DATA" --backbone "$b" "${engine[@]}" --cache "$WORK/cache" -q --export "$fx" >&2
  fi
  "$FS" "$fx" --classes 5,6,7,8,9 --shots 1,5,10 > "$WORK/$b-fashion.jsonl"
  "$H" extract "$WORK/photos" --backbone "$b" "${engine[@]}" --cache "$WORK/cache" -q \
    --export "$WORK/photos-$b" >&2
  "$FS" "$WORK/photos-$b" --shots 1,5,10 > "$WORK/$b-photos.jsonl"
done
python3 - "$WORK" $BACKBONES <<'PY'
import json, sys
work, backbones = sys.argv[1], sys.argv[2:]
print("On-device store alone (int8, nearest enrolled example), 20 seeded draws of the shots; "
      "accuracy mean ± standard deviation.\n")
print("| backbone | data | ways | 1-shot | 5-shot | 10-shot |\n|---|---|---:|---:|---:|---:|")
for b in backbones:
    for data, name in (("fashion", "Fashion-MNIST, 5 held-out classes"), ("photos", "real-photo set")):
        rows = {r["shots"]: r for r in map(json.loads, open(f"{work}/{b}-{data}.jsonl"))}
        cell = lambda k: f"{rows[k]['accuracy_mean']*100:.1f}% ± {rows[k]['accuracy_sd']*100:.1f}"
        ways = rows[1]["ways"]
        print(f"| {b} | {name} | {ways} | {cell(1)} | {cell(5)} | {cell(10)} |")
PY
