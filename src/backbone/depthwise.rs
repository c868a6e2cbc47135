//! A channels-last depthwise convolution kernel for x86-64, plugged into tract.
//!
//! With the graph channels-last (see [`super::tract_model`]), tract runs each depthwise
//! convolution as, for every output position, `out[c] = bias[c] + Σ_taps k[tap][c] · x[tap][c]`
//! over contiguous channel vectors. tract-linalg 0.23 ships a SIMD kernel for that loop on
//! aarch64 (NEON) and wasm, and none on x86-64, where a plain loop does it. This module writes
//! the x86-64 ones (AVX2 + FMA, 32 channels per step; AVX-512F, 64 per step) and registers them
//! in tract-linalg's routine table (`Func::DepthwiseC`), the same table its own aarch64 kernel is
//! declared in; tract then picks the widest one the CPU runs, and keeps its plain loop on CPUs
//! with neither.
//!
//! Loop order: tract hands over one row of output positions per call. The kernels walk it one
//! block of channels at a time (positions inside), two positions per step, which share each
//! tap's kernel loads; the channels left over (fewer than a block) follow in a last pass. So a
//! block's kernel taps (25 × 256 bytes for a 5×5 kernel on AVX-512) and the input lines under the
//! window stay in L1 across the row. Walking positions outside and all channels inside, as first
//! written, streamed the whole kernel (67 KB for 672 channels × 25 taps) from L2 for every
//! position: the 5×5 layers of 240 channels and more ran at about a third of the core's FMA
//! rate and are 25–45% faster now. The early 3×3 layers on 56×56 maps, whose whole kernel fits
//! in L1 anyway, lose 5–15% to the input lines being revisited once per block; walking those
//! position-first instead was measured and did not win back more than it cost elsewhere.
//!
//! Results differ from the plain loop only by FMA rounding (one rounding per tap instead of
//! two), as the aarch64 kernel's do; the tests compare against an f64 sum.

#![allow(unsafe_code)]

use std::cell::Cell;

use tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_linalg::routines::{Func, Routine, RoutineFactory};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{Cost, EvalContext, StaticName};
use tract_onnx::tract_core::ops::binary::OptBinChain;
use tract_onnx::tract_core::ops::{EvalOp, Op};

/// The names the routines answer to in tract-linalg's table.
pub const NAME_AVX2: &str = "glance_avx2_fma_depthwise_c_f32";
/// See [`NAME_AVX2`].
pub const NAME_AVX512: &str = "glance_avx512f_depthwise_c_f32";

inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: Some(Arch::X86_64),
        isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 { name: NAME_AVX2, run: depthwise_c_f32_avx2 },
    }
}

inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: Some(Arch::X86_64),
        isa: IsaReq::ANY.needing(&[Isa::X86_64Avx512f]),
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 { name: NAME_AVX512, run: depthwise_c_f32_avx512 },
    }
}

/// Per tap: the start of its kernel row and its input offset, so that the loops add `c` only.
fn tap_rows(
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    k_stride: usize,
) -> Vec<(*const f32, isize)> {
    tap_indices
        .iter()
        .zip(offsets)
        .map(|(&k, &off)| (kernel.wrapping_add(k * k_stride), off))
        .collect()
}

thread_local! {
    /// The clamp the kernels apply to each row they write on this thread, set by
    /// [`Relu6DepthWise`] around one convolution.
    static CLAMP: Cell<Option<(f32, f32)>> = const { Cell::new(None) };
    /// How many rows the kernels have clamped on this thread.
    static CLAMPED: Cell<usize> = const { Cell::new(0) };
}

/// The clamp to apply after a row, if [`Relu6DepthWise`] asked for one on this thread; counts it.
fn row_clamp() -> Option<(f32, f32)> {
    let clamp = CLAMP.with(Cell::get);
    if clamp.is_some() {
        CLAMPED.with(|n| n.set(n.get() + 1));
    }
    clamp
}

