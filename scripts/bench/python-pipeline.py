#!/usr/bin/env python3
"""Python side of scripts/bench/run.sh: the frames, the Python reference pipeline, and the table.

  bench_py.py frames OUT N          N 640x480 JPEG frames cut from the fixture photos, in class
                                    folders OUT/<photo>/NNN.jpg (a dataset glance-host can fit)
  bench_py.py pipeline MODEL THREADS STORE_ROWS CLASSES FRAME...
                                    the reference pipeline, one JSON object: PIL decode + resize,
                                    numpy normalise, onnxruntime, numpy head (signed sqrt, L2,
                                    affine, softmax) and brute-force cosine kNN over STORE_ROWS
  bench_py.py table RESULTS.jsonl   the Markdown table for BENCHMARKS.md

The frames are real photos (tests/fixtures/photos, from the scikit-image and scikit-learn wheels)
seen as a camera would: a random 4:3 window of 45-100% of the photo, sometimes mirrored, scaled
to 640x480 and saved as JPEG quality 85 (seeded, so every run times the same frames).
"""
import glob
import io
import json
import os
import random
import statistics
import sys
import time


def frames(out, n):
    from PIL import Image

    photos = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures",
                                           "photos", "*")))
    rng = random.Random(20261128)
    images = [(os.path.splitext(os.path.basename(p))[0], Image.open(p).convert("RGB"))
              for p in photos]
    for i in range(n):
        name, img = images[i % len(images)]
        w, h = img.size
        scale = rng.uniform(0.45, 1.0)
        cw = min(w, int(h * 4 / 3)) * scale
        ch = cw * 3 / 4
        x = rng.uniform(0, w - cw)
        y = rng.uniform(0, h - ch)
        frame = img.crop((int(x), int(y), int(x + cw), int(y + ch))).resize((640, 480),
                                                                           Image.BILINEAR)
        if rng.random() < 0.5:
            frame = frame.transpose(Image.FLIP_LEFT_RIGHT)
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        frame.save(os.path.join(folder, f"{i:03d}.jpg"), quality=85)


