#!/usr/bin/env python3
"""Build the real-photo open-set benchmark from photos that can be shipped: the colour photos
inside the scikit-image and scikit-learn wheels, as a user with a phone would photograph them:
random crops (40-90 % of the shorter side), aspect, small rotations, horizontal flips, lighting
(brightness, contrast, gamma, colour cast), noise, blur, size and JPEG quality 60-95.

  OUT/train/<class>/NN.jpg   30 a class by default (what a user with a few dozen photos has)
  OUT/test/<class>/NN.jpg    20 a class, other random draws
  OUT/unknown/<photo>-NN.jpg 6 a photo from 16 photos of no class (textures, scenes, a page of
                             text, a motorcycle, a flower), drawn the same way

Deterministic for a seed. Usage: make-photo-set.py OUT [--train 30] [--test 20] [--seed 1]
(scripts/bench/open-set.sh runs it with the venv of scripts/python-env.sh).
"""
import argparse
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def sources():
    import skimage.data
    import sklearn.datasets

    sk = Path(skimage.data.__file__).parent
    skl = Path(sklearn.datasets.__file__).parent / "images"
    known = {
        "astronaut": sk / "astronaut.png",
        "cat": sk / "chelsea.png",
        "coffee": sk / "coffee.png",
        "rocket": sk / "rocket.jpg",
    }
    unknown = [sk / n for n in [
        "motorcycle_left.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "brick.png",
        "grass.png", "gravel.png", "camera.png", "coins.png", "moon.png", "page.png",
        "text.png", "logo.png", "color.png"]] + [skl / "china.jpg", skl / "flower.jpg"]
    missing = [p for p in list(known.values()) + unknown if not p.exists()]
    if missing:
        raise SystemExit(f"photos missing from the wheels: {missing}")
    return known, unknown


def shot(img: Image.Image, rng: random.Random) -> Image.Image:
    """One 'photo' of `img`: crop, rotate, flip, light, noise or blur, resize."""
    img = img.convert("RGB")
    w, h = img.size
    side = int(min(w, h) * rng.uniform(0.4, 0.9))
    cw = min(w, int(side * rng.uniform(0.8, 1.25)))
    x = rng.randint(0, w - cw)
    y = rng.randint(0, h - side)
    out = img.crop((x, y, x + cw, y + side))
    out = out.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, expand=False)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.6, 1.4))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))
    gamma = rng.uniform(0.75, 1.35)
    cast = np.array([rng.uniform(0.9, 1.1) for _ in range(3)], dtype=np.float32)
    a = np.asarray(out).astype(np.float32) / 255.0
    a = np.clip((a ** gamma) * cast, 0, 1)
    if rng.random() < 0.4:
        noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 0.03, a.shape)
        a = np.clip(a + noise, 0, 1)
    out = Image.fromarray((a * 255 + 0.5).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    target = rng.choice([320, 400, 480, 640])
    s = target / max(out.size)
    return out.resize((max(1, int(out.width * s)), max(1, int(out.height * s))), Image.BILINEAR)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--unknown-per-photo", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    known, unknown = sources()
    for cls, path in known.items():
        img = Image.open(path)
        for split, n in [("train", a.train), ("test", a.test)]:
            d = a.out / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shot(img, rng).save(d / f"{i:02d}.jpg", quality=rng.randint(60, 95))
    d = a.out / "unknown"
    d.mkdir(parents=True, exist_ok=True)
    for p in unknown:
        img = Image.open(p)
        for i in range(a.unknown_per_photo):
            shot(img, rng).save(d / f"{p.stem}-{i:02d}.jpg", quality=rng.randint(60, 95))
    print(f"{a.out}: {len(known)} classes x ({a.train} train + {a.test} test), "
          f"{len(unknown) * a.unknown_per_photo} unknown images from {len(unknown)} photos")


if __name__ == "__main__":
    main()