/// Which of glance's kernels tract runs for channels-last depthwise convolutions on this
/// machine: the AVX-512 one, the AVX2 + FMA one, or `None` (tract's own loop).
pub fn active() -> Option<&'static str> {
    use tract_linalg::routines::DepthwiseCF32;
    let chosen = tract_linalg::routines::depthwise_c_f32()?;
    if std::ptr::fn_addr_eq(chosen, depthwise_c_f32_avx512 as DepthwiseCF32) {
        Some(NAME_AVX512)
    } else if std::ptr::fn_addr_eq(chosen, depthwise_c_f32_avx2 as DepthwiseCF32) {
        Some(NAME_AVX2)
    } else {
        None
    }
}

/// How both kernels walk a row (see the module's "Loop order"): every whole block of `$width`
/// channels over the row, two positions per step (`$block::<2>`, one for an odd last position),
/// then the channels left over, position by position (`$tail`). A macro rather than a function
/// taking the blocks as function pointers, so that each kernel's blocks inline into its own
/// target-feature function: the function-pointer version measured 0–10% slower.
macro_rules! walk_row {
    ($row:expr, $channels:expr, $width:expr, $block:ident, $tail:ident, $taps:expr, $bias:expr) => {{
        let row: &Row = $row;
        let full = $channels - $channels % $width;
        for c in (0..full).step_by($width) {
            let mut i = 0isize;
            while i + 2 <= row.len as isize {
                let (x, y) = row.at::<2>(i);
                $block::<2>(x, y, c, $taps, $bias);
                i += 2;
            }
            if i < row.len as isize {
                let (x, y) = row.at::<1>(i);
                $block::<1>(x, y, c, $taps, $bias);
            }
        }
        if full < $channels {
            for i in 0..row.len as isize {
                let (x, y) = row.at::<1>(i);
                $tail(x[0], y[0], full, $channels, $taps, $bias);
            }
        }
    }};
}

/// [`depthwise_c_f32_avx2`] on 16-lane AVX-512 registers: blocks of 64 channels, then a masked
/// tail of up to 16 at a time.
///
/// # Safety
/// As [`depthwise_c_f32_avx2`], on a CPU with AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_c_f32_avx512(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    channels: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    let taps = tap_rows(kernel, tap_indices, offsets, k_stride);
    let row = Row {
        input,
        output,
        in_stride,
        out_stride,
        len,
    };
    // SAFETY: the caller's contract covers every access below; the masked loads and stores of
    // the tail touch only the lanes of channels that exist.
    unsafe {
        walk_row!(&row, channels, 64, block64, tail512, &taps, bias);
        if let Some((lo, hi)) = row_clamp() {
            clamp_row512(&row, channels, lo, hi);
        }
    }
}

/// The AVX-512 mask of the first `lanes` (1 to 16) lanes.
fn lanes_mask(lanes: usize) -> u16 {
    if lanes >= 16 {
        0xffff
    } else {
        (1u16 << lanes) - 1
    }
}

/// Clamps the row just written to `[lo, hi]` (a ReLU6 fused into the convolution: the row is
/// still in L1, where a separate pass over the whole map reads it back from L2 or beyond).
///
/// # Safety
/// As [`depthwise_c_f32_avx512`], for the row's outputs.
#[target_feature(enable = "avx512f")]
unsafe fn clamp_row512(row: &Row, channels: usize, lo: f32, hi: f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract; the masks cover only channels below `channels`.
    unsafe {
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for i in 0..row.len as isize {
            let y = row.output.offset(i * row.out_stride);
            let mut c = 0;
            while c < channels {
                let lanes = (channels - c).min(16);
                let m = lanes_mask(lanes);
                let v = _mm512_maskz_loadu_ps(m, y.add(c));
                _mm512_mask_storeu_ps(y.add(c), m, _mm512_min_ps(_mm512_max_ps(v, lo), hi));
                c += lanes;
            }
        }
    }
}

/// [`clamp_row512`] on AVX2.
///
/// # Safety
/// As [`depthwise_c_f32_avx2`], for the row's outputs.
#[target_feature(enable = "avx2,fma")]
unsafe fn clamp_row256(row: &Row, channels: usize, lo: f32, hi: f32) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let (lo8, hi8) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        for i in 0..row.len as isize {
            let y = row.output.offset(i * row.out_stride);
            let mut c = 0;
            while c + 8 <= channels {
                let v = _mm256_loadu_ps(y.add(c));
                _mm256_storeu_ps(y.add(c), _mm256_min_ps(_mm256_max_ps(v, lo8), hi8));
                c += 8;
            }
            for c in c..channels {
                *y.add(c) = (*y.add(c)).max(lo).min(hi);
            }
        }
    }
}