def pipeline(model, threads, store_rows, classes, paths):
    threads = int(threads)
    # numpy's BLAS must use the same threads as onnxruntime (set before numpy loads).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import numpy as np
    import onnxruntime as ort
    from PIL import Image

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    # A head and a store of the bundle's shapes; the arithmetic does not depend on the values.
    dim = 1280
    weights = rng.standard_normal((int(classes), dim)).astype(np.float32)
    bias = rng.standard_normal(int(classes)).astype(np.float32)
    store = rng.standard_normal((int(store_rows), dim)).astype(np.float32)
    store /= np.linalg.norm(store, axis=1, keepdims=True)
    blobs = [open(p, "rb").read() for p in paths]

    def one(blob):
        t0 = time.perf_counter()
        img = Image.open(io.BytesIO(blob)).convert("RGB")
        w, h = img.size
        side = int(min(w, h) * 0.875 + 0.5)
        x, y = (w - side) // 2, (h - side) // 2
        img = img.crop((x, y, x + side, y + side)).resize((224, 224), Image.BILINEAR)
        t1 = time.perf_counter()
        tensor = ((np.asarray(img, np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        tensor = np.ascontiguousarray(tensor)
        t2 = time.perf_counter()
        features = session.run(None, {input_name: tensor})[0].reshape(-1)
        t3 = time.perf_counter()
        f = np.sign(features) * np.sqrt(np.abs(features))
        f /= max(np.linalg.norm(f), 1e-12)
        z = weights @ f + bias
        p = np.exp(z - z.max())
        p /= p.sum()
        best = int(p.argmax())
        q = features / max(np.linalg.norm(features), 1e-12)
        nearest = int((1.0 - store @ q).argmin())
        t4 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), best, nearest

    for blob in blobs[:10]:
        one(blob)
    rows = []
    wall = time.perf_counter()
    for blob in blobs:
        rows.append(one(blob)[0])
    wall = time.perf_counter() - wall
    med = lambda i: statistics.median(r[i] for r in rows) * 1e3
    print(json.dumps({
        "pipeline": "python", "engine": f"onnxruntime {ort.__version__}", "threads": threads,
        "model": os.path.basename(model), "frames": len(rows),
        "frames_per_second": len(rows) / wall,
        "stages": {"decode": {"p50_ms": med(0)}, "preprocess": {"p50_ms": med(1)},
                   "backbone": {"p50_ms": med(2)}, "head": {"p50_ms": med(3)},
                   "total": {"p50_ms": med(4)}},
    }))


def table(results):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    names = {"tract": "(a) glance, tract", "ort": "(b) glance, onnxruntime",
             "python": "(c) Python: PIL + onnxruntime + numpy"}
    out = ["| model | threads | pipeline | decode + resize | backbone | head + kNN | total "
           "| frames/s | ÷ (c) | ÷ ORT backbone |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    # Each cell: the mean over the passes of the per-pass median (ms); total also shows each pass.
    def cell(group, stage):
        return statistics.mean(r["stages"][stage]["p50_ms"] for r in group)

    runs_of_glance_run = [r for r in rows if r["pipeline"].startswith("run-")]
    rows = [r for r in rows if not r["pipeline"].startswith("run-")]
    for model, threads in sorted({(r["model"], r["threads"]) for r in rows}):
        runs = {p: [r for r in rows if (r["model"], r["threads"], r["pipeline"]) ==
                    (model, threads, p)] for p in ("tract", "ort", "python")}
        py = runs["python"]
        ref_total = cell(py, "total") if py else None
        ort_backbone = cell(py, "backbone") if py else None
        for p, group in runs.items():
            if not group:
                continue
            total = cell(group, "total")
            passes = " / ".join(f"{r['stages']['total']['p50_ms']:.1f}" for r in group)
            fps = statistics.mean(r["frames_per_second"] for r in group)
            ratio = f"{total / ref_total:.2f}" if ref_total else "–"
            vs_ort = f"{total / ort_backbone:.2f}" if ort_backbone else "–"
            out.append(f"| {model} | {threads} | {names[p]}, {group[0]['engine']} "
                       f"| {cell(group, 'decode') + cell(group, 'preprocess'):.2f} "
                       f"| {cell(group, 'backbone'):.2f} | {cell(group, 'head'):.3f} "
                       f"| **{total:.2f}** ({passes}) | {fps:.1f} | {ratio} | {vs_ort} |")
    print("\n".join(out))
    if not runs_of_glance_run:
        return
    # Throughput: ms per frame = 1000 / frames/s of `glance run` over the same files (file
    # reading and the JSON sink included), beside (c)'s sequential total and ORT's backbone.
    out = ["", "| model | threads | glance run | ms/frame, decode ahead | ms/frame, inline "
           "| ahead ÷ (c) total | ahead ÷ ORT backbone |", "|---|---|---|---|---|---|---|"]
    for model, threads, engine in sorted({(r["model"], r["threads"], r["engine"])
                                          for r in runs_of_glance_run}):
        def ms_per_frame(mode):
            group = [r for r in runs_of_glance_run if (r["model"], r["threads"], r["engine"],
                     r["pipeline"]) == (model, threads, engine, f"run-{mode}")]
            return statistics.mean(1e3 / r["frames_per_second"] for r in group) if group else None
        ahead, inline = ms_per_frame("ahead"), ms_per_frame("inline")
        py = [r for r in rows if (r["model"], r["threads"], r["pipeline"]) ==
              (model, threads, "python")]
        ratio = lambda stage: f"{ahead / cell(py, stage):.2f}" if py and ahead else "–"
        fmt = lambda v: f"{v:.2f}" if v else "–"
        out.append(f"| {model} | {threads} | {engine} | **{fmt(ahead)}** | {fmt(inline)} "
                   f"| {ratio('total')} | {ratio('backbone')} |")
    print("\n".join(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"frames": lambda: frames(args[0], int(args[1])),
     "pipeline": lambda: pipeline(args[0], args[1], args[2], args[3], args[4:]),
     "table": lambda: table(args[0])}[cmd]()
