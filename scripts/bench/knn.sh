#!/usr/bin/env bash
# kNN search over a 10k x 1280 store, one query at a time, one thread: glance's int8 store (SIMD
# int8 dot products) and f32 store beside faiss-cpu (IndexFlatIP, and its 8-bit scalar quantizer)
# on the same vectors, in one run. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/bench/knn.sh [ROWS] [QUERIES]      defaults 10000 200
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${1:-10000}"
QUERIES="${2:-200}"
DIM=1280
DIR="${CARGO_TARGET_DIR:-target}/bench-knn"
PY=$(scripts/python-env.sh faiss-cpu)
cargo build --release --locked --example knn_bench >&2
mkdir -p "$DIR"
G=$("${CARGO_TARGET_DIR:-target}/release/examples/knn_bench" --rows "$ROWS" --dim "$DIM" --queries "$QUERIES" --write "$DIR")
F=$("$PY" scripts/bench/knn-faiss.py "$DIR" "$ROWS" "$DIM")
"$PY" - "$G" "$F" <<'PY'
import json, sys
g, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])
base = f["flat_ip_f32"]["median_ms"]
rows = [
    ("glance int8 store (int8 SIMD dot)", g["i8"]["median_ms"], g["i8"]["store_bytes"], g["i8_top1_agrees_with_f32"]),
    ("glance f32 store", g["f32"]["median_ms"], g["f32"]["store_bytes"], 1.0),
    (f"faiss {f['faiss']} IndexFlatIP (f32)", base, g["f32"]["store_bytes"], f["flat_ip_f32"]["top1_agrees_with_glance_f32"]),
    (f"faiss {f['faiss']} SQ8 inner product", f["sq8_ip"]["median_ms"], g["i8"]["store_bytes"], f["sq8_ip"]["top1_agrees_with_glance_f32"]),
]
s = g["shape"]
print(f"{s['rows']} x {s['dim']} store, {s['queries']} single queries, k = 1, 1 thread ({g['build_target']})\n")
print("| search | median ms / query | ÷ faiss flat | store MB | top-1 = exact f32 |")
print("|---|---|---|---|---|")
for name, ms, size, agree in rows:
    print(f"| {name} | {ms:.3f} | {ms / base:.2f} | {size / 1e6:.1f} | {agree * 100:.1f}% |")
PY