/// One row of output positions as tract hands it over (see the routines' contract).
struct Row {
    input: *const f32,
    output: *mut f32,
    in_stride: isize,
    out_stride: isize,
    len: usize,
}

impl Row {
    /// Input and output pointers of the `P` positions from `i`.
    ///
    /// # Safety
    /// `i + P <= len`.
    unsafe fn at<const P: usize>(&self, i: isize) -> ([*const f32; P], [*mut f32; P]) {
        debug_assert!(i as usize + P <= self.len);
        // SAFETY: positions below `len` are inside the caller's buffers.
        unsafe {
            (
                std::array::from_fn(|p| self.input.offset((i + p as isize) * self.in_stride)),
                std::array::from_fn(|p| self.output.offset((i + p as isize) * self.out_stride)),
            )
        }
    }
}

/// Defines `$name::<P>`: one block of channels (four registers of `$lanes` lanes) from `c` of
/// `P` output positions, `y[p][c..c + 4·$lanes]` = bias + Σ taps, each tap's kernel registers
/// loaded once for all `P` positions. One definition for both instruction sets: they differ
/// only in register width and intrinsics.
///
/// The functions' safety contract: that of the kernel they belong to, for channels
/// `c..c + 4·$lanes` of each position in `x` and `y`.
macro_rules! block_fn {
    ($name:ident, $feature:literal, $lanes:literal, $load:ident, $fmadd:ident, $store:ident) => {
        /// One block of channels of `P` positions (see `block_fn!`).
        ///
        /// # Safety
        /// See `block_fn!`.
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn $name<const P: usize>(
            x: [*const f32; P],
            y: [*mut f32; P],
            c: usize,
            taps: &[(*const f32, isize)],
            bias: *const f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY: the caller's contract.
            unsafe {
                let b = [
                    $load(bias.add(c)),
                    $load(bias.add(c + $lanes)),
                    $load(bias.add(c + 2 * $lanes)),
                    $load(bias.add(c + 3 * $lanes)),
                ];
                let mut acc = [b; P];
                for &(k, off) in taps {
                    let k = k.add(c);
                    let kv = [
                        $load(k),
                        $load(k.add($lanes)),
                        $load(k.add(2 * $lanes)),
                        $load(k.add(3 * $lanes)),
                    ];
                    for p in 0..P {
                        let xt = x[p].offset(off).add(c);
                        for (r, a) in acc[p].iter_mut().enumerate() {
                            *a = $fmadd($load(xt.add($lanes * r)), kv[r], *a);
                        }
                    }
                }
                for p in 0..P {
                    for (r, a) in acc[p].iter().enumerate() {
                        $store(y[p].add(c + $lanes * r), *a);
                    }
                }
            }
        }
    };
}

block_fn!(
    block64,
    "avx512f",
    16,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);
block_fn!(
    block32,
    "avx2,fma",
    8,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);

/// Channels `c0..channels` (fewer than 64) of one position, 16 at a time, masked.
///
/// # Safety
/// As [`depthwise_c_f32_avx512`], for one position.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tail512(
    x: *const f32,
    y: *mut f32,
    c0: usize,
    channels: usize,
    taps: &[(*const f32, isize)],
    bias: *const f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract; the masks cover only channels below `channels`.
    unsafe {
        let mut c = c0;
        while c < channels {
            let lanes = (channels - c).min(16);
            let m = lanes_mask(lanes);
            let mut a = _mm512_maskz_loadu_ps(m, bias.add(c));
            for &(k, off) in taps {
                a = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, x.offset(off).add(c)),
                    _mm512_maskz_loadu_ps(m, k.add(c)),
                    a,
                );
            }
            _mm512_mask_storeu_ps(y.add(c), m, a);
            c += lanes;
        }
    }
}

