//! A half-precision depthwise convolution for EfficientNet-Lite's blocks: 3×3 and 5×5 kernels,
//! stride 1 or 2, one image, channels first (NCHW, CHW) or last (NHWC, HWC: tract's declutter
//! moves most of the backbone channel-last on aarch64). tract 0.23.9 runs f16 depthwise
//! convolutions in a scalar loop (one `fadd`/`fmul` pair per tap and channel); [`DepthwiseF16`]
//! runs eight lanes per FMLA on ARMv8.2 FP16 cores: eight points of an output row, each tap's
//! weight taken from a register lane (channels first), or eight channels of an output point,
//! each tap's eight weights held in a register across the whole plane (channels last).
//!
//! The input is first copied into a zero-bordered plane large enough that every vector load
//! stays inside it (channels first: the spare lanes of each row's last vector included, which
//! are computed and not stored): the kernels then have no border cases.
//!
//! A max and a min by constants that follow the convolution (EfficientNet-Lite's ReLU6, which
//! tract would run as two more passes over the output) are folded into the operator
//! ([`replace`]): the kernels clamp each vector of sums before storing it.

use tract_core::internal::*;
use tract_core::ops::binary::TypedBinOp;
use tract_core::ops::cast::Cast;
use tract_core::ops::cnn::{Conv, KernelFormat};
use tract_core::ops::math::{Max, Min};
use tract_core::ops::nn::DataFormat;

/// Where the channel axis is, and whether there is a batch axis (of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Layout {
    Nchw,
    Chw,
    Nhwc,
    Hwc,
}

impl Layout {
    fn channel_last(self) -> bool {
        matches!(self, Layout::Nhwc | Layout::Hwc)
    }

    fn shape(self, c: usize, h: usize, w: usize) -> TVec<usize> {
        match self {
            Layout::Nchw => tvec![1, c, h, w],
            Layout::Chw => tvec![c, h, w],
            Layout::Nhwc => tvec![1, h, w, c],
            Layout::Hwc => tvec![h, w, c],
        }
    }
}

/// The shape of one convolution: `c` channels of `h`×`w` into `oh`×`ow`, a `k`×`k` kernel at
/// stride `s`, `top`/`left` rows/columns of zero padding before the input, and the padded
/// plane's `plane_h`×`plane_w` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Geometry {
    layout: Layout,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: usize,
    s: usize,
    top: usize,
    left: usize,
    plane_h: usize,
    plane_w: usize,
}

impl Geometry {
    fn new(
        layout: Layout,
        c: usize,
        hw: [usize; 2],
        ohw: [usize; 2],
        k: usize,
        s: usize,
        pad: [usize; 2],
    ) -> Self {
        let [h, w] = hw;
        let [oh, ow] = ohw;
        let [top, left] = pad;
        // Rows: the last output row reads rows up to (oh - 1)·s + k - 1. Columns, channels
        // last: the last point reads up to (ow - 1)·s + k - 1; channels first, a row's last
        // vector (its spare lanes included) starts at (vectors - 1)·8·s + kx and reads 8 points
        // (stride 1) or 16 (stride 2, LD2).
        let plane_h = (top + h).max((oh - 1) * s + k);
        let plane_w = if layout.channel_last() {
            (left + w).max((ow - 1) * s + k)
        } else {
            (left + w)
                .max(ow.div_ceil(8) * 8 * s + k + 8)
                .next_multiple_of(8)
        };
        Geometry {
            layout,
            c,
            h,
            w,
            oh,
            ow,
            k,
            s,
            top,
            left,
            plane_h,
            plane_w,
        }
    }

    /// Kernel weights stored per channel: k² rounded up to whole 8-lane registers.
    fn taps_stored(&self) -> usize {
        (self.k * self.k).next_multiple_of(8)
    }
}

/// A depthwise convolution (one filter a channel, bias added) in f16, on f16 NCHW `[1, C, H, W]`,
/// CHW `[C, H, W]`, NHWC or HWC (tract's declutter drops a batch axis of one).
/// Built from tract's `Conv` by [`DepthwiseF16::from_conv`]; weights and bias are constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepthwiseF16 {
    geo: Geometry,
    /// f16 bits, taps row-major (ky·k + kx). Channels first: `[C][taps_stored]`, zero past k²;
    /// channels last: `[k²][C]`.
    kernel: Vec<u16>,
    /// `[C]` f16 bits.
    bias: Vec<u16>,
    /// Every output is clamped to `[lo, hi]` (f16 bits; lo ≤ hi): ±inf unless a max or min by
    /// a constant was folded in.
    clamp: [u16; 2],
}

