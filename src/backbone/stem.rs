//! The stem convolution as glance's own im2col plus a 1×1 convolution, for tract.
//!
//! The backbone's first layer is a strided 3×3 convolution over the 3 colour planes. tract runs
//! it as a matrix product whose right-hand side it gathers lazily from the NCHW image (strided
//! reads, channels-first output), then pads, clips and hands block 0 an NCHW map, so block 0's
//! depthwise convolution stays channels-first and its projection has to transpose its input
//! while packing it. Per node (`examples/tract_profile.rs`, fp32, 1 thread): stem + padding +
//! ReLU6 + block 0 took ~2.0 ms here, onnxruntime's profiler gives ~0.55 ms for the same layers.
//!
//! [`lower`] rewrites the ONNX graph before tract sees it: the graph's input becomes the patch
//! tensor `[N, OH, OW, C·KH·KW]` (channels-last), followed by a transpose to NCHW, and the stem
//! becomes a 1×1 convolution with the same weights (only the weight tensor's dimensions change:
//! `[M, C, KH, KW]` → `[M, C·KH·KW, 1, 1]`, same bytes, same order). tract then runs the stem as
//! a plain channels-last matrix product with its ReLU6 fused, and block 0 channels-last too.
//! [`Stem::patches_into`] builds that tensor from the NCHW image for every frame (im2col; zero where
//! the window leaves the image). The arithmetic is the same convolution: features match the
//! unlowered graph to float rounding (test below). Measured in one process, frames alternating
//! between the two graphs: the lowered one is ~0.45 ms faster, the im2col costs ~0.14 ms, a
//! frame ~3% less (BENCHMARKS.md).
//!
//! Only a plain stem is lowered: the graph input feeds exactly one node, a `Conv` with group 1,
//! dilation 1, explicit (or no) padding, a kernel larger than 1×1 and at most [`MAX_PATCH`]
//! values per patch, and weights that are an initializer (or a `DequantizeLinear` of one, with
//! per-tensor or axis-0 scales, as in the int8w model) used by nothing else. Any other graph is
//! left as it is. `GLANCE_TRACT_STEM=off` turns the rewrite off.

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::type_proto;

/// Most values in one patch (C·KH·KW) lowered; 3×3 over RGB is 27. Larger patches would make
/// the patch tensor many times the image.
const MAX_PATCH: usize = 64;

/// The name of the transpose's output that feeds the 1×1 stem.
const PATCHES_NCHW: &str = "glance_stem_patches_nchw";

/// The geometry of a lowered stem: what [`Stem::patches`] gathers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stem {
    /// The NCHW image shape the frame arrives in.
    pub input: [usize; 4],
    kernel: [usize; 2],
    strides: [usize; 2],
    /// Padding before (top, left).
    pad_begin: [usize; 2],
    /// Output map height and width.
    out: [usize; 2],
}

impl Stem {
    /// The patch tensor's shape, `[N, OH, OW, C·KH·KW]`: the lowered graph's input.
    pub fn patch_shape(&self) -> [usize; 4] {
        let [n, c, _, _] = self.input;
        [
            n,
            self.out[0],
            self.out[1],
            c * self.kernel[0] * self.kernel[1],
        ]
    }

