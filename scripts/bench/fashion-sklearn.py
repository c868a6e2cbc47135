#!/usr/bin/env python3
"""scikit-learn on the very features glance extracted (glance-host extract --export DIR), and on
raw Fashion-MNIST pixels: the reference figures glance's head is compared with.

usage: fashion_sklearn.py EXPORT_DIR [IDX_DIR] [--views flip,...] [--l2 X]    prints one JSON object
  --views: also fit on the training images' augmented views (glance-host extract --augment
  exports them as train_<view>_features.npy), as `glance-host fit --augment` does.
  --l2: the glance penalty the "matched" C stands for (`glance-host fit --l2`, default 1e-6).
"""
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression


def l2(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def sqrt_l2(x):
    """glance's default conditioning of deep features (`--feature-norm sqrt-l2`)."""
    return l2(np.sign(x) * np.sqrt(np.abs(x)))


def matched_c(l2_penalty, n_fit):
    """scikit-learn's C for glance's `--l2`: glance minimises mean loss + l2/2 |W|^2 over the
    n_fit images it fits on, scikit-learn C * sum loss + 1/2 |W|^2."""
    return 1.0 / (l2_penalty * n_fit)


def take(args, flag, default):
    """Removes `flag VALUE` from args; returns VALUE, or default when the flag is absent."""
    if flag not in args:
        return default
    i = args.index(flag)
    value = args[i + 1]
    del args[i:i + 2]
    return value


def idx(path):
    raw = gzip.open(path).read()
    if raw[2] == 8 and raw[3] == 3:
        n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(raw[16:], np.uint8).reshape(n, h * w)
    return np.frombuffer(raw[8:], np.uint8).astype(np.int64)


def main():
    args = sys.argv[1:]
    views = [v for v in take(args, "--views", "").split(",") if v]
    l2_penalty = float(take(args, "--l2", "1e-6"))
    sys.argv[1:] = args
    d = Path(sys.argv[1])
    out = {"views": views, "l2": l2_penalty}
    xtr, ytr = np.load(d / "train_features.npy"), np.load(d / "train_labels.npy")
    for v in views:
        xv, yv = np.load(d / f"train_{v}_features.npy"), np.load(d / f"train_{v}_labels.npy")
        xtr, ytr = np.concatenate([xtr, xv]), np.concatenate([ytr, yv])
    xte, yte = np.load(d / "test_features.npy"), np.load(d / "test_labels.npy")
    t = time.time()
    clf = LogisticRegression(C=1.0, max_iter=1000)
    clf.fit(l2(xtr), ytr)
    out["deep_lr_test_accuracy"] = float((clf.predict(l2(xte)) == yte).mean())
    out["deep_lr_fit_seconds"] = time.time() - t
    # The same conditioning as glance's default head, at scikit-learn's default C and at the C
    # equivalent to glance's penalty (--l2) over the 90% of the training split glance fits on.
    n_fit = int(round(0.9 * len(ytr)))
    for name, c in [("c1", 1.0), ("matched", matched_c(l2_penalty, n_fit))]:
        t = time.time()
        clf = LogisticRegression(C=c, max_iter=2000)
        clf.fit(sqrt_l2(xtr), ytr)
        out[f"deep_sqrt_lr_{name}_C"] = c
        out[f"deep_sqrt_lr_{name}_test_accuracy"] = float((clf.predict(sqrt_l2(xte)) == yte).mean())
        out[f"deep_sqrt_lr_{name}_fit_seconds"] = time.time() - t
    out["train"], out["test"], out["dim"] = len(ytr), len(yte), xtr.shape[1]
    if len(sys.argv) > 2:
        f = Path(sys.argv[2])
        rtr, rytr = idx(f / "train-images-idx3-ubyte.gz") / 255.0, idx(f / "train-labels-idx1-ubyte.gz")
        rte, ryte = idx(f / "t10k-images-idx3-ubyte.gz") / 255.0, idx(f / "t10k-labels-idx1-ubyte.gz")
        t = time.time()
        raw = LogisticRegression(C=1.0, max_iter=1000)
        raw.fit(rtr, rytr)
        out["raw_lr_test_accuracy"] = float((raw.predict(rte) == ryte).mean())
        out["raw_lr_fit_seconds"] = time.time() - t
    import sklearn
    out["sklearn"] = sklearn.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