impl DepthwiseF16 {
    /// The operator for `node` if it is a depthwise `Conv` this operator computes: group = input
    /// channels = output channels, one image of a known shape in any of the four layouts
    /// (channels last: a multiple of 8 channels), OIHW constant weights,
    /// a square 3×3 or 5×5 kernel, equal strides of 1 or 2, no dilation, a constant bias (one
    /// value or one a channel). `None` for any other node. Reads the input's type from `model`
    /// but builds for f16 either way (the weights are cast).
    pub fn from_conv(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Self>> {
        let Some(conv) = node.op_as::<Conv>() else {
            return Ok(None);
        };
        let spec = &conv.pool_spec;
        let c = conv.input_channels();
        if conv.q_params.is_some()
            || conv.group <= 1
            || conv.group != c
            || conv.output_channels() != c
            || conv.kernel_fmt != KernelFormat::OIHW
            || node.inputs.len() != 3
        {
            return Ok(None);
        }
        let k = spec.kernel_shape[..].to_vec();
        let strides = spec.strides().to_vec();
        if k.len() != 2 || k[0] != k[1] || !matches!(k[0], 3 | 5) {
            return Ok(None);
        }
        if strides.len() != 2 || strides[0] != strides[1] || !matches!(strides[0], 1 | 2) {
            return Ok(None);
        }
        if spec.dilations().iter().any(|&d| d != 1) {
            return Ok(None);
        }
        let (k, s) = (k[0], strides[0]);
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(shape) = input.shape.as_concrete() else {
            return Ok(None);
        };
        let (layout, sc, h, w) = match (spec.data_format, shape) {
            (DataFormat::NCHW, &[1, c, h, w]) => (Layout::Nchw, c, h, w),
            (DataFormat::CHW, &[c, h, w]) => (Layout::Chw, c, h, w),
            (DataFormat::NHWC, &[1, h, w, c]) => (Layout::Nhwc, c, h, w),
            (DataFormat::HWC, &[h, w, c]) => (Layout::Hwc, c, h, w),
            _ => return Ok(None),
        };
        if layout.channel_last() && c % 8 != 0 {
            return Ok(None);
        }
        let (Some(kernel), Some(bias)) = (
            constant(model, node.inputs[1])?,
            constant(model, node.inputs[2])?,
        ) else {
            return Ok(None);
        };
        if sc != c || kernel.shape() != [c, 1, k, k] || (bias.len() != 1 && bias.len() != c) {
            return Ok(None);
        }
        if !kernel.datum_type().is_float() || !bias.datum_type().is_float() {
            return Ok(None);
        }
        let padding = spec.computed_padding(&[h, w]);
        let (oh, ow) = (padding[0].convoluted, padding[1].convoluted);
        if oh == 0 || ow == 0 {
            return Ok(None);
        }
        let geo = Geometry::new(
            layout,
            c,
            [h, w],
            [oh, ow],
            k,
            s,
            [padding[0].pad_before, padding[1].pad_before],
        );
        let weights = kernel.cast_to::<f16>()?;
        let weights = weights.try_as_plain_ram()?;
        let weights = weights.as_slice::<f16>()?;
        let stored = geo.taps_stored();
        let per_channel = if layout.channel_last() { k * k } else { stored };
        let mut kernel = vec![0u16; c * per_channel];
        for (ch, taps) in weights.chunks_exact(k * k).enumerate() {
            for (t, v) in taps.iter().enumerate() {
                let at = if layout.channel_last() {
                    t * c + ch
                } else {
                    ch * stored + t
                };
                kernel[at] = v.to_bits();
            }
        }
        let b = bias.cast_to::<f16>()?;
        let b = b.try_as_plain_ram()?;
        let b = b.as_slice::<f16>()?;
        let bias = (0..c)
            .map(|ch| b[if b.len() == 1 { 0 } else { ch }].to_bits())
            .collect();
        Ok(Some(DepthwiseF16 {
            geo,
            kernel,
            bias,
            clamp: [f16::NEG_INFINITY.to_bits(), f16::INFINITY.to_bits()],
        }))
    }

    /// The clamp's bounds.
    pub(crate) fn clamp(&self) -> [f16; 2] {
        self.clamp.map(f16::from_bits)
    }

    /// The input's or output's shape for `h`×`w` points a channel.
    fn shape(&self, h: usize, w: usize) -> TVec<usize> {
        self.geo.layout.shape(self.geo.c, h, w)
    }

    /// Computes `out` from `x`, in the operator's layout.
    fn run(&self, x: &[f16], out: &mut [f16]) {
        if self.geo.layout.channel_last() {
            self.run_channel_last(x, out)
        } else {
            self.run_channel_first(x, out)
        }
    }

    /// `[h][w][C]` into `[oh][ow][C]`.
    fn run_channel_last(&self, x: &[f16], out: &mut [f16]) {
        let g = &self.geo;
        // The plane holds the whole input (`Geometry::new`: plane_h ≥ top + h and
        // plane_w ≥ left + w).
        let mut plane = vec![f16::ZERO; g.plane_h * g.plane_w * g.c];
        let row = g.w * g.c;
        for y in 0..g.h {
            let at = ((g.top + y) * g.plane_w + g.left) * g.c;
            plane[at..at + row].copy_from_slice(&x[y * row..][..row]);
        }
        let bias: Vec<f16> = self.bias.iter().map(|&b| f16::from_bits(b)).collect();
        let clamp = self.clamp();
        if kernels::available() {
            kernels::run_channel_last(g, &plane, &self.kernel, &bias, clamp, out);
        } else {
            portable_channel_last(g, &plane, &self.kernel, &bias, clamp, out);
        }
    }

    /// `[C][h][w]` into `[C][oh][ow]`, channel by channel.
    fn run_channel_first(&self, x: &[f16], out: &mut [f16]) {
        let g = &self.geo;
        // The plane holds the whole input, as above; its borders stay zero from channel to
        // channel, since only the input's own rows and columns are overwritten.
        let mut plane = vec![f16::ZERO; g.plane_h * g.plane_w];
        let stored = g.taps_stored();
        let fast = kernels::available();
        let clamp = self.clamp();
        for ch in 0..g.c {
            let src = &x[ch * g.h * g.w..][..g.h * g.w];
            for y in 0..g.h {
                let at = (g.top + y) * g.plane_w + g.left;
                plane[at..at + g.w].copy_from_slice(&src[y * g.w..][..g.w]);
            }
            let dst = &mut out[ch * g.oh * g.ow..][..g.oh * g.ow];
            let kernel = &self.kernel[ch * stored..][..stored];
            let bias = f16::from_bits(self.bias[ch]);
            if fast {
                kernels::run(g, &plane, kernel, bias, clamp, dst);
            } else {
                portable(g, &plane, kernel, bias, clamp, dst);
            }
        }
    }
}

/// [`portable`] for channels last: `plane` is `[plane_h][plane_w][C]`, `kernel` `[k²][C]`.
fn portable_channel_last(
    g: &Geometry,
    plane: &[f16],
    kernel: &[u16],
    bias: &[f16],
    [lo, hi]: [f16; 2],
    out: &mut [f16],
) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let dst = &mut out[(oy * g.ow + ox) * g.c..][..g.c];
            for (ch, d) in dst.iter_mut().enumerate() {
                let mut acc = bias[ch].to_f32();
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let x = plane[((oy * g.s + ky) * g.plane_w + ox * g.s + kx) * g.c + ch];
                        let w = f16::from_bits(kernel[(ky * g.k + kx) * g.c + ch]);
                        acc = x.to_f32().mul_add(w.to_f32(), acc);
                    }
                }
                *d = f16::from_f32(acc).max(lo).min(hi);
            }
        }
    }
}

/// The value of `outlet` if it is a constant, or a constant through casts (the translation to
/// f16 casts a constant before anything folds it).
fn constant(model: &TypedModel, outlet: OutletId) -> TractResult<Option<Arc<Tensor>>> {
    let mut outlet = outlet;
    loop {
        if let Some(k) = &model.outlet_fact(outlet)?.konst {
            return Ok(Some(k.clone()));
        }
        let node = model.node(outlet.node);
        if node.op_is::<Cast>() && node.inputs.len() == 1 {
            outlet = node.inputs[0];
        } else {
            return Ok(None);
        }
    }
}

/// The reference arithmetic, for machines without FP16 (and the tests): each output point
/// accumulated in f32 over its taps, rounded to f16 once, then clamped. The vector kernels round
/// after every FMLA instead, as tract's f16 kernels do.
fn portable(
    g: &Geometry,
    plane: &[f16],
    kernel: &[u16],
    bias: f16,
    [lo, hi]: [f16; 2],
    out: &mut [f16],
) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let mut acc = bias.to_f32();
            for ky in 0..g.k {
                let row = &plane[(oy * g.s + ky) * g.plane_w + ox * g.s..][..g.k];
                for (kx, x) in row.iter().enumerate() {
                    acc = x
                        .to_f32()
                        .mul_add(f16::from_bits(kernel[ky * g.k + kx]).to_f32(), acc);
                }
            }
            out[oy * g.ow + ox] = f16::from_f32(acc).max(lo).min(hi);
        }
    }
}

