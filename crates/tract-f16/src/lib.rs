//! Half-precision inference for tract 0.23.9, for EfficientNet-Lite-like backbones on ARMv8.2
//! cores with FP16 arithmetic (Cortex-A55, A76, A78: Raspberry Pi 5, Jetson Orin).
//!
//! tract runs f16 matrix products on its `arm64fp16` kernels, eight lanes per instruction, half
//! the instructions of f32. Translating a whole backbone to f16 with tract's
//! `FloatPrecisionTranslator` does not pay by itself, though: tract 0.23's f16 depthwise
//! convolution is a scalar loop (one `fadd`/`fmul` per tap and channel), 1.4× the instructions
//! of the whole f32 frame on an emulated Cortex-A76. So [`translate`] swaps each depthwise
//! convolution for [`DepthwiseF16`], eight lanes per FMLA, with the ReLU6 after it folded in (the
//! few shapes it does not cover stay f32 on tract's NEON kernel, between casts), and runs
//! everything else in f16. Where casts
//! remain, tract's own `Cast` converts element by element; [`vectorise_casts`] swaps them for
//! [`HalfCast`], which converts whole slices with FCVTN/FCVTL, 16 lanes a loop turn.
//! BENCHMARKS.md, "ARM: instructions per frame", has the counts.
//!
//! tract-core is pinned `=`: [`HalfCast`] and [`DepthwiseF16`] implement tract's operator
//! traits and the translation matches its `Conv` operator, neither of which is stable API.
#![warn(missing_docs)]
// Unsafe code only in the aarch64 loops (conversions, depthwise kernels), each with a SAFETY
// comment.
#![deny(unsafe_code)]

mod depthwise;

pub use depthwise::DepthwiseF16;
use tract_core::floats::FloatPrecisionTranslator;
use tract_core::internal::*;
use tract_core::ops::cast::Cast;
use tract_core::ops::cnn::Conv;
use tract_core::transform::ModelTransform;

/// Translates a decluttered f32 model to f16. Depthwise convolutions (grouped `Conv`) that
/// [`DepthwiseF16`] computes become that operator; the others stay f32 between casts. The input
/// and outputs become f16. Returns how many depthwise convolutions run in f16.
pub fn translate(model: &mut TypedModel) -> TractResult<usize> {
    let ours: std::collections::HashSet<usize> = model
        .nodes
        .iter()
        .filter(|n| matches!(DepthwiseF16::from_conv(model, n), Ok(Some(_))))
        .map(|n| n.id)
        .collect();
    // The filter sees the nodes of the graph being translated, `model` as it is here.
    FloatPrecisionTranslator::with_filter(f32::datum_type(), f16::datum_type(), move |node| {
        !is_depthwise(node) || ours.contains(&node.id)
    })
    .transform(model)?;
    depthwise::replace(model)
}

fn is_depthwise(node: &TypedNode) -> bool {
    node.op_as::<Conv>().is_some_and(|c| c.group > 1)
}

/// Replaces every f16↔f32 `Cast` of `model` (optimised or not) by [`HalfCast`]; returns how many.
pub fn vectorise_casts(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(cast) = node.op_as::<Cast>() else {
            continue;
        };
        let from = model.outlet_fact(node.inputs[0])?.datum_type;
        let pair = (from, cast.to);
        if pair != (f16::datum_type(), f32::datum_type())
            && pair != (f32::datum_type(), f16::datum_type())
        {
            continue;
        }
        let patch = TypedModelPatch::replace_single_op(
            model,
            node,
            &node.inputs,
            HalfCast { to: cast.to },
        )?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// `values` in f16 as a tensor of `shape`, converted as [`HalfCast`] converts (16 lanes a loop
/// turn on aarch64), where tract's `cast_to` converts one element at a time.
pub fn f16_tensor(shape: &[usize], values: &[f32]) -> TractResult<Tensor> {
    let mut halves = vec![f16::ZERO; values.len()];
    convert::f32_to_f16(values, &mut halves);
    Ok(tract_ndarray::Array::from_shape_vec(shape, halves)?.into_tensor())
}

/// A cast between f32 and f16 over whole slices (16 lanes a loop turn on aarch64, `half`'s F16C
/// path on x86-64), where tract's `Cast` converts one element at a time. Rounds to nearest
/// even, as tract's does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HalfCast {
    /// f16 or f32; the input is the other one.
    pub to: DatumType,
}

impl Op for HalfCast {
    fn name(&self) -> StaticName {
        "HalfCast".into()
    }

    op_as_typed_op!();
}