    /// im2col: writes the patch of every output position into `out`, channels-last, each patch
    /// in (c, ky, kx) order like the weights. `image` is NCHW of [`Stem::input`]'s shape; `out`
    /// has [`Stem::patch_shape`]'s size and is zero on entry (taps outside the image are not
    /// written).
    pub fn patches_into(&self, image: &[f32], out: &mut [f32]) {
        let [_, c, h, w] = self.input;
        let [kh, kw] = self.kernel;
        let [sh, _] = self.strides;
        let [ph, _] = self.pad_begin;
        let [oh, ow] = self.out;
        let k = c * kh * kw;
        for (image, out) in image
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(oh * ow * k))
        {
            for (oy, out_row) in out.chunks_exact_mut(ow * k).enumerate() {
                for ci in 0..c {
                    let plane = &image[ci * h * w..(ci + 1) * h * w];
                    for ky in 0..kh {
                        // The input row this tap reads; a row outside the image stays zero.
                        let Some(iy) = (oy * sh + ky).checked_sub(ph).filter(|&iy| iy < h) else {
                            continue;
                        };
                        let row = &plane[iy * w..(iy + 1) * w];
                        let base = (ci * kh + ky) * kw;
                        // Fixed widths copy as a few moves rather than a call per window.
                        match kw {
                            3 => self.row_taps::<3>(row, out_row, k, base),
                            5 => self.row_taps::<5>(row, out_row, k, base),
                            7 => self.row_taps::<7>(row, out_row, k, base),
                            _ => self.row_taps_any(row, out_row, k, base),
                        }
                    }
                }
            }
        }
    }

    /// Writes one input row's `KW` taps into every patch of an output row, at `base` within
    /// each patch of `k` values.
    fn row_taps<const KW: usize>(&self, row: &[f32], out_row: &mut [f32], k: usize, base: usize) {
        let [_, sw] = self.strides;
        let [_, pw] = self.pad_begin;
        for (ox, patch) in out_row.chunks_exact_mut(k).enumerate() {
            let x0 = ox * sw;
            let taps: &mut [f32; KW] = match (&mut patch[base..base + KW]).try_into() {
                Ok(taps) => taps,
                Err(_) => continue,
            };
            match x0.checked_sub(pw).and_then(|x| row.get(x..x + KW)) {
                Some(src) => taps.copy_from_slice(src),
                None => {
                    for (kx, tap) in taps.iter_mut().enumerate() {
                        if let Some(&v) = (x0 + kx).checked_sub(pw).and_then(|ix| row.get(ix)) {
                            *tap = v;
                        }
                    }
                }
            }
        }
    }

    /// [`Stem::row_taps`] for any kernel width.
    fn row_taps_any(&self, row: &[f32], out_row: &mut [f32], k: usize, base: usize) {
        let [_, kw] = self.kernel;
        let [_, sw] = self.strides;
        let [_, pw] = self.pad_begin;
        for (ox, patch) in out_row.chunks_exact_mut(k).enumerate() {
            let x0 = ox * sw;
            for (kx, tap) in patch[base..base + kw].iter_mut().enumerate() {
                if let Some(&v) = (x0 + kx).checked_sub(pw).and_then(|ix| row.get(ix)) {
                    *tap = v;
                }
            }
        }
    }
}

/// Whether the rewrite is on (`GLANCE_TRACT_STEM` not `off`).
pub fn enabled() -> bool {
    std::env::var("GLANCE_TRACT_STEM").map_or(true, |v| v != "off")
}

fn ints<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a [i64]> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.as_slice())
}

fn usizes(v: &[i64]) -> Option<Vec<usize>> {
    v.iter().map(|&x| usize::try_from(x).ok()).collect()
}