impl Op for DepthwiseF16 {
    fn name(&self) -> StaticName {
        "DepthwiseF16".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geo;
        let [lo, hi] = self.clamp();
        Ok(vec![format!(
            "{}×{} stride {}, {} channels {:?}, {}×{} → {}×{}, pad {} {}, clamp [{lo}, {hi}]",
            g.k, g.k, g.s, g.c, g.layout, g.h, g.w, g.oh, g.ow, g.top, g.left
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseF16 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = &self.geo;
        ensure!(
            input.datum_type() == f16::datum_type() && input.shape() == &*self.shape(g.h, g.w),
            "DepthwiseF16 expects f16 {:?}, got {:?} {:?}",
            self.shape(g.h, g.w),
            input.datum_type(),
            input.shape()
        );
        let src = input.try_as_plain_ram()?;
        // Zeroed rather than uninitialised (that is unsafe in tract): every point is written.
        let mut output = Tensor::zero_dt(f16::datum_type(), &self.shape(g.oh, g.ow))?;
        {
            let mut dst = output.try_as_plain_ram_mut()?;
            self.run(src.as_slice::<f16>()?, dst.as_slice_mut::<f16>()?);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DepthwiseF16 {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.geo;
        Ok(tvec!(f16::fact(self.shape(g.oh, g.ow))))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geo;
        Ok(tvec!((
            Cost::FMA(f16::datum_type()),
            (g.c * g.oh * g.ow * g.k * g.k).into()
        )))
    }

    as_op!();
}

/// Replaces every depthwise `Conv` of `model` whose input is f16 and that [`DepthwiseF16`]
/// computes, folding into each the max and min by constants that follow it; returns how many
/// were replaced.
pub fn replace(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(&x) = node.inputs.first() else {
            continue;
        };
        if model.outlet_fact(x)?.datum_type != f16::datum_type() {
            continue;
        }
        let Some(op) = DepthwiseF16::from_conv(model, node)? else {
            continue;
        };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs[..1], op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    fuse_clamps(model)?;
    Ok(replaced)
}

/// Folds each max or min by a constant that alone reads a [`DepthwiseF16`]'s output into the
/// operator, one at a time until none is left (ReLU6: a max by 0, then a min by 6); returns how
/// many. Load-time work: the graph is walked again after each fold.
fn fuse_clamps(model: &mut TypedModel) -> TractResult<usize> {
    let mut fused = 0;
    'again: loop {
        for id in model.eval_order()? {
            let node = model.node(id);
            let Some(op) = node.op_as::<DepthwiseF16>() else {
                continue;
            };
            let Some(with) = clamp_after(model, node, op)? else {
                continue;
            };
            TypedModelPatch::fuse_with_next(model, node, with)?.apply(model)?;
            fused += 1;
            continue 'again;
        }
        return Ok(fused);
    }
}

/// `op` with the next node folded in, if that node is a max or min of `node`'s output (its only
/// reader, and not a model output) by one constant, whose output is f16 of the same shape.
/// Clamping to [lo, hi] and then taking the max by v is clamping to [max(lo, v), max(hi, v)];
/// likewise for a min.
fn clamp_after(
    model: &TypedModel,
    node: &TypedNode,
    op: &DepthwiseF16,
) -> TractResult<Option<DepthwiseF16>> {
    let out = OutletId::new(node.id, 0);
    if model.outputs.contains(&out) {
        return Ok(None);
    }
    let Some(next) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let Some(bin) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let (is_max, is_min) = (bin.0.is::<Max>(), bin.0.is::<Min>());
    if !(is_max || is_min) || next.inputs.len() != 2 || next.outputs.len() != 1 {
        return Ok(None);
    }
    let other = match next.inputs.iter().position(|&i| i == out) {
        Some(0) => next.inputs[1],
        Some(1) => next.inputs[0],
        _ => return Ok(None),
    };
    let (mine, theirs) = (
        model.outlet_fact(out)?,
        model.outlet_fact(OutletId::new(next.id, 0))?,
    );
    if theirs.datum_type != f16::datum_type() || theirs.shape != mine.shape {
        return Ok(None);
    }
    let Some(k) = constant(model, other)? else {
        return Ok(None);
    };
    if k.len() != 1 || !k.datum_type().is_float() {
        return Ok(None);
    }
    // Through a cast to f16 (`constant` follows casts) or already f16: the f16 value either way.
    let v = f16::from_f32(k.cast_to_scalar::<f32>()?);
    if v.is_nan() {
        // A NaN bound is NaN's rules (which FMAX and half's `max` do not share), not a clamp.
        return Ok(None);
    }
    let [lo, hi] = op.clamp();
    let clamp = if is_max {
        [lo.max(v), hi.max(v)]
    } else {
        [lo.min(v), hi.min(v)]
    };
    Ok(Some(DepthwiseF16 {
        clamp: clamp.map(f16::to_bits),
        ..op.clone()
    }))
}

/// The aarch64 FP16 kernels, one per kernel size and stride.
#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod kernels {
    use super::Geometry;
    use tract_core::prelude::f16;

    pub(super) fn available() -> bool {
        std::arch::is_aarch64_feature_detected!("fp16")
    }

    /// What one channels-first kernel call reads and writes. Contract (checked by [`run`]):
    /// `src` is a padded plane `row_bytes` wide with at least `(rows - 1)·s + k` rows, wide
    /// enough for `vectors` vectors of 8 outputs at stride s (see [`Geometry::new`]); `dst`
    /// holds `rows` rows of `out_row_bytes`, each `vectors` vectors, the last one only its
    /// first `rem` points when `rem` > 0; `kernel` holds the channel's taps rounded up to whole
    /// registers; `rows` ≥ 1, `vectors` ≥ 1, `rem` < 8.
    pub(super) struct Plane {
        src: *const f16,
        dst: *mut f16,
        rows: usize,
        row_bytes: usize,
        out_row_bytes: usize,
        vectors: usize,
        rem: usize,
        kernel: *const u16,
        bias: *const u16,
        /// Two f16s: every output is clamped to [lo, hi].
        clamp: *const f16,
        /// s·row_bytes: to the next output row's first input row.
        step: usize,
    }

    /// What one channel-last kernel call reads and writes. Contract (checked by
    /// [`run_channel_last`]): `src` is a padded plane of at least `(rows - 1)·s + k` rows of
    /// `row_bytes`, each at least `(cols - 1)·s + k` points of `channel_bytes` (C f16s, C a
    /// multiple of 8, `blocks` = C / 8); `dst` holds `rows`·`cols` points of C; `kernel` holds
    /// k² taps of C weights, `bias` C values; `rows`, `cols`, `blocks` ≥ 1.
    pub(super) struct Block {
        src: *const f16,
        dst: *mut f16,
        kernel: *const u16,
        bias: *const f16,
        /// Two f16s: every output is clamped to [lo, hi].
        clamp: *const f16,
        blocks: usize,
        rows: usize,
        cols: usize,
        channel_bytes: usize,
        /// From a point's first tap, once its first row's k taps are loaded, to its next
        /// rows' first taps: ky·row − k·channel, bytes, wrapping (ky = 1..k).
        rows_on: [usize; 4],
        /// To the next output point's first tap after a point's first row: (s − k)·channel.
        x_step: usize,
        /// To the next output row's first tap: s·row.
        y_step: usize,
    }

    pub(super) fn run_channel_last(
        g: &Geometry,
        plane: &[f16],
        kernel: &[u16],
        bias: &[f16],
        clamp: [f16; 2],
        out: &mut [f16],
    ) {
        assert!(
            g.oh >= 1
                && g.ow >= 1
                && g.c >= 8
                && g.c.is_multiple_of(8)
                && g.plane_h >= (g.oh - 1) * g.s + g.k
                && g.plane_w >= (g.ow - 1) * g.s + g.k
                && plane.len() >= g.plane_h * g.plane_w * g.c
                && out.len() == g.oh * g.ow * g.c
                && kernel.len() == g.k * g.k * g.c
                && bias.len() == g.c
        );
        let row = g.plane_w * g.c * 2;
        let p = Block {
            src: plane.as_ptr(),
            dst: out.as_mut_ptr(),
            kernel: kernel.as_ptr(),
            bias: bias.as_ptr(),
            clamp: clamp.as_ptr(),
            blocks: g.c / 8,
            rows: g.oh,
            cols: g.ow,
            channel_bytes: g.c * 2,
            rows_on: [1, 2, 3, 4].map(|ky| (ky * row).wrapping_sub(g.k * g.c * 2)),
            x_step: (g.s * g.c * 2).wrapping_sub(g.k * g.c * 2),
            y_step: g.s * row,
        };
        // SAFETY: the assertion above is `Block`'s contract; `available()` was checked by the
        // caller, so the FP16 instructions exist.
        unsafe {
            match (g.k, g.s) {
                (3, 1 | 2) => c3(&p),
                (5, 1 | 2) => c5(&p),
                _ => unreachable!("DepthwiseF16::from_conv admits 3×3 and 5×5, strides 1 and 2"),
            }
        }
    }

    pub(super) fn run(
        g: &Geometry,
        plane: &[f16],
        kernel: &[u16],
        bias: f16,
        clamp: [f16; 2],
        out: &mut [f16],
    ) {
        assert!(
            g.oh >= 1
                && plane.len() >= g.plane_h * g.plane_w
                && g.plane_h >= (g.oh - 1) * g.s + g.k
                && g.plane_w >= g.ow.div_ceil(8) * 8 * g.s + g.k + 8
                && out.len() == g.oh * g.ow
                && kernel.len() == (g.k * g.k).next_multiple_of(8)
        );
        let bias = bias.to_bits();
        let p = Plane {
            src: plane.as_ptr(),
            dst: out.as_mut_ptr(),
            rows: g.oh,
            row_bytes: g.plane_w * 2,
            out_row_bytes: g.ow * 2,
            vectors: g.ow.div_ceil(8),
            rem: g.ow % 8,
            kernel: kernel.as_ptr(),
            bias: &bias,
            clamp: clamp.as_ptr(),
            step: g.s * g.plane_w * 2,
        };
        // SAFETY: the assertion above is `Plane`'s contract; `available()` was checked by the
        // caller, so the FP16 instructions exist.
        unsafe {
            match (g.k, g.s) {
                (3, 1) => k3s1(&p),
                (3, 2) => k3s2(&p),
                (5, 1) => k5s1(&p),
                (5, 2) => k5s2(&p),
                _ => unreachable!("DepthwiseF16::from_conv admits 3×3 and 5×5, strides 1 and 2"),
            }
        }
    }

    // BEGIN GENERATED by gen-kernels.py: edit that, not this.
    /// 3×3, stride 1, channels first.
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn k3s1(p: &Plane) {
        // SAFETY: the caller (`Plane`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld1 {{v0.8h, v1.8h}}, [{k}]",
                "ld1r {{v4.8h}}, [{b}]",
                "ld2r {{v5.8h, v6.8h}}, [{cl}]",
                "2:",
                "mov {r0}, {src}",
                "add {r1}, {r0}, {row}",
                "add {r2}, {r1}, {row}",
                "mov {d}, {dst}",
                "mov {n}, {vectors}",
                "3:",
                "mov v16.16b, v4.16b",
                "ldr q17, [{r0}]",
                "ldur q18, [{r0}, #2]",
                "ldur q19, [{r0}, #4]",
                "fmla v16.8h, v17.8h, v0.h[0]",
                "fmla v16.8h, v18.8h, v0.h[1]",
                "fmla v16.8h, v19.8h, v0.h[2]",
                "ldr q17, [{r1}]",
                "ldur q18, [{r1}, #2]",
                "ldur q19, [{r1}, #4]",
                "fmla v16.8h, v17.8h, v0.h[3]",
                "fmla v16.8h, v18.8h, v0.h[4]",
                "fmla v16.8h, v19.8h, v0.h[5]",
                "ldr q17, [{r2}]",
                "ldur q18, [{r2}, #2]",
                "ldur q19, [{r2}, #4]",
                "fmla v16.8h, v17.8h, v0.h[6]",
                "fmla v16.8h, v18.8h, v0.h[7]",
                "fmla v16.8h, v19.8h, v1.h[0]",
                "fmax v16.8h, v16.8h, v5.8h",
                "fmin v16.8h, v16.8h, v6.8h",
                "add {r0}, {r0}, #16",
                "add {r1}, {r1}, #16",
                "add {r2}, {r2}, #16",
                "subs {n}, {n}, #1",
                "b.ne 4f",
                "cbnz {rem}, 5f",
                "4:",
                "str q16, [{d}], #16",
                "cbnz {n}, 3b",
                "b 8f",
                "5:",
                "tbz {rem}, #2, 6f",
                "st1 {{v16.d}}[0], [{d}], #8",
                "ext v16.16b, v16.16b, v16.16b, #8",
                "6:",
                "tbz {rem}, #1, 7f",
                "st1 {{v16.s}}[0], [{d}], #4",
                "ext v16.16b, v16.16b, v16.16b, #4",
                "7:",
                "tbz {rem}, #0, 8f",
                "st1 {{v16.h}}[0], [{d}]",
                "8:",
                "add {src}, {src}, {step}",
                "add {dst}, {dst}, {out_row}",
                "subs {rows}, {rows}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                rows = inout(reg) p.rows => _,
                row = in(reg) p.row_bytes,
                step = in(reg) p.step,
                out_row = in(reg) p.out_row_bytes,
                vectors = in(reg) p.vectors,
                rem = in(reg) p.rem,
                k = in(reg) p.kernel,
                b = in(reg) p.bias,
                cl = in(reg) p.clamp,
                r0 = out(reg) _, r1 = out(reg) _, r2 = out(reg) _,
                d = out(reg) _, n = out(reg) _,
                out("v0") _, out("v1") _, out("v4") _, out("v5") _, out("v6") _, out("v16") _, out("v17") _, out("v18") _,
                out("v19") _,
                options(nostack),
            );
        }
    }

    /// 3×3, stride 2, channels first.
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn k3s2(p: &Plane) {
        // SAFETY: the caller (`Plane`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld1 {{v0.8h, v1.8h}}, [{k}]",
                "ld1r {{v4.8h}}, [{b}]",
                "ld2r {{v5.8h, v6.8h}}, [{cl}]",
                "2:",
                "mov {r0}, {src}",
                "add {r1}, {r0}, {row}",
                "add {r2}, {r1}, {row}",
                "mov {d}, {dst}",
                "mov {n}, {vectors}",
                "3:",
                "mov v16.16b, v4.16b",
                "ld2 {{v17.8h, v18.8h}}, [{r0}]",
                "add {t}, {r0}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v0.h[0]",
                "fmla v16.8h, v18.8h, v0.h[1]",
                "fmla v16.8h, v19.8h, v0.h[2]",
                "ld2 {{v17.8h, v18.8h}}, [{r1}]",
                "add {t}, {r1}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v0.h[3]",
                "fmla v16.8h, v18.8h, v0.h[4]",
                "fmla v16.8h, v19.8h, v0.h[5]",
                "ld2 {{v17.8h, v18.8h}}, [{r2}]",
                "add {t}, {r2}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v0.h[6]",
                "fmla v16.8h, v18.8h, v0.h[7]",
                "fmla v16.8h, v19.8h, v1.h[0]",
                "fmax v16.8h, v16.8h, v5.8h",
                "fmin v16.8h, v16.8h, v6.8h",
                "add {r0}, {r0}, #32",
                "add {r1}, {r1}, #32",
                "add {r2}, {r2}, #32",
                "subs {n}, {n}, #1",
                "b.ne 4f",
                "cbnz {rem}, 5f",
                "4:",
                "str q16, [{d}], #16",
                "cbnz {n}, 3b",
                "b 8f",
                "5:",
                "tbz {rem}, #2, 6f",
                "st1 {{v16.d}}[0], [{d}], #8",
                "ext v16.16b, v16.16b, v16.16b, #8",
                "6:",
                "tbz {rem}, #1, 7f",
                "st1 {{v16.s}}[0], [{d}], #4",
                "ext v16.16b, v16.16b, v16.16b, #4",
                "7:",
                "tbz {rem}, #0, 8f",
                "st1 {{v16.h}}[0], [{d}]",
                "8:",
                "add {src}, {src}, {step}",
                "add {dst}, {dst}, {out_row}",
                "subs {rows}, {rows}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                rows = inout(reg) p.rows => _,
                row = in(reg) p.row_bytes,
                step = in(reg) p.step,
                out_row = in(reg) p.out_row_bytes,
                vectors = in(reg) p.vectors,
                rem = in(reg) p.rem,
                k = in(reg) p.kernel,
                b = in(reg) p.bias,
                cl = in(reg) p.clamp,
                r0 = out(reg) _, r1 = out(reg) _, r2 = out(reg) _,
                d = out(reg) _, n = out(reg) _,
                t = out(reg) _,
                out("v0") _, out("v1") _, out("v4") _, out("v5") _, out("v6") _, out("v16") _, out("v17") _, out("v18") _,
                out("v19") _, out("v20") _,
                options(nostack),
            );
        }
    }

    /// 5×5, stride 1, channels first.
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn k5s1(p: &Plane) {
        // SAFETY: the caller (`Plane`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld1 {{v0.8h, v1.8h, v2.8h, v3.8h}}, [{k}]",
                "ld1r {{v4.8h}}, [{b}]",
                "ld2r {{v5.8h, v6.8h}}, [{cl}]",
                "2:",
                "mov {r0}, {src}",
                "add {r1}, {r0}, {row}",
                "add {r2}, {r1}, {row}",
                "add {r3}, {r2}, {row}",
                "add {r4}, {r3}, {row}",
                "mov {d}, {dst}",
                "mov {n}, {vectors}",
                "3:",
                "mov v16.16b, v4.16b",
                "ldr q17, [{r0}]",
                "ldur q18, [{r0}, #2]",
                "ldur q19, [{r0}, #4]",
                "ldur q20, [{r0}, #6]",
                "ldur q21, [{r0}, #8]",
                "fmla v16.8h, v17.8h, v0.h[0]",
                "fmla v16.8h, v18.8h, v0.h[1]",
                "fmla v16.8h, v19.8h, v0.h[2]",
                "fmla v16.8h, v20.8h, v0.h[3]",
                "fmla v16.8h, v21.8h, v0.h[4]",
                "ldr q17, [{r1}]",
                "ldur q18, [{r1}, #2]",
                "ldur q19, [{r1}, #4]",
                "ldur q20, [{r1}, #6]",
                "ldur q21, [{r1}, #8]",
                "fmla v16.8h, v17.8h, v0.h[5]",
                "fmla v16.8h, v18.8h, v0.h[6]",
                "fmla v16.8h, v19.8h, v0.h[7]",
                "fmla v16.8h, v20.8h, v1.h[0]",
                "fmla v16.8h, v21.8h, v1.h[1]",
                "ldr q17, [{r2}]",
                "ldur q18, [{r2}, #2]",
                "ldur q19, [{r2}, #4]",
                "ldur q20, [{r2}, #6]",
                "ldur q21, [{r2}, #8]",
                "fmla v16.8h, v17.8h, v1.h[2]",
                "fmla v16.8h, v18.8h, v1.h[3]",
                "fmla v16.8h, v19.8h, v1.h[4]",
                "fmla v16.8h, v20.8h, v1.h[5]",
                "fmla v16.8h, v21.8h, v1.h[6]",
                "ldr q17, [{r3}]",
                "ldur q18, [{r3}, #2]",
                "ldur q19, [{r3}, #4]",
                "ldur q20, [{r3}, #6]",
                "ldur q21, [{r3}, #8]",
                "fmla v16.8h, v17.8h, v1.h[7]",
                "fmla v16.8h, v18.8h, v2.h[0]",
                "fmla v16.8h, v19.8h, v2.h[1]",
                "fmla v16.8h, v20.8h, v2.h[2]",
                "fmla v16.8h, v21.8h, v2.h[3]",
                "ldr q17, [{r4}]",
                "ldur q18, [{r4}, #2]",
                "ldur q19, [{r4}, #4]",
                "ldur q20, [{r4}, #6]",
                "ldur q21, [{r4}, #8]",
                "fmla v16.8h, v17.8h, v2.h[4]",
                "fmla v16.8h, v18.8h, v2.h[5]",
                "fmla v16.8h, v19.8h, v2.h[6]",
                "fmla v16.8h, v20.8h, v2.h[7]",
                "fmla v16.8h, v21.8h, v3.h[0]",
                "fmax v16.8h, v16.8h, v5.8h",
                "fmin v16.8h, v16.8h, v6.8h",
                "add {r0}, {r0}, #16",
                "add {r1}, {r1}, #16",
                "add {r2}, {r2}, #16",
                "add {r3}, {r3}, #16",
                "add {r4}, {r4}, #16",
                "subs {n}, {n}, #1",
                "b.ne 4f",
                "cbnz {rem}, 5f",
                "4:",
                "str q16, [{d}], #16",
                "cbnz {n}, 3b",
                "b 8f",
                "5:",
                "tbz {rem}, #2, 6f",
                "st1 {{v16.d}}[0], [{d}], #8",
                "ext v16.16b, v16.16b, v16.16b, #8",
                "6:",
                "tbz {rem}, #1, 7f",
                "st1 {{v16.s}}[0], [{d}], #4",
                "ext v16.16b, v16.16b, v16.16b, #4",
                "7:",
                "tbz {rem}, #0, 8f",
                "st1 {{v16.h}}[0], [{d}]",
                "8:",
                "add {src}, {src}, {step}",
                "add {dst}, {dst}, {out_row}",
                "subs {rows}, {rows}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                rows = inout(reg) p.rows => _,
                row = in(reg) p.row_bytes,
                step = in(reg) p.step,
                out_row = in(reg) p.out_row_bytes,
                vectors = in(reg) p.vectors,
                rem = in(reg) p.rem,
                k = in(reg) p.kernel,
                b = in(reg) p.bias,
                cl = in(reg) p.clamp,
                r0 = out(reg) _, r1 = out(reg) _, r2 = out(reg) _, r3 = out(reg) _, r4 = out(reg) _,
                d = out(reg) _, n = out(reg) _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v16") _,
                out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _,
                options(nostack),
            );
        }
    }

    /// 5×5, stride 2, channels first.
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn k5s2(p: &Plane) {
        // SAFETY: the caller (`Plane`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld1 {{v0.8h, v1.8h, v2.8h, v3.8h}}, [{k}]",
                "ld1r {{v4.8h}}, [{b}]",
                "ld2r {{v5.8h, v6.8h}}, [{cl}]",
                "2:",
                "mov {r0}, {src}",
                "add {r1}, {r0}, {row}",
                "add {r2}, {r1}, {row}",
                "add {r3}, {r2}, {row}",
                "add {r4}, {r3}, {row}",
                "mov {d}, {dst}",
                "mov {n}, {vectors}",
                "3:",
                "mov v16.16b, v4.16b",
                "ld2 {{v17.8h, v18.8h}}, [{r0}]",
                "add {t}, {r0}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "add {t}, {r0}, #8",
                "ld2 {{v21.8h, v22.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v0.h[0]",
                "fmla v16.8h, v18.8h, v0.h[1]",
                "fmla v16.8h, v19.8h, v0.h[2]",
                "fmla v16.8h, v20.8h, v0.h[3]",
                "fmla v16.8h, v21.8h, v0.h[4]",
                "ld2 {{v17.8h, v18.8h}}, [{r1}]",
                "add {t}, {r1}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "add {t}, {r1}, #8",
                "ld2 {{v21.8h, v22.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v0.h[5]",
                "fmla v16.8h, v18.8h, v0.h[6]",
                "fmla v16.8h, v19.8h, v0.h[7]",
                "fmla v16.8h, v20.8h, v1.h[0]",
                "fmla v16.8h, v21.8h, v1.h[1]",
                "ld2 {{v17.8h, v18.8h}}, [{r2}]",
                "add {t}, {r2}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "add {t}, {r2}, #8",
                "ld2 {{v21.8h, v22.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v1.h[2]",
                "fmla v16.8h, v18.8h, v1.h[3]",
                "fmla v16.8h, v19.8h, v1.h[4]",
                "fmla v16.8h, v20.8h, v1.h[5]",
                "fmla v16.8h, v21.8h, v1.h[6]",
                "ld2 {{v17.8h, v18.8h}}, [{r3}]",
                "add {t}, {r3}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "add {t}, {r3}, #8",
                "ld2 {{v21.8h, v22.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v1.h[7]",
                "fmla v16.8h, v18.8h, v2.h[0]",
                "fmla v16.8h, v19.8h, v2.h[1]",
                "fmla v16.8h, v20.8h, v2.h[2]",
                "fmla v16.8h, v21.8h, v2.h[3]",
                "ld2 {{v17.8h, v18.8h}}, [{r4}]",
                "add {t}, {r4}, #4",
                "ld2 {{v19.8h, v20.8h}}, [{t}]",
                "add {t}, {r4}, #8",
                "ld2 {{v21.8h, v22.8h}}, [{t}]",
                "fmla v16.8h, v17.8h, v2.h[4]",
                "fmla v16.8h, v18.8h, v2.h[5]",
                "fmla v16.8h, v19.8h, v2.h[6]",
                "fmla v16.8h, v20.8h, v2.h[7]",
                "fmla v16.8h, v21.8h, v3.h[0]",
                "fmax v16.8h, v16.8h, v5.8h",
                "fmin v16.8h, v16.8h, v6.8h",
                "add {r0}, {r0}, #32",
                "add {r1}, {r1}, #32",
                "add {r2}, {r2}, #32",
                "add {r3}, {r3}, #32",
                "add {r4}, {r4}, #32",
                "subs {n}, {n}, #1",
                "b.ne 4f",
                "cbnz {rem}, 5f",
                "4:",
                "str q16, [{d}], #16",
                "cbnz {n}, 3b",
                "b 8f",
                "5:",
                "tbz {rem}, #2, 6f",
                "st1 {{v16.d}}[0], [{d}], #8",
                "ext v16.16b, v16.16b, v16.16b, #8",
                "6:",
                "tbz {rem}, #1, 7f",
                "st1 {{v16.s}}[0], [{d}], #4",
                "ext v16.16b, v16.16b, v16.16b, #4",
                "7:",
                "tbz {rem}, #0, 8f",
                "st1 {{v16.h}}[0], [{d}]",
                "8:",
                "add {src}, {src}, {step}",
                "add {dst}, {dst}, {out_row}",
                "subs {rows}, {rows}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                rows = inout(reg) p.rows => _,
                row = in(reg) p.row_bytes,
                step = in(reg) p.step,
                out_row = in(reg) p.out_row_bytes,
                vectors = in(reg) p.vectors,
                rem = in(reg) p.rem,
                k = in(reg) p.kernel,
                b = in(reg) p.bias,
                cl = in(reg) p.clamp,
                r0 = out(reg) _, r1 = out(reg) _, r2 = out(reg) _, r3 = out(reg) _, r4 = out(reg) _,
                d = out(reg) _, n = out(reg) _,
                t = out(reg) _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v16") _,
                out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _,
                options(nostack),
            );
        }
    }

    /// 3×3, channels last, either stride (the caller's steps carry it).
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn c3(p: &Block) {
        // SAFETY: the caller (`Block`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld2r {{v30.8h, v31.8h}}, [{cl}]",
                "2:",
                "mov {t}, {kernel}",
                "ld1 {{v0.8h}}, [{t}], {cs}",
                "ld1 {{v1.8h}}, [{t}], {cs}",
                "ld1 {{v2.8h}}, [{t}], {cs}",
                "ld1 {{v3.8h}}, [{t}], {cs}",
                "ld1 {{v4.8h}}, [{t}], {cs}",
                "ld1 {{v5.8h}}, [{t}], {cs}",
                "ld1 {{v6.8h}}, [{t}], {cs}",
                "ld1 {{v7.8h}}, [{t}], {cs}",
                "ld1 {{v8.8h}}, [{t}], {cs}",
                "ldr q26, [{bias}], #16",
                "mov {row}, {src}",
                "mov {d}, {dst}",
                "mov {y}, {rows}",
                "3:",
                "mov {p}, {row}",
                "mov {x}, {cols}",
                "4:",
                "mov v25.16b, v26.16b",
                "ld1 {{v27.8h}}, [{p}], {cs}",
                "fmla v25.8h, v27.8h, v0.8h",
                "ld1 {{v28.8h}}, [{p}], {cs}",
                "fmla v25.8h, v28.8h, v1.8h",
                "ld1 {{v29.8h}}, [{p}], {cs}",
                "fmla v25.8h, v29.8h, v2.8h",
                "add {q}, {p}, {rs1}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v3.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v4.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v5.8h",
                "add {q}, {p}, {rs2}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v6.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v7.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v8.8h",
                "fmax v25.8h, v25.8h, v30.8h",
                "fmin v25.8h, v25.8h, v31.8h",
                "st1 {{v25.8h}}, [{d}], {cs}",
                "add {p}, {p}, {xs}",
                "subs {x}, {x}, #1",
                "b.ne 4b",
                "add {row}, {row}, {ys}",
                "subs {y}, {y}, #1",
                "b.ne 3b",
                "add {src}, {src}, #16",
                "add {dst}, {dst}, #16",
                "add {kernel}, {kernel}, #16",
                "subs {blocks}, {blocks}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                kernel = inout(reg) p.kernel => _,
                bias = inout(reg) p.bias => _,
                blocks = inout(reg) p.blocks => _,
                rows = in(reg) p.rows,
                cols = in(reg) p.cols,
                cs = in(reg) p.channel_bytes,
                cl = in(reg) p.clamp,
                rs1 = in(reg) p.rows_on[0],
                rs2 = in(reg) p.rows_on[1],
                xs = in(reg) p.x_step,
                ys = in(reg) p.y_step,
                t = out(reg) _, row = out(reg) _, d = out(reg) _, y = out(reg) _,
                p = out(reg) _, x = out(reg) _, q = out(reg) _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                options(nostack),
            );
        }
    }

    /// 5×5, channels last, either stride (the caller's steps carry it).
    #[target_feature(enable = "fp16")]
    pub(super) unsafe fn c5(p: &Block) {
        // SAFETY: the caller (`Block`'s contract) guarantees every read and write below in
        // bounds.
        unsafe {
            std::arch::asm!(
                "ld2r {{v30.8h, v31.8h}}, [{cl}]",
                "2:",
                "mov {t}, {kernel}",
                "ld1 {{v0.8h}}, [{t}], {cs}",
                "ld1 {{v1.8h}}, [{t}], {cs}",
                "ld1 {{v2.8h}}, [{t}], {cs}",
                "ld1 {{v3.8h}}, [{t}], {cs}",
                "ld1 {{v4.8h}}, [{t}], {cs}",
                "ld1 {{v5.8h}}, [{t}], {cs}",
                "ld1 {{v6.8h}}, [{t}], {cs}",
                "ld1 {{v7.8h}}, [{t}], {cs}",
                "ld1 {{v8.8h}}, [{t}], {cs}",
                "ld1 {{v9.8h}}, [{t}], {cs}",
                "ld1 {{v10.8h}}, [{t}], {cs}",
                "ld1 {{v11.8h}}, [{t}], {cs}",
                "ld1 {{v12.8h}}, [{t}], {cs}",
                "ld1 {{v13.8h}}, [{t}], {cs}",
                "ld1 {{v14.8h}}, [{t}], {cs}",
                "ld1 {{v15.8h}}, [{t}], {cs}",
                "ld1 {{v16.8h}}, [{t}], {cs}",
                "ld1 {{v17.8h}}, [{t}], {cs}",
                "ld1 {{v18.8h}}, [{t}], {cs}",
                "ld1 {{v19.8h}}, [{t}], {cs}",
                "ld1 {{v20.8h}}, [{t}], {cs}",
                "ld1 {{v21.8h}}, [{t}], {cs}",
                "ld1 {{v22.8h}}, [{t}], {cs}",
                "ld1 {{v23.8h}}, [{t}], {cs}",
                "ld1 {{v24.8h}}, [{t}], {cs}",
                "ldr q26, [{bias}], #16",
                "mov {row}, {src}",
                "mov {d}, {dst}",
                "mov {y}, {rows}",
                "3:",
                "mov {p}, {row}",
                "mov {x}, {cols}",
                "4:",
                "mov v25.16b, v26.16b",
                "ld1 {{v27.8h}}, [{p}], {cs}",
                "fmla v25.8h, v27.8h, v0.8h",
                "ld1 {{v28.8h}}, [{p}], {cs}",
                "fmla v25.8h, v28.8h, v1.8h",
                "ld1 {{v29.8h}}, [{p}], {cs}",
                "fmla v25.8h, v29.8h, v2.8h",
                "ld1 {{v27.8h}}, [{p}], {cs}",
                "fmla v25.8h, v27.8h, v3.8h",
                "ld1 {{v28.8h}}, [{p}], {cs}",
                "fmla v25.8h, v28.8h, v4.8h",
                "add {q}, {p}, {rs1}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v5.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v6.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v7.8h",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v8.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v9.8h",
                "add {q}, {p}, {rs2}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v10.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v11.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v12.8h",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v13.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v14.8h",
                "add {q}, {p}, {rs3}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v15.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v16.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v17.8h",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v18.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v19.8h",
                "add {q}, {p}, {rs4}",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v20.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v21.8h",
                "ld1 {{v29.8h}}, [{q}], {cs}",
                "fmla v25.8h, v29.8h, v22.8h",
                "ld1 {{v27.8h}}, [{q}], {cs}",
                "fmla v25.8h, v27.8h, v23.8h",
                "ld1 {{v28.8h}}, [{q}], {cs}",
                "fmla v25.8h, v28.8h, v24.8h",
                "fmax v25.8h, v25.8h, v30.8h",
                "fmin v25.8h, v25.8h, v31.8h",
                "st1 {{v25.8h}}, [{d}], {cs}",
                "add {p}, {p}, {xs}",
                "subs {x}, {x}, #1",
                "b.ne 4b",
                "add {row}, {row}, {ys}",
                "subs {y}, {y}, #1",
                "b.ne 3b",
                "add {src}, {src}, #16",
                "add {dst}, {dst}, #16",
                "add {kernel}, {kernel}, #16",
                "subs {blocks}, {blocks}, #1",
                "b.ne 2b",
                src = inout(reg) p.src => _,
                dst = inout(reg) p.dst => _,
                kernel = inout(reg) p.kernel => _,
                bias = inout(reg) p.bias => _,
                blocks = inout(reg) p.blocks => _,
                rows = in(reg) p.rows,
                cols = in(reg) p.cols,
                cs = in(reg) p.channel_bytes,
                cl = in(reg) p.clamp,
                rs1 = in(reg) p.rows_on[0],
                rs2 = in(reg) p.rows_on[1],
                rs3 = in(reg) p.rows_on[2],
                rs4 = in(reg) p.rows_on[3],
                xs = in(reg) p.x_step,
                ys = in(reg) p.y_step,
                t = out(reg) _, row = out(reg) _, d = out(reg) _, y = out(reg) _,
                p = out(reg) _, x = out(reg) _, q = out(reg) _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                options(nostack),
            );
        }
    }
    // END GENERATED
}