impl EvalOp for HalfCast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let src = input.try_as_plain_ram()?;
        // Zeroed rather than uninitialised (that is unsafe in tract): the conversion overwrites
        // every element, and zeroing costs little next to the convolutions around a cast.
        let mut output = Tensor::zero_dt(self.to, input.shape())?;
        {
            let mut dst = output.try_as_plain_ram_mut()?;
            if self.to == f16::datum_type() {
                convert::f32_to_f16(src.as_slice::<f32>()?, dst.as_slice_mut::<f16>()?);
            } else {
                convert::f16_to_f32(src.as_slice::<f16>()?, dst.as_slice_mut::<f32>()?);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

/// The slice conversions. On aarch64, 16 elements per loop turn in assembly: FCVTN/FCVTL are
/// base ARMv8 Advanced SIMD (no FP16 extension needed) and round to nearest even under Linux's
/// default FPCR, as `half` does; 9 instructions per 16 elements, where `half`'s 4-lane helper
/// calls measured about 3 per element. Elsewhere, `half`'s slice conversions.
mod convert {
    use half::slice::HalfFloatSliceExt;
    use tract_core::prelude::f16;

    #[cfg(target_arch = "aarch64")]
    #[allow(unsafe_code)]
    pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
        assert_eq!(src.len(), dst.len());
        let body = src.len() - src.len() % 16;
        if body > 0 {
            // SAFETY: the loop reads src[..body] and writes dst[..body], both in bounds (equal
            // lengths checked above), 16 elements a turn, and body is a positive multiple of 16.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "ldp {a:q}, {b:q}, [{s}], #32",
                    "ldp {c:q}, {d:q}, [{s}], #32",
                    "fcvtn {e:v}.4h, {a:v}.4s",
                    "fcvtn2 {e:v}.8h, {b:v}.4s",
                    "fcvtn {f:v}.4h, {c:v}.4s",
                    "fcvtn2 {f:v}.8h, {d:v}.4s",
                    "stp {e:q}, {f:q}, [{o}], #32",
                    "subs {n}, {n}, #16",
                    "b.ne 2b",
                    s = inout(reg) src.as_ptr() => _,
                    o = inout(reg) dst.as_mut_ptr() => _,
                    n = inout(reg) body => _,
                    a = out(vreg) _, b = out(vreg) _, c = out(vreg) _, d = out(vreg) _,
                    e = out(vreg) _, f = out(vreg) _,
                    options(nostack),
                );
            }
        }
        dst[body..].convert_from_f32_slice(&src[body..]);
    }

    #[cfg(target_arch = "aarch64")]
    #[allow(unsafe_code)]
    pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        let body = src.len() - src.len() % 16;
        if body > 0 {
            // SAFETY: as in f32_to_f16: src[..body] read, dst[..body] written, 16 a turn.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "ldp {a:q}, {b:q}, [{s}], #32",
                    "fcvtl {c:v}.4s, {a:v}.4h",
                    "fcvtl2 {d:v}.4s, {a:v}.8h",
                    "fcvtl {e:v}.4s, {b:v}.4h",
                    "fcvtl2 {f:v}.4s, {b:v}.8h",
                    "stp {c:q}, {d:q}, [{o}], #32",
                    "stp {e:q}, {f:q}, [{o}], #32",
                    "subs {n}, {n}, #16",
                    "b.ne 2b",
                    s = inout(reg) src.as_ptr() => _,
                    o = inout(reg) dst.as_mut_ptr() => _,
                    n = inout(reg) body => _,
                    a = out(vreg) _, b = out(vreg) _, c = out(vreg) _, d = out(vreg) _,
                    e = out(vreg) _, f = out(vreg) _,
                    options(nostack),
                );
            }
        }
        src[body..].convert_to_f32_slice(&mut dst[body..]);
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
}