/// tract-linalg's `DepthwiseCF32` contract: for every `i < len`, with
/// `x = input + i·in_stride` and `y = output + i·out_stride`, and every channel `c < channels`:
/// `y[c] = bias[c] + Σ_t kernel[tap_indices[t]·k_stride + c] · x[offsets[t] + c]`.
///
/// # Safety
/// Every pointer named above must be valid for the reads and writes it implies (tract's zone
/// scanner guarantees it), and the CPU must have AVX2 and FMA: tract-linalg only calls the
/// routine on such a CPU (`isa` above). Blocks of 32 channels, then 8, then one by one.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_c_f32_avx2(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    channels: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    let taps = tap_rows(kernel, tap_indices, offsets, k_stride);
    let row = Row {
        input,
        output,
        in_stride,
        out_stride,
        len,
    };
    // SAFETY: the caller's contract covers every access below.
    unsafe {
        walk_row!(&row, channels, 32, block32, tail256, &taps, bias);
        if let Some((lo, hi)) = row_clamp() {
            clamp_row256(&row, channels, lo, hi);
        }
    }
}

/// Channels `c0..channels` (fewer than 32) of one position: 8 at a time, then one by one.
///
/// # Safety
/// As [`depthwise_c_f32_avx2`], for one position.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tail256(
    x: *const f32,
    y: *mut f32,
    c0: usize,
    channels: usize,
    taps: &[(*const f32, isize)],
    bias: *const f32,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract.
    unsafe {
        let mut c = c0;
        while c + 8 <= channels {
            let mut a = _mm256_loadu_ps(bias.add(c));
            for &(k, off) in taps {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.offset(off).add(c)),
                    _mm256_loadu_ps(k.add(c)),
                    a,
                );
            }
            _mm256_storeu_ps(y.add(c), a);
            c += 8;
        }
        for c in c..channels {
            let mut sum = *bias.add(c);
            for &(k, off) in taps {
                sum = (*x.offset(off).add(c)).mul_add(*k.add(c), sum);
            }
            *y.add(c) = sum;
        }
    }
}

/// A depthwise convolution with the ReLU6 that follows it fused in: glance's kernels clamp each
/// row as they finish it (`CLAMP`). tract fuses activations into matrix products only, so it
/// runs the clip as a separate pass over each depthwise output (16 passes, 6% of a frame here).
///
/// Wraps tract's own depthwise operator, run on the calling thread. When the rows did not go
/// through glance's kernels (an NCHW convolution uses tract's loop), it clamps the whole output
/// after the convolution, which is what the separate pass did: the result is the same either way.
#[derive(Debug, Clone)]
pub struct Relu6DepthWise {
    inner: Box<dyn TypedOp>,
    lo: f32,
    hi: f32,
}