#[cfg(not(target_arch = "aarch64"))]
mod kernels {
    use super::Geometry;
    use tract_core::prelude::f16;

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn run(_: &Geometry, _: &[f16], _: &[u16], _: f16, _: [f16; 2], _: &mut [f16]) {
        unreachable!("available() is false")
    }

    pub(super) fn run_channel_last(
        _: &Geometry,
        _: &[f16],
        _: &[u16],
        _: &[f16],
        _: [f16; 2],
        _: &mut [f16],
    ) {
        unreachable!("available() is false")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    /// Bounds inside the sums' range, so that the kernels' clamps are exercised at both ends.
    const CLAMP: [f16; 2] = [f16::from_f32_const(-0.25), f16::from_f32_const(0.5)];

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as f32 / u32::MAX as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// One f32 depthwise `Conv` of tract's over `c` channels of `h`×`w` in `format`, with a
    /// bias a channel.
    fn conv_model(
        format: DataFormat,
        c: usize,
        [h, w]: [usize; 2],
        k: usize,
        s: usize,
        padding: PaddingSpec,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let shape = layout(format).shape(c, h, w);
        let x = model.add_source("x", f32::fact(&*shape)).unwrap();
        let kernel = Tensor::from_shape(&[c, 1, k, k], &values(c * k * k, 7 + k as u32)).unwrap();
        let bias = Tensor::from_shape(&[c], &values(c, 99)).unwrap();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", bias).unwrap();
        let spec = PoolSpec {
            data_format: format,
            kernel_shape: tvec![k, k],
            padding,
            dilations: None,
            strides: Some(tvec![s, s]),
            input_channels: c,
            output_channels: c,
        };
        let conv = Conv::new(spec, KernelFormat::OIHW, c, None);
        let y = model.wire_node("dw", conv, &[x, kernel, bias]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    /// `conv_model` followed by a max by `lo` and a min by `hi`, as tract-onnx wires ONNX's
    /// `Clip` (EfficientNet-Lite's ReLU6): constants of the output's rank, one value each.
    fn clipped_model(format: DataFormat, c: usize, hw: [usize; 2], lo: f32, hi: f32) -> TypedModel {
        let mut model = conv_model(format, c, hw, 3, 1, PaddingSpec::SameUpper);
        let y = model.outputs[0];
        let rank = model.outlet_fact(y).unwrap().rank();
        let ones = vec![1; rank];
        let lo = model
            .add_const("lo", Tensor::from_shape(&ones, &[lo]).unwrap())
            .unwrap();
        let hi = model
            .add_const("hi", Tensor::from_shape(&ones, &[hi]).unwrap())
            .unwrap();
        let y = model
            .wire_node("clip.min", tract_core::ops::math::max(), &[y, lo])
            .unwrap();
        let y = model
            .wire_node("clip.max", tract_core::ops::math::min(), &[y[0], hi])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    /// A ReLU-like clip after the convolution becomes the operator's clamp: no max or min is
    /// left, and the result is tract's f32 clip within f16 rounding, in every layout.
    #[test]
    fn a_clip_after_the_convolution_is_folded_in() {
        for format in [
            DataFormat::NCHW,
            DataFormat::CHW,
            DataFormat::NHWC,
            DataFormat::HWC,
        ] {
            let (c, h, w) = (16, 9, 11);
            let f32_model = clipped_model(format, c, [h, w], -0.25, 0.5);
            let shape = layout(format).shape(c, h, w);
            let input = Tensor::from_shape(&shape, &values(c * h * w, 3)).unwrap();
            let want = run(f32_model.clone(), &input);
            // Both bounds bite somewhere, or the test would not see a missing clamp.
            assert!(want.contains(&-0.25) && want.contains(&0.5));

            let mut model = f32_model;
            assert_eq!(crate::translate(&mut model).unwrap(), 1, "{format:?}");
            // The nodes the model still runs (a patch leaves the ones it replaced as dummies).
            let ops: Vec<&TypedNode> = model
                .eval_order()
                .unwrap()
                .into_iter()
                .map(|id| model.node(id))
                .filter(|n| {
                    !n.op_is::<tract_core::ops::konst::Const>()
                        && !n.op_is::<tract_core::ops::source::TypedSource>()
                })
                .collect();
            assert!(
                ops.len() == 1 && ops[0].op_is::<DepthwiseF16>(),
                "{format:?}: {:?}",
                ops.iter().map(|n| n.op.name()).collect::<Vec<_>>()
            );
            let got = run(model, &input);
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                assert!((a - b).abs() <= 2e-3 * 9.0, "{format:?} at {i}: {a} vs {b}");
            }
        }
    }

    /// A max by NaN follows NaN's rules, not a clamp's: left to tract, and the min after it too.
    #[test]
    fn a_nan_bound_is_not_folded() {
        let mut model = clipped_model(DataFormat::HWC, 8, [5, 5], f32::NAN, 6.0);
        assert_eq!(crate::translate(&mut model).unwrap(), 1);
        let order = model.eval_order().unwrap();
        let op = order
            .iter()
            .find_map(|&id| model.node(id).op_as::<DepthwiseF16>())
            .unwrap();
        assert_eq!(op.clamp(), [f16::NEG_INFINITY, f16::INFINITY]);
        let binops = order
            .iter()
            .filter(|&&id| model.node(id).op_is::<TypedBinOp>())
            .count();
        assert_eq!(binops, 2);
    }

    /// A max or min whose result another node also reads is left where it is.
    #[test]
    fn a_clip_is_not_folded_when_the_sums_are_read_elsewhere() {
        let mut model = clipped_model(DataFormat::HWC, 8, [5, 5], 0.0, 6.0);
        let dw = model.node_by_name("dw").unwrap().id;
        let mut outputs = model.outputs.clone();
        outputs.push(OutletId::new(dw, 0));
        model.select_output_outlets(&outputs).unwrap();
        assert_eq!(crate::translate(&mut model).unwrap(), 1);
        let dw = model
            .nodes
            .iter()
            .find(|n| n.op_is::<DepthwiseF16>())
            .unwrap();
        let op = dw.op_as::<DepthwiseF16>().unwrap();
        assert_eq!(op.clamp(), [f16::NEG_INFINITY, f16::INFINITY]);
        let order = model.eval_order().unwrap();
        assert!(order.iter().any(|&id| model.node(id).op_is::<TypedBinOp>()));
    }

    fn layout(format: DataFormat) -> Layout {
        match format {
            DataFormat::NCHW => Layout::Nchw,
            DataFormat::CHW => Layout::Chw,
            DataFormat::NHWC => Layout::Nhwc,
            DataFormat::HWC => Layout::Hwc,
        }
    }

    /// Runs `model` on `input` (cast to the model's input type), result as f32.
    fn run(model: TypedModel, input: &Tensor) -> Vec<f32> {
        let dt = model.input_fact(0).unwrap().datum_type;
        let input = input.cast_to_dt(dt).unwrap().into_owned();
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into()))
            .unwrap();
        let out = out[0].cast_to::<f32>().unwrap();
        out.try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    /// Every shape class EfficientNet-Lite has and some it has not, in every layout: both
    /// kernel sizes and strides, symmetric and asymmetric ("same upper") padding, no padding,
    /// output rows shorter than a vector, a whole number of vectors, and a vector and a bit.
    #[test]
    fn equals_tracts_f32_conv_within_f16_rounding() {
        let cases = [
            (3, 1, 9, 9, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            (
                3,
                2,
                13,
                21,
                PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]),
            ),
            (3, 2, 16, 16, PaddingSpec::SameUpper),
            (5, 1, 7, 7, PaddingSpec::Explicit(tvec![2, 2], tvec![2, 2])),
            (5, 2, 14, 30, PaddingSpec::SameUpper),
            (5, 1, 12, 17, PaddingSpec::Valid),
            (3, 1, 4, 33, PaddingSpec::Explicit(tvec![0, 2], tvec![1, 0])),
        ];
        let formats = [
            DataFormat::NCHW,
            DataFormat::CHW,
            DataFormat::NHWC,
            DataFormat::HWC,
        ];
        for ((k, s, h, w, padding), format) in cases
            .into_iter()
            .flat_map(|c| formats.map(|f| (c.clone(), f)))
        {
            let c = 24;
            let f32_model = conv_model(format, c, [h, w], k, s, padding.clone());
            let shape = layout(format).shape(c, h, w);
            let input = Tensor::from_shape(&shape, &values(c * h * w, 3)).unwrap();
            let want = run(f32_model.clone(), &input);

            let mut model = f32_model;
            assert_eq!(
                crate::translate(&mut model).unwrap(),
                1,
                "{format:?} {k}×{k}/{s} {padding:?}"
            );
            assert!(model.nodes.iter().any(|n| n.op_is::<DepthwiseF16>()));
            assert!(!model.nodes.iter().any(|n| n.op_is::<Conv>()));
            let got = run(model, &input);
            assert_eq!(got.len(), want.len(), "{k}×{k}/{s} {padding:?}");
            // Inputs, weights and bias round to f16 (relative 2⁻¹¹ each) and the sum of k²
            // products of magnitude ≤ 1 rounds after each step in the vector kernels.
            let tolerance = 2e-3 * (k * k) as f32;
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                assert!(
                    (a - b).abs() <= tolerance,
                    "{format:?} {k}×{k}/{s} {padding:?} at {i}: {a} vs {b}"
                );
            }
        }
    }

