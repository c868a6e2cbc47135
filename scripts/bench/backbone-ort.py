#!/usr/bin/env python3
"""onnxruntime's side of scripts/bench/backbone.sh: time one model on one image, 1 thread.

Preprocessing is glance's (centre crop side/(side+32), bilinear, (x-127)/128), done once with PIL; only
session.run is timed, as examples/latency.rs times only the backbone. Prints one JSON object.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def main(model, image, runs, warmup):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    # The model's own input side (Lite0 224, Lite1 240, Lite2 260) and its evaluation crop.
    size = int(s.get_inputs()[0].shape[2])
    img = Image.open(image).convert("RGB")
    w, h = img.size
    side = int(min(w, h) * size / (size + 32) + 0.5)
    x, y = (w - side) // 2, (h - side) // 2
    img = img.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
    t = ((np.asarray(img, np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()
    for _ in range(warmup):
        s.run(None, {"input": t})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {"input": t})
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    pct = lambda p: times[round((len(times) - 1) * p)]
    print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "model": model, "runs": runs,
                      "load_ms": load_ms, "median_ms": pct(0.5), "p10_ms": pct(0.1),
                      "p90_ms": pct(0.9), "min_ms": times[0]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