// Two of these are equal only if they are the same op: nothing merges them.
impl PartialEq for Relu6DepthWise {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for Relu6DepthWise {}

impl Op for Relu6DepthWise {
    fn name(&self) -> StaticName {
        "GlanceDepthWiseClamp".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.inner.info()?;
        info.push(format!("then clamp to [{}, {}]", self.lo, self.hi));
        Ok(info)
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for Relu6DepthWise {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        use tract_linalg::multithread::{multithread_tract_scope, Executor};
        let rows_before = CLAMPED.with(Cell::get);
        // On this thread, whatever the executor: the kernels read the clamp from this thread's
        // state, and tract's 2-thread depthwise path measured slower than one thread here
        // (2.39 vs 1.52 ms for the 16 convolutions, plus 1.24 vs 0.67 ms for the clips).
        let outputs = multithread_tract_scope(Executor::SingleThread, || {
            let previous = CLAMP.with(|c| c.replace(Some((self.lo, self.hi))));
            let outputs = self.inner.eval(ctx, inputs);
            CLAMP.with(|c| c.set(previous));
            outputs
        });
        let mut outputs = outputs?;
        // Rows that did not go through glance's kernels (an NCHW convolution runs tract's loop):
        // clamp the whole output, as the separate pass did.
        if CLAMPED.with(Cell::get) == rows_before {
            let mut output = outputs.remove(0).into_tensor();
            let mut plain = output.try_as_plain_ram_mut()?;
            for v in plain.as_slice_mut::<f32>()? {
                *v = v.max(self.lo).min(self.hi);
            }
            outputs.insert(0, output.into_tvalue());
        }
        Ok(outputs)
    }
}

impl TypedOp for Relu6DepthWise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.inner.output_facts(inputs)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        self.inner.cost(inputs)
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

/// The single value of a constant outlet, if it is one.
fn scalar(model: &TypedModel, outlet: OutletId) -> Option<f32> {
    let konst = model.outlet_fact(outlet).ok()?.konst.as_ref()?;
    (konst.len() == 1).then(|| konst.cast_to_scalar::<f32>().ok())?
}

/// Fuses every f32 depthwise convolution followed only by a clip (tract's `Max` then `Min`
/// against constants, as ONNX `Clip(0, 6)` optimises to) into a [`Relu6DepthWise`]. Call on the
/// optimised model, and only where glance's kernels run ([`active`]). Returns how many.
pub fn fuse_clips(model: &mut TypedModel) -> TractResult<usize> {
    use tract_linalg::BinOp;
    let mut found = vec![];
    for chain in &model.nodes {
        let Some(op) = chain.op_as::<OptBinChain>() else {
            continue;
        };
        let [max, min] = &op.steps[..] else { continue };
        if max.linalg_op != BinOp::Max || min.linalg_op != BinOp::Min || chain.inputs.len() != 3 {
            continue;
        }
        let (Some(lo), Some(hi)) = (
            scalar(model, chain.inputs[1]),
            scalar(model, chain.inputs[2]),
        ) else {
            continue;
        };
        let conv = chain.inputs[0];
        let dw = model.node(conv.node);
        if dw.op.name() != "DepthWiseConv"
            || model.outlet_fact(conv)?.datum_type != f32::datum_type()
            || model.outlet_successors(conv).len() != 1
            || model.output_outlets()?.contains(&conv)
            || lo > hi
        {
            continue;
        }
        found.push((conv.node, chain.id, lo, hi));
    }
    for &(dw, chain, lo, hi) in &found {
        let mut patch = TypedModelPatch::default();
        let node = model.node(dw);
        let inputs = patch.taps(model, &node.inputs)?;
        let op = Relu6DepthWise {
            inner: node.op.clone(),
            lo,
            hi,
        };
        let fused = patch.wire_node(format!("{}.relu6", node.name), op, &inputs)?;
        patch.shunt_outside(model, OutletId::new(chain, 0), fused[0])?;
        patch.apply(model)?;
    }
    if !found.is_empty() {
        model.compact()?;
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// One padded row of positions, like tract's zone scanner gives: `len` outputs, input
    /// positions `in_stride` apart, taps at arbitrary (here 1-D) offsets.
    fn check(
        run: tract_linalg::routines::DepthwiseCF32,
        channels: usize,
        taps: usize,
        len: usize,
        stride: usize,
    ) {
        let mut seed = (channels * 131 + taps * 7 + len) as u64;
        let positions = len * stride + taps;
        let input: Vec<f32> = (0..positions * channels).map(|_| lcg(&mut seed)).collect();
        let kernel: Vec<f32> = (0..taps * channels).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..channels).map(|_| lcg(&mut seed)).collect();
        // Taps in a shuffled kernel order, as a zone missing some taps (a border) would list them.
        let tap_indices: Vec<usize> = (0..taps).rev().collect();
        let offsets: Vec<isize> = (0..taps).map(|t| (t * channels) as isize).collect();
        let out_stride = channels + 3; // outputs need not be packed
        let mut output = vec![f32::NAN; len * out_stride];
        // SAFETY: sizes above cover every access; the tests only pass kernels the CPU runs.
        unsafe {
            run(
                input.as_ptr(),
                output.as_mut_ptr(),
                kernel.as_ptr(),
                &tap_indices,
                &offsets,
                bias.as_ptr(),
                channels,
                channels,
                len,
                (stride * channels) as isize,
                out_stride as isize,
            )
        };
        for i in 0..len {
            for c in 0..channels {
                let mut want = f64::from(bias[c]);
                for (t, &k) in tap_indices.iter().enumerate() {
                    let x = input[i * stride * channels + offsets[t] as usize + c];
                    want += f64::from(kernel[k * channels + c]) * f64::from(x);
                }
                let got = output[i * out_stride + c];
                assert!(
                    (f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "channels {channels} taps {taps} i {i} c {c}: {got} vs {want}"
                );
            }
            for pad in channels..out_stride {
                assert!(
                    output[i * out_stride + pad].is_nan(),
                    "wrote past the channels"
                );
            }
        }
    }

    fn check_all(run: tract_linalg::routines::DepthwiseCF32) {
        for channels in [
            1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 96, 144, 1152,
        ] {
            for taps in [1, 4, 9, 25] {
                check(run, channels, taps, 5, 1);
                check(run, channels, taps, 3, 2);
            }
        }
    }

    #[test]
    fn avx2_kernel_matches_an_f64_sum_for_every_channel_tail() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("SKIPPED: this CPU has no AVX2+FMA, tract keeps its own loop here");
            return;
        }
        check_all(depthwise_c_f32_avx2);
    }

