#!/usr/bin/env python3
"""Where tract still loses to onnxruntime, layer by layer, in one run.

Times every node of the backbone under both engines, 1 thread, and groups the nodes by layer of
EfficientNet-Lite0 (stem; per block: expansion, depthwise, projection; head convolution;
classifier): tract through examples/tract_profile (tract's own per-node hook, the graph exactly as
glance's tract engine prepares it), onnxruntime through its built-in profiler (per-kernel times
of the session as glance's ort engine configures it: all graph optimisations, 1 intra-op
thread, no spinning). Each engine's node times are medians over the runs. Prints a Markdown
table for BENCHMARKS.md. Both profilers add a little per-node overhead; compare layers, not the
totals with a plain run's.

    scripts/bench/compare-layers.py [--runs 40] [--model models/efficientnet_lite0_fp32.onnx]

Needs the project's venv (scripts/python-env.sh: onnxruntime, numpy); builds the example.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def layer(name):
    """The layer a node belongs to, from its name (tract's node names and onnxruntime's output
    names both keep the exporter's module paths)."""
    b = re.search(r"/_blocks\.(\d+)/", name)
    if b:
        n = int(b.group(1))
        if "_depthwise_conv" in name or "/_swish_1/" in name or (n == 0 and "/_swish/" in name):
            part = "depthwise"
        elif "_expand_conv" in name or "/_swish/" in name:
            part = "expand"
        else:
            part = "project"
        return f"block {n:2d} {part}"
    if "_conv_stem" in name or name.startswith("/_swish/"):
        return "stem"
    if "_conv_head" in name or name.startswith("/_swish_1/"):
        return "head conv"
    if "_fc" in name:
        return "classifier"
    return "other (pooling, layout)"


def tract(model, runs):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["cargo", "build", "--release", "--example", "tract_profile"], cwd=root,
                   check=True, stdout=sys.stderr)
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")),
                          "release", "examples", "tract_profile")
    out = subprocess.run([binary, model, "--runs", str(runs), "--top", "100000"],
                         check=True, capture_output=True, text=True).stdout
    times = collections.Counter()
    for line in out.splitlines():
        if line.startswith("| /"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            times[layer(cells[0])] += float(cells[2])
    return out.splitlines()[0], times


def onnxruntime(model, runs):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.gettempdir(), "glance-compare-layers")
    session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    warmup = 10
    for _ in range(warmup + runs):
        session.run(None, {name: x})
    path = session.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"][: -len("_kernel_time")]].append(e["dur"])
    times = collections.Counter()
    for node, durations in per_node.items():
        times[layer(node)] += statistics.median(durations[warmup:]) / 1e3
    return f"onnxruntime {ort.__version__}", times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--model", default="models/efficientnet_lite0_fp32.onnx")
    args = ap.parse_args()
    header, t = tract(args.model, args.runs)
    engine, o = onnxruntime(args.model, args.runs)
    print(f"{args.model}, 1 thread, node medians over {args.runs} runs; tract: {header.split(': ', 1)[1]}")
    print()
    print(f"| layer | tract ms | {engine} ms | tract − onnxruntime ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    layers = sorted(set(t) | set(o), key=lambda l: (not l.startswith("stem"), l))
    for l in layers:
        a, b = t.get(l, 0.0), o.get(l, 0.0)
        ratio = f"{a / b:.2f}" if b > 0 else "–"
        print(f"| {l} | {a:.3f} | {b:.3f} | {a - b:+.3f} | {ratio} |")
    ta, tb = sum(t.values()), sum(o.values())
    print(f"| **all nodes** | **{ta:.2f}** | **{tb:.2f}** | **{ta - tb:+.2f}** | **{ta / tb:.2f}** |")


if __name__ == "__main__":
    main()
