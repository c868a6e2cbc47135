#!/usr/bin/env python3
"""Which L2 penalty for glance's head on these features? Chosen on validation, never on test.

scikit-learn's LogisticRegression (the head glance's is checked against, "matched" C) on the
sqrt-L2-conditioned training features that `glance-host extract --export DIR` wrote, fitted on
a stratified 90% of the training split and scored on the other 10% (fixed seed); the test
features are not read. Prints one JSON line per penalty, as `glance-host fit --l2` takes it.

usage: fashion-penalty.py EXPORT_DIR [L2,L2,...]     (default 1e-6,3e-7,1e-7)
"""
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

spec = importlib.util.spec_from_file_location(
    "fashion_sklearn", Path(__file__).with_name("fashion-sklearn.py"))
fashion_sklearn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fashion_sklearn)


def main():
    d = Path(sys.argv[1])
    penalties = [float(a) for a in (sys.argv[2] if len(sys.argv) > 2 else "1e-6,3e-7,1e-7").split(",")]
    x = fashion_sklearn.sqrt_l2(np.load(d / "train_features.npy"))
    y = np.load(d / "train_labels.npy")
    rng = np.random.default_rng(7)
    val = np.zeros(len(y), bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        val[rng.choice(members, len(members) // 10, replace=False)] = True
    n_fit = int((~val).sum())
    for l2 in penalties:
        t = time.time()
        c = fashion_sklearn.matched_c(l2, n_fit)
        clf = LogisticRegression(C=c, max_iter=3000).fit(x[~val], y[~val])
        print(json.dumps({
            "l2": l2, "C": c, "fit": n_fit, "validation": int(val.sum()),
            "validation_accuracy": float((clf.predict(x[val]) == y[val]).mean()),
            "iterations": int(clf.n_iter_[0]), "seconds": round(time.time() - t, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
