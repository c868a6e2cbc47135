#!/usr/bin/env python3
"""Measure which tract-linalg f32 matmul kernel is fastest for each matmul of the backbone.

How the table in src/mmm.rs (TUNED) is made. For each candidate kernel, runs glance's
examples/tract_profile.rs (features only, every node) with `--matmul <kernel>` (that kernel
wherever it fits) and with `--matmul tract` (tract's own choice), for several rounds, then prints per layer the median
time of its matmul plus its activation packing under each kernel, and per (m, k, n) shape the
kernel that wins over all layers of that shape, kept only when it beats tract's choice by more
than 5% in every round. Standard library only; builds the example in release mode first.
From the crate's directory:

    scripts/tune-mmm.py [--rounds 3] [--runs 40] [--model ../../models/efficientnet_lite0_fp32.onnx]
"""
import argparse
import collections
import os
import re
import statistics
import subprocess
import sys

KERNELS = [
    "avx512_mmm_f32_16x12", "avx512_mmm_f32_16x8", "avx512_mmm_f32_32x6", "avx512_mmm_f32_32x5",
    "avx512_mmm_f32_48x4", "avx512_mmm_f32_64x3", "avx512_mmm_f32_80x2",
    "fma_mmm_f32_16x6", "fma_mmm_f32_24x4", "fma_mmm_f32_32x3", "fma_mmm_f32_40x2",
    "glance_avx512_rows_f32_24x16", "glance_avx512_cols_f32_32x8", "glance_avx512_cols_f32_32x7",  # this crate's, src/rowmmm.rs
]
TRACT = "tract"  # --matmul tract: tract's own choice


def layer_of(node):
    """Groups a matmul with the packing of its activations: both carry the block's name."""
    # The stem's matmul carries its ReLU6's name (/_swish/Clip...) once tract fuses the two.
    block = re.match(r"/(_blocks\.\d+|_conv_stem|_swish_1|_swish(?=/)|_conv_head)", node)
    if not block:
        return node
    b = block.group(1)
    if b.startswith("_blocks"):
        expand = ("_expand_conv" in node or "_swish/Clip" in node) and not b.endswith(".0")
        return b + (":expand" if expand else ":project")
    return ("_conv_stem" if b == "_swish" else b) + (":head" if b in ("_swish_1", "_conv_head") else ":stem")


def profile(binary, model, runs, kernel):
    out = subprocess.run(
        [binary, model, "--runs", str(runs), "--matmul", kernel, "--features-only", "--top", "100000"],
        check=True, capture_output=True, text=True,
    ).stdout
    times, shapes = collections.Counter(), {}
    for line in out.splitlines():
        if not line.startswith("| /"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        node, op, ms = cells[0], cells[1], float(cells[2])
        if op not in ("OptMatMul", "OptMatMulPack"):
            continue
        layer = layer_of(node)
        times[layer] += ms
        m = re.search(r"Mult: m:(\d+) k:(\d+) n:(\d+)", cells[4])
        if m:
            shapes[layer] = tuple(map(int, m.groups()))
    return out.splitlines()[0], times, shapes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--model", default="../../models/efficientnet_lite0_fp32.onnx")
    args = ap.parse_args()
    # The model path is relative to the crate's directory; the example is glance's, built from
    # the workspace root.
    crate = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    model = os.path.join(crate, args.model)
    root = os.path.join(crate, "..", "..")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "tract_profile"], cwd=root, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    binary = os.path.join(target, "release", "examples", "tract_profile")

    # samples[layer][kernel] = [ms per round]
    samples = collections.defaultdict(lambda: collections.defaultdict(list))
    shapes, totals = {}, collections.defaultdict(list)
    for r in range(args.rounds):
        for kernel in [TRACT] + KERNELS:
            head, times, sh = profile(binary, model, args.runs, kernel)
            shapes.update(sh)
            totals[kernel].append(float(re.search(r"median run ([\d.]+) ms", head).group(1)))
            for layer, ms in times.items():
                samples[layer][kernel].append(ms)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print("| layer | m, k, n | tract's choice ms | fastest | ms |")
    print("|---|---|---:|---|---:|")
    by_shape = collections.defaultdict(lambda: collections.defaultdict(lambda: [0.0] * args.rounds))
    for layer, per_kernel in sorted(samples.items(), key=lambda x: -statistics.median(x[1][TRACT])):
        med = {k: statistics.median(v) for k, v in per_kernel.items()}
        best = min(med, key=med.get)
        print(f"| {layer} | {shapes.get(layer, '')} | {med[TRACT]:.3f} | {best} | {med[best]:.3f} |")
        if layer in shapes:
            for k, v in per_kernel.items():
                for i, ms in enumerate(v):
                    by_shape[shapes[layer]][k][i] += ms

    print("\nwhole graph, median run ms per round:")
    for k, v in sorted(totals.items(), key=lambda x: statistics.median(x[1])):
        print(f"  {k:24} {' '.join(f'{x:.2f}' for x in v)}")

    print("\nproposed TUNED entries (beat tract's choice by > 5% in every round):")
    for shape, per_kernel in by_shape.items():
        tract = per_kernel[TRACT]
        best = min(per_kernel, key=lambda k: statistics.median(per_kernel[k]))
        if best != TRACT and all(b < 0.95 * t for b, t in zip(per_kernel[best], tract)):
            gain = statistics.median(tract) - statistics.median(per_kernel[best])
            print(f'    (({shape[0]}, {shape[1]}, {shape[2]}), "{best}"), // -{gain:.3f} ms')


if __name__ == "__main__":
    main()