impl TypedOp for HalfCast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.to.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    /// Values that exercise rounding, subnormals, overflow and signs.
    fn awkward_f32s(n: usize) -> Vec<f32> {
        let mut v = vec![
            0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 1e-8, -6.1e-5, 3.0e-6, 1e9,
        ];
        let mut x = 0x2545_f491_u32;
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push((x as f32 / u32::MAX as f32 - 0.5) * 20.0);
        }
        v
    }

    fn run_op(op: Box<dyn TypedOp>, input: Tensor) -> Tensor {
        let mut model = TypedModel::default();
        let src = model
            .add_source("in", input.datum_type().fact(input.shape()))
            .unwrap();
        let out = model.wire_node("op", op, &[src]).unwrap();
        model.select_output_outlets(&out).unwrap();
        let plan = model.into_runnable().unwrap();
        plan.run(tvec!(input.into_tvalue())).unwrap()[0]
            .clone()
            .into_tensor()
    }

    /// Both directions give exactly what tract's own `Cast` gives, over an odd length (the
    /// vector loop's tail) in a 3-d shape.
    #[test]
    fn half_cast_equals_tracts_cast_both_ways() {
        let values = awkward_f32s(3 * 5 * 67);
        let input = Tensor::from_shape(&[3, 5, 67], &values).unwrap();
        let ours = run_op(
            Box::new(HalfCast {
                to: f16::datum_type(),
            }),
            input.clone(),
        );
        let theirs = run_op(
            Box::new(Cast {
                to: f16::datum_type(),
            }),
            input,
        );
        assert_eq!(ours.datum_type(), f16::datum_type());
        assert_eq!(ours.shape(), &[3, 5, 67]);
        let bits = |t: &Tensor| -> Vec<u16> {
            t.to_plain_array_view::<f16>()
                .unwrap()
                .iter()
                .map(|h| h.to_bits())
                .collect()
        };
        assert_eq!(bits(&ours), bits(&theirs));

        let back_ours = run_op(
            Box::new(HalfCast {
                to: f32::datum_type(),
            }),
            ours.clone(),
        );
        let back_theirs = run_op(
            Box::new(Cast {
                to: f32::datum_type(),
            }),
            ours,
        );
        let f32_bits = |t: &Tensor| -> Vec<u32> {
            t.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(f32_bits(&back_ours), f32_bits(&back_theirs));
    }

    /// The shipped fp32 backbone, typed for one 224×224 input, decluttered, its features only.
    fn backbone() -> TypedModel {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/efficientnet_lite0_fp32.onnx"
        );
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(path)
            .unwrap()
            .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())
            .unwrap()
            .into_typed()
            .unwrap();
        model.outputs.truncate(1);
        model.into_decluttered().unwrap()
    }

    /// The translated backbone runs every convolution in f16, the 16 depthwise ones on
    /// [`DepthwiseF16`], no f16↔f32 cast of tract's is left after optimisation, and the
    /// features stay within cosine 0.999 of f32 on a smooth synthetic image.
    #[test]
    fn translated_backbone_runs_f16_throughout_and_keeps_its_features() {
        let f32_model = backbone();
        let mut model = f32_model.clone();
        let depthwise = translate(&mut model).unwrap();
        assert_eq!(
            depthwise, 16,
            "EfficientNet-Lite0 has 16 depthwise convolutions"
        );
        // Each is followed by a ReLU6, folded in: a clamp to [0, 6].
        let order = model.eval_order().unwrap();
        let clamps: Vec<[f16; 2]> = order
            .iter()
            .filter_map(|&id| model.node(id).op_as::<DepthwiseF16>())
            .map(DepthwiseF16::clamp)
            .collect();
        assert_eq!(clamps.len(), 16);
        let relu6 = [f16::ZERO, f16::from_f32(6.0)];
        assert!(clamps.iter().all(|&c| c == relu6), "{clamps:?}");
        for node in &model.nodes {
            if let Some(conv) = node.op_as::<Conv>() {
                assert_eq!(conv.group, 1, "{} left to tract", node.name);
                let dt = model.outlet_fact(node.inputs[0]).unwrap().datum_type;
                assert_eq!(dt, f16::datum_type(), "{}", node.name);
            }
        }

        let mut model = model.into_optimized().unwrap();
        vectorise_casts(&mut model).unwrap();
        for node in &model.nodes {
            if let Some(cast) = node.op_as::<Cast>() {
                let from = model.outlet_fact(node.inputs[0]).unwrap().datum_type;
                assert!(
                    !(from.is_float() && cast.to.is_float()),
                    "{} is still tract's cast",
                    node.name
                );
            }
        }

        let image: Vec<f32> = (0..3 * 224 * 224)
            .map(|i| {
                let (c, y, x) = (i / (224 * 224), (i / 224) % 224, i % 224);
                ((x as f32 / 37.0 + c as f32).sin() + (y as f32 / 23.0).cos()) * 0.8
            })
            .collect();
        let input = Tensor::from_shape(&[1, 3, 224, 224], &image).unwrap();
        let want = f32_model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into()))
            .unwrap();
        let half_input = input.cast_to::<f16>().unwrap().into_owned();
        let got = model
            .into_runnable()
            .unwrap()
            .run(tvec!(half_input.into()))
            .unwrap();
        let a: Vec<f32> = want[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        let b: Vec<f32> = got[0]
            .cast_to::<f32>()
            .unwrap()
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(a.len(), 1280);
        let dot: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(&a) * norm(&b));
        assert!(cosine > 0.999, "feature cosine f16 vs f32: {cosine}");
    }
}