    #[test]
    fn avx512_kernel_matches_an_f64_sum_for_every_channel_tail() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("SKIPPED: this CPU has no AVX-512F");
            return;
        }
        check_all(depthwise_c_f32_avx512);
    }

    #[test]
    fn tract_picks_the_widest_kernel_this_cpu_runs() {
        let want = if is_x86_feature_detected!("avx512f") {
            Some(NAME_AVX512)
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Some(NAME_AVX2)
        } else {
            None
        };
        assert_eq!(
            active(),
            want,
            "routine table chose another depthwise kernel"
        );
    }

    /// The shipped backbone with each ReLU6 fused into its depthwise convolution computes what it
    /// computes with separate clips: with the stem lowered (every depthwise convolution through
    /// glance's kernels) and not (block 0's runs NCHW in tract's loop: the op clamps afterwards),
    /// on one thread and under a 2-thread executor (which the op does not hand its rows to).
    #[test]
    fn fused_clips_compute_what_separate_clips_do() {
        if active().is_none() {
            eprintln!(
                "SKIPPED: glance's depthwise kernels do not run on this CPU, nothing is fused"
            );
            return;
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/efficientnet_lite0_fp32.onnx"
        );
        let bytes = std::fs::read(path).unwrap();
        let shape = [1, 3, 224, 224];
        for lower_stem in [true, false] {
            let form = |fuse_clips| super::super::GraphForm {
                lower_stem,
                fuse_clips,
            };
            let (plain, _) = super::super::tract_graph(&bytes, shape, 2, form(false)).unwrap();
            let clips = plain
                .nodes
                .iter()
                .filter(|n| n.op_is::<OptBinChain>())
                .count();
            let (fused, _) = super::super::tract_graph(&bytes, shape, 2, form(true)).unwrap();
            let wrapped = fused
                .nodes
                .iter()
                .filter(|n| n.op_is::<Relu6DepthWise>())
                .count();
            // Without the lowering the stem's own clip stays separate (tract does not fuse it
            // into the stem's lazy-im2col product), and is not a depthwise one.
            let stem_clip = usize::from(!lower_stem);
            let left = fused
                .nodes
                .iter()
                .filter(|n| n.op_is::<OptBinChain>())
                .count();
            assert_eq!(
                (clips, wrapped, left),
                (16 + stem_clip, 16, stem_clip),
                "stem lowered: {lower_stem}"
            );

            let input_shape: Vec<usize> = plain
                .input_fact(0)
                .unwrap()
                .shape
                .as_concrete()
                .unwrap()
                .to_vec();
            let len = input_shape.iter().product::<usize>();
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 % 509) as f32 / 127.0) - 2.0)
                .collect();
            let input = Tensor::from_shape(&input_shape, &x).unwrap();
            let plain = plain.into_runnable().unwrap();
            let fused = fused.into_runnable().unwrap();
            let want = plain.run(tvec!(input.clone().into())).unwrap();
            let two = tract_linalg::multithread::Executor::multithread(2);
            for (threads, got) in [
                (1, fused.run(tvec!(input.clone().into())).unwrap()),
                (
                    2,
                    tract_linalg::multithread::multithread_tract_scope(two, || {
                        fused.run(tvec!(input.clone().into())).unwrap()
                    }),
                ),
            ] {
                for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                    let g = g.to_plain_array_view::<f32>().unwrap();
                    let w = w.to_plain_array_view::<f32>().unwrap();
                    let worst = g
                        .iter()
                        .zip(w.iter())
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        worst <= 1e-5,
                        "stem lowered {lower_stem}, {threads} thread(s), output {o}: max |diff| {worst}"
                    );
                }
            }
        }
    }
}
