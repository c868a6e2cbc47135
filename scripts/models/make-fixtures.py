#!/usr/bin/env python3
"""Make the test fixtures in tests/fixtures/ from real photos and onnxruntime.

  photos/        real photos copied from the scikit-image and scikit-learn wheels
  tensors/       each photo centre-cropped and resized to 224×224 with PIL (lossless PNG), so that
                 Rust and onnxruntime can be compared on exactly the same input tensor
  tensors-lite1/, tensors-lite2/
                 the same photos at Lite1's and Lite2's input size and crop (240², 260²)
  reference.json for every photo: onnxruntime's top-5 on the PIL-preprocessed photo and the set of
                 labels accepted as correct (those within half the top-1 probability, since two
                 resizers may swap near-ties); for every tensor: onnxruntime's features and logits
                 for the fp32 and the int8-weight backbone (and the multi-level lite0ml); under
                 "variants", the same for Lite1 and Lite2 on their tensors.

Run with the venv that scripts/models/export-backbone.sh makes (GLANCE_EXPORT_VENV), after an export.
"""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
spec = importlib.util.spec_from_file_location("eb", ROOT / "scripts" / "models" / "export-backbone.py")
eb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(eb)

# The photos whose ImageNet answer is clear; camera.png is greyscale, china/flower are JPEG.
PHOTOS = ["chelsea.png", "coffee.png", "camera.png", "motorcycle_right.png", "china.jpg", "flower.jpg"]
TENSORS = ["chelsea.png", "coffee.png", "camera.png", "china.jpg"]


def main():
    labels = (ROOT / "models" / "imagenet_labels.txt").read_text().splitlines()
    src = {p.name: p for p in eb.photo_paths()}
    (FIX / "photos").mkdir(parents=True, exist_ok=True)
    (FIX / "tensors").mkdir(parents=True, exist_ok=True)
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    files = {m["name"]: ROOT / "models" / m["file"] for m in manifest["models"]}
    s32 = eb.session(files["efficientnet-lite0-fp32"])
    s8 = eb.session(files["efficientnet-lite0-int8w"])
    lite0 = [("efficientnet-lite0-fp32", s32), ("efficientnet-lite0-int8w", s8)]
    # The multi-level variant runs Lite0's input: its features on the same tensors.
    if "efficientnet-lite0ml-int8w" in files:
        lite0.append(("efficientnet-lite0ml-int8w", eb.session(files["efficientnet-lite0ml-int8w"])))
    ref = {"source": "onnxruntime " + eb.ort.__version__ + " CPU, PIL " + Image.__version__,
           "photos": {}, "tensors": {}}
    for name in PHOTOS:
        shutil.copyfile(src[name], FIX / "photos" / name)
        img = Image.open(src[name]).convert("RGB")
        crop = eb.center_crop_resize(img)
        logits = s32.run(None, {"input": eb.to_tensor(crop)})[1][0]
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        order = np.argsort(-prob)[:5]
        accepted = [labels[i] for i in order if prob[i] >= 0.5 * prob[order[0]]]
        ref["photos"][name] = {"top5": [[labels[i], float(prob[i])] for i in order],
                               "accepted": accepted}
        if name in TENSORS:
            tname = Path(name).stem + ".png"
            crop.save(FIX / "tensors" / tname)
            t = eb.to_tensor(Image.open(FIX / "tensors" / tname))
            entry = {}
            for key, s in lite0:
                f, l = s.run(None, {"input": t})
                entry[key] = {"features": [float(v) for v in f[0]],
                              "logits": [float(v) for v in l[0]]}
            ref["tensors"][tname] = entry
    ref["variants"] = {}
    for v, size in eb.VARIANTS.items():
        if v == "lite0" or f"efficientnet-{v}-fp32" not in files:
            continue
        eb.SIZE, eb.CROP_FRACTION = size, eb.crop_fraction(size)
        sessions = [(f"efficientnet-{v}-{form}", eb.session(files[f"efficientnet-{v}-{form}"]))
                    for form in ("fp32", "int8w")]
        out = FIX / f"tensors-{v}"
        out.mkdir(exist_ok=True)
        entries = {}
        for name in TENSORS:
            tname = Path(name).stem + ".png"
            eb.center_crop_resize(Image.open(src[name]).convert("RGB")).save(out / tname)
            t = eb.to_tensor(Image.open(out / tname))
            entry = {}
            for key, s in sessions:
                f, l = s.run(None, {"input": t})
                entry[key] = {"features": [float(x) for x in f[0]], "logits": [float(x) for x in l[0]]}
            entries[tname] = entry
        ref["variants"][v] = {"size": size, "crop_fraction": eb.CROP_FRACTION, "tensors": entries}
    (FIX / "reference.json").write_text(json.dumps(ref) + "\n")
    for n, r in ref["photos"].items():
        print(n, r["accepted"])


if __name__ == "__main__":
    main()
