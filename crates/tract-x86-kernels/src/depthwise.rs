//! A channels-last depthwise convolution kernel for x86-64 (AVX2 + FMA), plugged into tract.
//!
//! tract moves a depthwise convolution's data channels-last by itself when tract-linalg has a
//! channel-inner depthwise kernel for the machine (`suggested_axis_changes` of its `Conv`,
//! applied while decluttering). Channels-last, tract runs each depthwise convolution as, for
//! every output position, `out[c] = bias[c] + Σ_taps k[tap][c] · x[tap][c]` over contiguous
//! channel vectors. tract-linalg 0.23 ships a SIMD kernel for that loop on aarch64 (NEON) and
//! wasm, and none on x86-64. This module writes the x86-64 one (AVX2 + FMA, 32 channels per
//! step) and registers it in tract-linalg's routine table (`Func::DepthwiseC`), the same table
//! its own aarch64 kernel is declared in; on CPUs without AVX2 and FMA tract keeps its NCHW path.
//! An AVX-512F variant (64 channels per step) was measured no faster on an AVX-512 CPU (within
//! 1.2% of a frame, README.md) and dropped.
//!
//! Loop order: tract hands over one row of output positions per call. The kernel walks it one
//! block of channels at a time (positions inside), two positions per step, which share each
//! tap's kernel loads; the channels left over (fewer than a block) follow in a last pass. So a
//! block's kernel taps (25 × 128 bytes for a 5×5 kernel) and the input lines under the window
//! stay in L1 across the row. Walking positions outside and all channels inside, as first
//! written, streamed the whole kernel (67 KB for 672 channels × 25 taps) from L2 for every
//! position: the 5×5 layers of 240 channels and more ran at about a third of the core's FMA
//! rate and are 25–45% faster now. The early 3×3 layers on 56×56 maps, whose whole kernel fits
//! in L1 anyway, lose 5–15% to the input lines being revisited once per block; walking those
//! position-first instead was measured and did not win back more than it cost elsewhere.
//!
//! Results differ from tract's loop only by FMA rounding (one rounding per tap instead of two),
//! as the aarch64 kernel's do; the tests compare against an f64 sum.

#![allow(unsafe_code)]

use tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_linalg::routines::{Func, Routine, RoutineFactory};

/// The name the routine answers to in tract-linalg's table.
pub const NAME_AVX2: &str = "glance_avx2_fma_depthwise_c_f32";

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

/// Whether tract runs this crate's kernel for channels-last depthwise convolutions on this
/// machine: its name, or `None` (no AVX2 + FMA: tract keeps them NCHW).
pub fn active() -> Option<&'static str> {
    use tract_linalg::routines::DepthwiseCF32;
    let chosen = tract_linalg::routines::depthwise_c_f32()?;
    std::ptr::fn_addr_eq(chosen, depthwise_c_f32_avx2 as DepthwiseCF32).then_some(NAME_AVX2)
}

/// How the kernel walks a row (see the module's "Loop order"): every whole block of `$width`
/// channels over the row, two positions per step (`$block::<2>`, one for an odd last position),
/// then the channels left over, position by position (`$tail`). A macro rather than a function
/// taking the blocks as function pointers, so that the blocks inline into the kernel's
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
/// loaded once for all `P` positions. A macro so that the register width and intrinsics are
/// parameters (an AVX-512F instance was dropped, see the module text).
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
    block32,
    "avx2,fma",
    8,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);

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

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::internal::*;

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
    fn tract_picks_this_crates_kernel_where_the_cpu_runs_it() {
        let want = (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
            .then_some(NAME_AVX2);
        assert_eq!(
            active(),
            want,
            "routine table chose another depthwise kernel"
        );
    }

    /// With the depthwise piece off, the graph is laid out as tract lays it out without a
    /// channels-last kernel: every depthwise convolution NCHW, none through this crate's kernel,
    /// and the same outputs to float rounding.
    #[test]
    fn without_the_depthwise_piece_tract_keeps_its_layout() {
        if active().is_none() {
            eprintln!("SKIPPED: this crate's depthwise kernels do not run on this CPU");
            return;
        }
        let nchw =
            crate::optimize(crate::tests::shipped_backbone(1), &crate::Pieces::NONE).unwrap();
        let nhwc = crate::optimize(crate::tests::shipped_backbone(1), &Default::default()).unwrap();
        // (channels-first, channels-last) depthwise convolutions, told apart by their output's
        // last two axes: equal (W = H) for NCHW, (W, C) for NHWC; no layer here has W = C.
        let layouts = |model: &TypedModel| {
            let mut count = (0, 0);
            for node in &model.nodes {
                if node.op.name() != "DepthWiseConv" {
                    continue;
                }
                let shape = node.outputs[0].fact.shape.as_concrete().unwrap().to_vec();
                match shape[shape.len() - 1] == shape[shape.len() - 2] {
                    true => count.0 += 1,
                    false => count.1 += 1,
                }
            }
            count
        };
        assert_eq!(layouts(&nchw), (16, 0));
        // Block 0's stays NCHW (tract's layout pass stops at the stem), the others move.
        assert_eq!(layouts(&nhwc), (1, 15));
        let input = Tensor::from_shape(
            &[1, 3, 224, 224],
            &(0..3 * 224 * 224)
                .map(|i| ((i * 7919 % 509) as f32 / 127.0) - 2.0)
                .collect::<Vec<f32>>(),
        )
        .unwrap();
        let run = |model: TypedModel| {
            let out = model
                .into_runnable()
                .unwrap()
                .run(tvec!(input.clone().into()))
                .unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<f32>>()
        };
        let (a, b) = (run(nchw), run(nhwc));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(worst <= 1e-4 * scale, "max |diff| {worst} of {scale}");
    }
}
