#!/usr/bin/env bash
# Honesty on a few dozen real photos (BENCHMARKS.md "Small data and open set"): builds the
# real-photo set (scripts/bench/make-photo-set.py: 4 classes x 50 train + 20 test, 96 images of no
# class), fits a bundle on the first 30 training photos of each class with the defaults and
# evaluates it with --unknown; then the learning curve: accuracy, known images rejected and
# unknowns rejected against training photos per class (2, 5, 10, 20, 30, 50 on the photo set
# and on Fashion-MNIST, whose test split is a fixed 100 a class and whose "unknowns" are two
# held-out classes, Bag and Ankle boot). 1 photo a class is not a fit (fit needs 2 to
# calibrate) and is printed as such.
# Prints Markdown tables. Usage: scripts/bench/open-set.sh [WORKDIR]; env BACKBONE (a shipped
# backbone for `fit --backbone`, default lite0) and CURVES=0 (the first table only).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK="${1:-target/open-set}"
mkdir -p "$WORK"
PY="$(scripts/python-env.sh scikit-image scikit-learn)"
# Accuracy figures, not timings: the dev build (dependencies optimised, as the tests use) will do
# and shares the tests' build.
cargo build -q --locked --bin glance-host
HOST="${CARGO_TARGET_DIR:-target}/debug/glance-host"
CACHE="$WORK/cache"
BACKBONE="${BACKBONE:-lite0}"

[ -d "$WORK/photos/train" ] || "$PY" scripts/bench/make-photo-set.py "$WORK/photos" --train 50
"$PY" scripts/bench/make-fashion-subsets.py "$WORK/fashion" >/dev/null

# One fit + eval; prints a JSON object with the figures.
run() { # DATA UNKNOWN_DIR BUNDLE
  "$HOST" fit "$1" --out "$3" --cache "$CACHE" --backbone "$BACKBONE" -q >"$3.fit.txt" 2>"$3.fit.err"
  "$HOST" eval "$3" "$1" --unknown "$2" --cache "$CACHE" -q --format json
}

# DATA/train/<class> with the first N training files of ROOT (symlinks), DATA/test -> ROOT/test.
subset() { # ROOT N DATA
  local root="$1" n="$2" d="$3"
  rm -rf "$d"; mkdir -p "$d/train"
  ln -s "$(realpath "$root/test")" "$d/test"
  for cls in "$root"/train/*/; do
    c=$(basename "$cls"); mkdir -p "$d/train/$c"
    ls "$cls" | sort | head -n "$n" | while read -r f; do ln -s "$(realpath "$cls/$f")" "$d/train/$c/$f"; done
  done
}

echo "### Real-photo set, 30 photos a class, default settings, $BACKBONE ($(git rev-parse --short HEAD))"
echo
subset "$WORK/photos" 30 "$WORK/photos-30"
e=$(run "$WORK/photos-30" "$WORK/photos/unknown" "$WORK/photos-30-$BACKBONE.glance")
"$PY" - "$e" <<'PYEOF'
import json, sys
e = json.loads(sys.argv[1]); o = e["open_set"]
print("| known test images | accuracy | known falsely rejected | unknowns | unknowns rejected | AUROC (rule) | AUROC (confidence) | AUROC (distance) | ECE |")
print("|---|---|---|---|---|---|---|---|---|")
print(f"| {e['examples']} | {e['accuracy']*100:.1f}% | {o['known_rejected']*100:.1f}% | {o['unknown_examples']} | "
      f"{o['unknown_rejected']*100:.1f}% | {o['auroc']:.3f} | {o['auroc_score']:.3f} | {o['auroc_distance']:.3f} | "
      f"{e['expected_calibration_error']:.3f} |")
PYEOF
[ "${CURVES:-1}" = 0 ] && exit 0
echo
echo "### Learning curve: training photos per class ($BACKBONE)"
echo
echo "| data | per class | calibration | accuracy | known falsely rejected | unknowns rejected | AUROC (rule) |"
echo "|---|---|---|---|---|---|---|"
curve() { # NAME LABEL ROOT N...
  local name="$1" label="$2" root="$3"; shift 3
  for n in "$@"; do
    local d="$WORK/curve-$name-$n-$BACKBONE"
    subset "$root" "$n" "$d"
    e=$(run "$d" "$root/unknown" "$d.glance")
    method=$(grep -o 'calibrated by [0-9]*-fold cross-validation\|validated on [0-9]*' "$d.glance.fit.txt" | head -1)
    "$PY" - "$e" "$label" "$n" "$method" <<'PYEOF'
import json, sys
e = json.loads(sys.argv[1]); o = e["open_set"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {e['accuracy']*100:.1f}% | {o['known_rejected']*100:.1f}% | "
      f"{o['unknown_rejected']*100:.1f}% | {o['auroc']:.3f} |")
PYEOF
  done
}
echo "| real photos | 1 | not possible: fit needs 2 images a class (one to fit, one to calibrate) | | | | |"
curve photos "real photos" "$WORK/photos" 2 5 10 20 30 50
echo "| Fashion-MNIST | 1 | not possible: fit needs 2 images a class | | | | |"
curve fashion Fashion-MNIST "$WORK/fashion" 2 5 10 20 50