    /// The vector kernels and the portable arithmetic agree, on a machine that has the former
    /// (under qemu, `-cpu cortex-a76` or `max`); elsewhere this checks nothing and says so.
    #[test]
    fn vector_kernels_equal_the_portable_arithmetic() {
        if !kernels::available() {
            eprintln!("no FP16 vector kernels on this machine: nothing to compare");
            return;
        }
        for (k, s, h, w) in [(3, 1, 10, 23), (3, 2, 11, 40), (5, 1, 9, 8), (5, 2, 15, 7)] {
            let c = 3;
            let model = conv_model(DataFormat::CHW, c, [h, w], k, s, PaddingSpec::SameUpper);
            let node = model.node(model.outputs[0].node);
            let op = DepthwiseF16::from_conv(&model, node).unwrap().unwrap();
            let g = op.geo;
            let x: Vec<f16> = values(c * h * w, 5)
                .into_iter()
                .map(f16::from_f32)
                .collect();
            let mut plane = vec![f16::ZERO; g.plane_h * g.plane_w];
            for y in 0..h {
                let at = (g.top + y) * g.plane_w + g.left;
                plane[at..at + w].copy_from_slice(&x[y * w..][..w]);
            }
            let stored = g.taps_stored();
            let (mut fast, mut slow) = (vec![f16::ZERO; g.oh * g.ow], vec![f16::ZERO; g.oh * g.ow]);
            let bias = f16::from_bits(op.bias[0]);
            kernels::run(&g, &plane, &op.kernel[..stored], bias, CLAMP, &mut fast);
            portable(&g, &plane, &op.kernel[..stored], bias, CLAMP, &mut slow);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                let (a, b) = (a.to_f32(), b.to_f32());
                assert!(
                    (a - b).abs() <= 2e-3 * (k * k) as f32,
                    "{k}×{k}/{s} at {i}: {a} vs {b}"
                );
            }
        }
    }

    /// The same for channels last, over several blocks of 8 channels.
    #[test]
    fn channel_last_vector_kernels_equal_the_portable_arithmetic() {
        if !kernels::available() {
            eprintln!("no FP16 vector kernels on this machine: nothing to compare");
            return;
        }
        for (k, s, h, w) in [(3, 1, 10, 23), (3, 2, 11, 40), (5, 1, 9, 8), (5, 2, 15, 7)] {
            let c = 24;
            let model = conv_model(DataFormat::HWC, c, [h, w], k, s, PaddingSpec::SameUpper);
            let node = model.node(model.outputs[0].node);
            let op = DepthwiseF16::from_conv(&model, node).unwrap().unwrap();
            let g = op.geo;
            let x: Vec<f16> = values(c * h * w, 5)
                .into_iter()
                .map(f16::from_f32)
                .collect();
            let mut plane = vec![f16::ZERO; g.plane_h * g.plane_w * c];
            for y in 0..h {
                let at = ((g.top + y) * g.plane_w + g.left) * c;
                plane[at..at + w * c].copy_from_slice(&x[y * w * c..][..w * c]);
            }
            let bias: Vec<f16> = op.bias.iter().map(|&b| f16::from_bits(b)).collect();
            let n = g.oh * g.ow * c;
            let (mut fast, mut slow) = (vec![f16::ZERO; n], vec![f16::ZERO; n]);
            kernels::run_channel_last(&g, &plane, &op.kernel, &bias, CLAMP, &mut fast);
            portable_channel_last(&g, &plane, &op.kernel, &bias, CLAMP, &mut slow);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                let (a, b) = (a.to_f32(), b.to_f32());
                assert!(
                    (a - b).abs() <= 2e-3 * (k * k) as f32,
                    "{k}×{k}/{s} at {i}: {a} vs {b}"
                );
            }
        }
    }
}