/// Rewrites `model` so that its input is the stem's patch tensor (see the module text), for an
/// NCHW input of `shape`. Returns the stem's geometry, or `None` (and leaves `model` untouched)
/// when the graph's first layer is not a plain stem convolution.
pub fn lower(model: &mut pb::ModelProto, shape: [usize; 4]) -> Option<Stem> {
    let graph = model.graph.as_mut()?;
    let initialized: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<usize> = (0..graph.input.len())
        .filter(|&i| !initialized.contains(&graph.input[i].name.as_str()))
        .collect();
    let [input_ix] = inputs[..] else { return None };
    let input = graph.input[input_ix].name.clone();
    let users = |name: &str| {
        graph
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == name))
            .count()
    };
    let consumers: Vec<usize> = (0..graph.node.len())
        .filter(|&i| graph.node[i].input.contains(&input))
        .collect();
    let [conv_ix] = consumers[..] else {
        return None;
    };
    let conv = &graph.node[conv_ix];
    if conv.op_type != "Conv" || !conv.domain.is_empty() || conv.input.first() != Some(&input) {
        return None;
    }
    if ints(conv, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1))
        || conv.attribute.iter().any(|a| a.name == "group" && a.i != 1)
        || conv
            .attribute
            .iter()
            .any(|a| a.name == "auto_pad" && !matches!(&a.s[..], b"" | b"NOTSET"))
    {
        return None;
    }
    // The weights: an initializer, or a DequantizeLinear of one whose scales are per tensor or
    // along axis 0 (kept valid by the reshape).
    let weights = conv.input.get(1)?.clone();
    if users(&weights) != 1 || graph.input.iter().any(|i| i.name == weights) {
        return None;
    }
    let init_name = match graph.initializer.iter().any(|t| t.name == weights) {
        true => weights,
        false => {
            let dq = graph.node.iter().find(|n| n.output.contains(&weights))?;
            let axis = dq
                .attribute
                .iter()
                .find(|a| a.name == "axis")
                .map_or(1, |a| a.i);
            if dq.op_type != "DequantizeLinear" || !dq.domain.is_empty() {
                return None;
            }
            let raw = dq.input.first()?.clone();
            let scale = dq.input.get(1)?;
            let per_tensor = graph
                .initializer
                .iter()
                .find(|t| t.name == *scale)
                .is_some_and(|t| t.dims.iter().product::<i64>() == 1);
            if (!per_tensor && axis != 0) || users(&raw) != 1 {
                return None;
            }
            raw
        }
    };
    let w_ix = graph.initializer.iter().position(|t| t.name == init_name)?;
    let [m, c, kh, kw] = usizes(&graph.initializer[w_ix].dims)?[..] else {
        return None;
    };
    let [n, ci, h, w] = shape;
    if c != ci || kh * kw <= 1 || c * kh * kw > MAX_PATCH || n == 0 || m == 0 {
        return None;
    }
    if ints(conv, "kernel_shape").is_some_and(|k| usizes(k) != Some(vec![kh, kw])) {
        return None;
    }
    let strides = match ints(conv, "strides") {
        Some(s) => usizes(s)?,
        None => vec![1, 1],
    };
    let pads = match ints(conv, "pads") {
        Some(p) => usizes(p)?,
        None => vec![0; 4],
    };
    let ([sh, sw], [pt, pl, pb, pr]) = (&strides[..], &pads[..]) else {
        return None;
    };
    let ([sh, sw], [pt, pl, pb, pr]) = ([*sh, *sw], [*pt, *pl, *pb, *pr]);
    if sh == 0 || sw == 0 || h + pt + pb < kh || w + pl + pr < kw {
        return None;
    }
    let out = [(h + pt + pb - kh) / sh + 1, (w + pl + pr - kw) / sw + 1];
    let stem = Stem {
        input: shape,
        kernel: [kh, kw],
        strides: [sh, sw],
        pad_begin: [pt, pl],
        out,
    };

    // The rewrite proper.
    graph.initializer[w_ix].dims = vec![m as i64, (c * kh * kw) as i64, 1, 1];
    let conv = &mut graph.node[conv_ix];
    conv.input[0] = PATCHES_NCHW.to_owned();
    for attr in &mut conv.attribute {
        match attr.name.as_str() {
            "kernel_shape" | "strides" => attr.ints = vec![1, 1],
            "pads" => attr.ints = vec![0; 4],
            _ => {}
        }
    }
    graph.node.insert(
        conv_ix,
        pb::NodeProto {
            input: vec![input.clone()],
            output: vec![PATCHES_NCHW.to_owned()],
            name: "glance_stem_patches_transpose".to_owned(),
            op_type: "Transpose".to_owned(),
            attribute: vec![pb::AttributeProto {
                name: "perm".to_owned(),
                r#type: AttributeType::Ints as i32,
                ints: vec![0, 3, 1, 2],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let dims = stem
        .patch_shape()
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    graph.input[input_ix].r#type = Some(pb::TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: pb::tensor_proto::DataType::Float as i32,
            shape: Some(pb::TensorShapeProto { dim: dims }),
        })),
        ..Default::default()
    });
    Some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution the patches stand for, computed directly (f64).
    fn direct_conv(stem: &Stem, image: &[f32], weights: &[f32]) -> Vec<f64> {
        let [n, c, h, w] = stem.input;
        let [kh, kw] = stem.kernel;
        let [oh, ow] = stem.out;
        let m = weights.len() / (c * kh * kw);
        let mut out = vec![0f64; n * oh * ow * m];
        for b in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for mi in 0..m {
                        let mut s = 0f64;
                        for ci in 0..c {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * stem.strides[0] + ky) as isize
                                        - stem.pad_begin[0] as isize;
                                    let ix = (ox * stem.strides[1] + kx) as isize
                                        - stem.pad_begin[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let x =
                                        image[((b * c + ci) * h + iy as usize) * w + ix as usize];
                                    let k = weights[((mi * c + ci) * kh + ky) * kw + kx];
                                    s += f64::from(x) * f64::from(k);
                                }
                            }
                        }
                        out[((b * oh + oy) * ow + ox) * m + mi] = s;
                    }
                }
            }
        }
        out
    }

    /// Patches times the reshaped weights give the direct convolution, for odd sizes, both
    /// strides, asymmetric padding and windows that leave the image on every side.
    #[test]
    fn patches_times_weights_is_the_convolution() {
        let cases = [
            // (input, kernel, strides, pads t l b r)
            ([1, 3, 9, 11], [3, 3], [2, 2], [0, 0, 1, 1]),
            ([2, 3, 8, 7], [3, 3], [1, 1], [1, 1, 1, 1]),
            ([1, 2, 10, 9], [5, 3], [2, 1], [2, 1, 2, 1]),
            ([1, 1, 4, 4], [2, 2], [2, 2], [0, 0, 0, 0]),
        ];
        for (input, kernel, strides, [pt, pl, pb, pr]) in cases {
            let [n, c, h, w] = input;
            let out = [
                (h + pt + pb - kernel[0]) / strides[0] + 1,
                (w + pl + pr - kernel[1]) / strides[1] + 1,
            ];
            let stem = Stem {
                input,
                kernel,
                strides,
                pad_begin: [pt, pl],
                out,
            };
            let image: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let k = c * kernel[0] * kernel[1];
            let m = 4;
            let weights: Vec<f32> = (0..m * k)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 5.0)
                .collect();
            let mut patches = vec![0f32; stem.patch_shape().iter().product::<usize>()];
            stem.patches_into(&image, &mut patches);
            let expected = direct_conv(&stem, &image, &weights);
            for (p, patch) in patches.chunks_exact(k).enumerate() {
                for mi in 0..m {
                    let got: f64 = patch
                        .iter()
                        .zip(&weights[mi * k..(mi + 1) * k])
                        .map(|(&x, &w)| f64::from(x) * f64::from(w))
                        .sum();
                    let want = expected[p * m + mi];
                    assert!(
                        (got - want).abs() < 1e-9,
                        "{input:?} {kernel:?}: position {p} channel {mi}: {got} vs {want}"
                    );
                }
            }
        }
    }

    fn model(file: &str) -> Vec<u8> {
        let path = format!("{}/models/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The shipped fp32 and int8w backbones are lowered, and compute through their patches what
    /// they compute from the image: same features and logits to float rounding. The QDQ model
    /// (its input goes through QuantizeLinear first) is left alone.
    #[test]
    fn lowered_backbones_compute_what_the_graph_computes() {
        use tract_onnx::prelude::*;
        let shape = [1, 3, 224, 224];
        let mut proto = tract_onnx::onnx()
            .proto_model_for_read(&mut &model("efficientnet_lite0_qdq.onnx")[..])
            .unwrap();
        assert_eq!(
            lower(&mut proto, shape),
            None,
            "the QDQ model's stem is quantized: not lowered"
        );

        // An image-like input: smooth gradients plus a texture, in the normalised range.
        let image: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| {
                let (c, y, x) = (i / (224 * 224), i / 224 % 224, i % 224);
                ((x + 2 * y + 50 * c) as f32 / 300.0).sin() * 0.8 + ((i * 7919) % 13) as f32 / 60.0
                    - 0.1
            })
            .collect();
        for file in [
            "efficientnet_lite0_fp32.onnx",
            "efficientnet_lite0_int8w.onnx",
        ] {
            let bytes = model(file);
            let form = |lower_stem| super::super::GraphForm {
                lower_stem,
                fuse_clips: true,
            };
            let (lowered, stem) = super::super::tract_graph(&bytes, shape, 2, form(true)).unwrap();
            let stem = stem.unwrap_or_else(|| panic!("{file}: stem not lowered"));
            assert_eq!(stem.patch_shape(), [1, 112, 112, 27]);
            let (plain, none) = super::super::tract_graph(&bytes, shape, 2, form(false)).unwrap();
            assert!(none.is_none());

            let mut patches = Tensor::zero::<f32>(&stem.patch_shape()).unwrap();
            stem.patches_into(
                &image,
                patches
                    .try_as_plain_ram_mut()
                    .unwrap()
                    .as_slice_mut::<f32>()
                    .unwrap(),
            );
            let got = lowered
                .into_runnable()
                .unwrap()
                .run(tvec!(patches.into()))
                .unwrap();
            let want = plain
                .into_runnable()
                .unwrap()
                .run(tvec!(Tensor::from_shape(&shape, &image).unwrap().into()))
                .unwrap();
            assert_eq!(got.len(), 2);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let g = g.to_plain_array_view::<f32>().unwrap();
                let w = w.to_plain_array_view::<f32>().unwrap();
                assert_eq!(g.shape(), w.shape(), "{file} output {i}");
                let (mut dot, mut gg, mut ww, mut worst) = (0f64, 0f64, 0f64, 0f32);
                for (&a, &b) in g.iter().zip(w.iter()) {
                    dot += f64::from(a) * f64::from(b);
                    gg += f64::from(a) * f64::from(a);
                    ww += f64::from(b) * f64::from(b);
                    worst = worst.max((a - b).abs());
                }
                let cosine = dot / (gg.sqrt() * ww.sqrt());
                let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                eprintln!("{file} output {i}: cosine {cosine:.9}, max |diff| {worst:e} of max |value| {scale}");
                assert!(cosine > 0.999_999, "{file} output {i}: cosine {cosine}");
                assert!(
                    worst <= 1e-4 * scale,
                    "{file} output {i}: max |diff| {worst} of {scale}"
                );
            }
        }
    }

    /// Times the backbone with the stem as in the graph and lowered (im2col per frame counted),
    /// in one process, frames alternating, two passes; prints medians. A measurement, not a
    /// check (BENCHMARKS.md quotes it):
    /// `cargo test --lib stem::tests::side_by_side_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn side_by_side_timing() {
        use super::super::{tract_graph, Engine, GraphForm, TractEngine};
        use std::time::{Duration, Instant};
        use tract_onnx::prelude::IntoRunnable;
        let shape = [1, 3, 224, 224];
        let (warmup, runs) = (10, 150);
        let image: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
            .collect();
        for file in [
            "efficientnet_lite0_fp32.onnx",
            "efficientnet_lite0_int8w.onnx",
        ] {
            let bytes = model(file);
            let engine = |lower_stem| {
                let form = GraphForm {
                    lower_stem,
                    fuse_clips: true,
                };
                let (graph, stem) = tract_graph(&bytes, shape, 1, form).unwrap();
                let plan = graph.into_runnable().unwrap();
                TractEngine { plan, stem }
            };
            let engines = [("as in the graph", engine(false)), ("lowered", engine(true))];
            for pass in 1..=2 {
                let mut times: Vec<Vec<Duration>> = vec![vec![]; engines.len()];
                for run in 0..warmup + runs {
                    for (i, (_, e)) in engines.iter().enumerate() {
                        let t = Instant::now();
                        e.run(&image, shape).unwrap();
                        if run >= warmup {
                            times[i].push(t.elapsed());
                        }
                    }
                }
                let ms = |t: &mut Vec<Duration>, q: usize| {
                    t.sort();
                    t[t.len() * q / 100].as_secs_f64() * 1e3
                };
                for ((name, _), t) in engines.iter().zip(&mut times) {
                    eprintln!(
                        "| {file} | {pass} | stem {name} | {:.2} | {:.2} | {:.2} |",
                        ms(t, 50),
                        ms(t, 10),
                        ms(t, 90)
                    );
                }
            }
        }
    }
}
