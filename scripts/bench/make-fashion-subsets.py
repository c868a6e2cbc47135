#!/usr/bin/env python3
"""Fashion-MNIST as class folders for the learning curve of scripts/bench/open-set.sh: the first
50 training images of each of 8 classes (OUT/train/<class>/NNNNN.png), the first 100 test images
of each (OUT/test/<class>/…), and 100 test images each of two held-out classes, Bag and Ankle
boot, as images of no class (OUT/unknown/…). From Debian's dataset-fashion-mnist.
Usage: make-fashion-subsets.py OUT
"""
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle_boot"]
HELD_OUT = {8, 9}


def idx(name):
    with gzip.open(SRC / name) as f:
        data = f.read()
    if data[2] == 8 and data[3] == 3:
        n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, h, w)
    return np.frombuffer(data, np.uint8, offset=8)


def main():
    out = Path(sys.argv[1])
    if (out / "unknown").is_dir():
        return
    for split, prefix, per in [("train", "train", 50), ("test", "t10k", 100)]:
        images, labels = idx(f"{prefix}-images-idx3-ubyte.gz"), idx(f"{prefix}-labels-idx1-ubyte.gz")
        for c, name in enumerate(NAMES):
            rows = np.flatnonzero(labels == c)[:per]
            if c in HELD_OUT:
                if split != "test":
                    continue
                d = out / "unknown"
            else:
                d = out / split / name
            d.mkdir(parents=True, exist_ok=True)
            for r in rows:
                Image.fromarray(images[r]).save(d / f"{name}-{r:05d}.png")
    print(out)


if __name__ == "__main__":
    main()
