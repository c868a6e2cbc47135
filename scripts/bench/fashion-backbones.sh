#!/usr/bin/env bash
# Fashion-MNIST, full 60k train / 10k test (Debian's dataset-fashion-mnist), for each shipped
# backbone, plain and with augmented views: glance's head beside scikit-learn's
# LogisticRegression on the very same exported features (and views). Prints a Markdown table.
#
#   scripts/bench/fashion-backbones.sh [OUT_DIR]
#   env: BACKBONES="lite0 lite1 lite2"  AUGMENT=flip (or flip,crops; "" for plain only)
#        a backbone may name a resize mode after an @: "lite0@center-crop=1" (fit --resize)
#        ENGINE=tract (default) or ort (the same features, cosine 1.000000 on the test photos;
#        slower on the int8-weight files here: 30 against 73 images/s for Lite0 on 2 cores)
#        PER_CLASS=N: a stratified subset of N images a class in each split (default: all)
#
# Features are cached in OUT_DIR/cache (by backbone and view), so a second run only fits.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-target/bench-fashion-backbones}"
BACKBONES="${BACKBONES:-lite0 lite1 lite2}"
AUGMENT="${AUGMENT-flip}"
ENGINE="${ENGINE:-tract}"
sub=(); [ -n "${PER_CLASS:-}" ] && sub=(--per-class "$PER_CLASS")
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
[ -e "$DATA/train-images-idx3-ubyte.gz" ] || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq dataset-fashion-mnist; }
command -v /usr/bin/time >/dev/null || $SUDO apt-get install -y -qq time
PY=$(scripts/python-env.sh scikit-learn)
engine=()
if [ "$ENGINE" = ort ]; then
  engine=(--engine ort --ort-library "$(scripts/python-env.sh --ort-library)")
fi
cargo build --release --locked --bin glance-host >&2
H="${CARGO_TARGET_DIR:-target}/release/glance-host"
CACHE="$OUT/cache"
run() { # label, command…: stdout to OUT/label.out, "wall_s peak_kB" to OUT/label.time
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/$label.time" "$@" >"$OUT/$label.out" 2>"$OUT/$label.err" \
    || { cat "$OUT/$label.err" >&2; exit 1; }
}
views="${AUGMENT//crops/crop0.85-0,crop0.85-1,crop0.85-2,crop0.85-3}"
for b in $BACKBONES; do
  echo "== $b" >&2
  aug=(); [ -n "$AUGMENT" ] && aug=(--augment "$AUGMENT")
  net=(--backbone "${b%%@*}"); [ "$b" != "${b#*@}" ] && net+=(--resize "${b#*@}")
  run "$b-extract" "$H" extract "$DATA" "${sub[@]}" "${net[@]}" "${engine[@]}" --cache "$CACHE" -q \
    --export "$OUT/$b-export" "${aug[@]}"
  run "$b-fit-plain" "$H" fit "$DATA" "${sub[@]}" "${net[@]}" "${engine[@]}" --cache "$CACHE" -q \
    --out "$OUT/$b-plain.glance"
  run "$b-eval-plain" "$H" eval "$OUT/$b-plain.glance" "$DATA" "${engine[@]}" --cache "$CACHE" -q --format json
  "$PY" scripts/bench/fashion-sklearn.py "$OUT/$b-export" >"$OUT/$b-sklearn-plain.json"
  if [ -n "$AUGMENT" ]; then
    run "$b-fit-aug" "$H" fit "$DATA" "${sub[@]}" "${net[@]}" "${engine[@]}" --cache "$CACHE" -q \
      --out "$OUT/$b-aug.glance" "${aug[@]}"
    run "$b-eval-aug" "$H" eval "$OUT/$b-aug.glance" "$DATA" "${engine[@]}" --cache "$CACHE" -q --format json
    "$PY" scripts/bench/fashion-sklearn.py "$OUT/$b-export" --views "$views" >"$OUT/$b-sklearn-aug.json"
  fi
done
"$PY" - "$OUT" "$BACKBONES" "$AUGMENT" "$ENGINE" "${PER_CLASS:-}" <<'PY'
import json, os, sys
out, backbones, augment, engine, per = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5]
t = lambda k: [float(x) for x in open(f"{out}/{k}.time").read().split()[-2:]]
size = (f"a stratified subset, {per} train and {per} test images a class" if per
        else "60,000 train / 10,000 test")
print(f"Fashion-MNIST, {size}, {os.cpu_count()} cores, glance-host release build, "
      f"features extracted by {engine}.\n")
print("| backbone | training set | glance head | scikit-learn, same features (C matched) | Δ | 1-NN (store) | fit s | extract s (all views) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for b in backbones:
    for setting in ["plain"] + (["aug"] if augment else []):
        ev = json.load(open(f"{out}/{b}-eval-{setting}.out"))
        sk = json.load(open(f"{out}/{b}-sklearn-{setting}.json"))
        g, s = ev["accuracy"] * 100, sk["deep_sqrt_lr_matched_test_accuracy"] * 100
        name = "images" if setting == "plain" else f"images + {augment} views"
        ex = f"{t(b + '-extract')[0]:.0f}" if setting == "plain" else ""
        print(f"| {b} | {name} | {g:.2f}% | {s:.2f}% | {g - s:+.2f} | {ev['knn_accuracy'] * 100:.2f}% | "
              f"{t(f'{b}-fit-{setting}')[0]:.0f} | {ex} |")
PY
