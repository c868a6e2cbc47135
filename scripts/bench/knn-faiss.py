#!/usr/bin/env python3
"""faiss's side of scripts/bench/knn.sh: the same store and queries (written by
`cargo run --release --example knn_bench -- --write DIR`), searched one query at a time (k=1, one thread) by
faiss IndexFlatIP (exact, f32) and IndexScalarQuantizer QT_8bit (int8 codes), on unit vectors
(inner product = cosine similarity, as glance searches). Prints one JSON object."""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import faiss  # noqa: E402
import numpy as np  # noqa: E402


def main(folder, rows, dim):
    rows, dim = int(rows), int(dim)
    store = np.fromfile(os.path.join(folder, "store.f32"), "<f4").reshape(rows, dim)
    queries = np.fromfile(os.path.join(folder, "queries.f32"), "<f4").reshape(-1, dim)
    glance_f32 = np.fromfile(os.path.join(folder, "top1_f32.u32"), "<u4")
    glance_i8 = np.fromfile(os.path.join(folder, "top1_i8.u32"), "<u4")
    store = store / np.maximum(np.linalg.norm(store, axis=1, keepdims=True), 1e-12)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    store, queries = np.ascontiguousarray(store, "f4"), np.ascontiguousarray(queries, "f4")
    faiss.omp_set_num_threads(1)
    out = {"faiss": faiss.__version__, "rows": rows, "dim": dim, "queries": len(queries)}
    flat = faiss.IndexFlatIP(dim)
    flat.add(store)
    sq8 = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq8.train(store)
    sq8.add(store)
    for name, index in [("flat_ip_f32", flat), ("sq8_ip", sq8)]:
        for q in queries[:5]:
            index.search(q[None], 1)
        times, top = [], []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = index.search(q[None], 1)
            times.append((time.perf_counter() - t0) * 1e3)
            top.append(int(ids[0, 0]))
        top = np.array(top)
        out[name] = {"median_ms": statistics.median(times[5:]),
                     "top1_agrees_with_glance_f32": float((top == glance_f32).mean()),
                     "top1_agrees_with_glance_i8": float((top == glance_i8).mean())}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
