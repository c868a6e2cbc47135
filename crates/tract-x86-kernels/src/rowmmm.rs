//! AVX-512 f32 matrix-product kernels for tract, which store whole vectors: `24×16`
//! holding the tile by rows, `32×8` and `32×7` holding it by columns, for the 1×1 convolutions
//! where tract's own kernels are slowest.
//!
//! tract lays a 1×1 convolution over a channels-last map out as a product with `m` = positions
//! and `n` = output channels (it always makes `m` the larger side), so one row of the output tile
//! is one position's run of channels, contiguous in memory. tract's x86 kernels hold the tile by
//! columns (one register per column of `mr` rows) and store it one float at a time
//! (`vextractps`); with the early layers' short `k` (16 to 40 multiply-adds per output) that
//! epilogue weighs as much as the arithmetic.
//!
//! The rows kernel holds the tile by rows: 24 registers, each one row of 16 output channels. Per
//! step of `k` it loads 16 packed weights once and multiplies them by each packed activation
//! (broadcast from memory inside the FMA), and it stores a row with one vector store when the row
//! is contiguous (any other layout falls back to one float at a time). 24 rows rather than 28
//! (which would divide every position count of this backbone and fill 28 of the 32 registers):
//! tract packs 96-byte panels from channels-first activations with a plain copy, 112-byte ones
//! element by element (0.19 ms against 0.09 on block 1). Measured per layer
//! (`scripts/tune-mmm.py`): block 1's expansion 1.22 ms with tract's pick, 0.68 with 28 rows,
//! 0.63 with 24.
//!
//! The columns kernel (`32×8`) is tract's own layout, one pair of registers per column of 32
//! rows, but it stores a column with two vector stores when the rows are contiguous: the
//! projections of blocks 0–4 (channels-first outputs) and the expansions of blocks 6–11 (`m` =
//! channels). Block 2's projection: 0.47 ms with tract's pick, 0.32 with it.
//!
//! They are registered in tract-linalg's kernel inventory (`MmmRoutine`) with a negative boost,
//! so tract's own policy never picks them; this crate's tier (`mmm.rs`) names one for the shapes
//! it was measured faster on, and [`crate::Matmul::Force`] forces one. They implement every f32
//! operation tract fuses into a kernel call; the integer ones (quantized products) and a packing
//! or store type they do not declare answer an error, as tract's generic kernel does. The match
//! on `FusedKerSpec` is exhaustive on purpose: a tract release that adds an operation fails to
//! compile here instead of running a kernel that ignores it.

// Unsafe code here: AVX-512 kernels called by tract through raw tile pointers.
#![allow(unsafe_code)]

use std::arch::x86_64::*;

use tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer};
use tract_linalg::pack::Packing;

/// Columns of the tile (output channels): one AVX-512 register.
const NR: usize = 16;

/// The rows kernel's name, as tract and [`crate::Matmul::Force`] know it.
pub const NAME_ROWS: &str = "glance_avx512_rows_f32_24x16";

/// Rows of the rows kernel's tile.
const ROWS: usize = 24;

/// The rows kernel as tract-linalg describes one.
pub fn kernel() -> DynKernel<ROWS, NR, f32> {
    let mut k = DynKernel::<ROWS, NR, f32>::new(
        NAME_ROWS,
        run::<ROWS>,
        f32::packing(ROWS),
        f32::packing(NR),
    )
    .with_isa(IsaReq::ANY.needing(&[Isa::X86_64Avx512f]))
    // Never tract's own pick: only this crate's tier names it.
    .with_boost(|| -1000);
    k.arch = Some(Arch::X86_64);
    k
}

inventory::submit! {
    tract_linalg::mmm_routines::MmmRoutine { make: || kernel().mmm() }
}

/// tract's kernel entry point. Only reachable where the CPU has AVX-512F: the kernel declares it
/// (`with_isa`), and tract runs only kernels the machine can run.
unsafe fn run<const MR: usize>(specs: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: see above; the pointers in `specs` are tract's, valid for one tile.
    unsafe { run_avx512::<MR>(specs) }
}

/// Loads one row of the tile's layout in `tile` (row `i`, 16 columns) whatever the strides.
#[inline(always)]
unsafe fn load_row(tile: &OutputStoreKer, i: usize) -> __m512 {
    // SAFETY: `tile` is tract's description of a tile of `ROWS` × `NR` f32 it owns, valid for
    // reads at every row and column stride it gives; `i < ROWS`.
    unsafe {
        let row = tile.ptr.offset(tile.row_byte_stride * i as isize);
        if tile.col_byte_stride == 4 {
            return _mm512_loadu_ps(row as *const f32);
        }
        let mut v = [0f32; NR];
        for (j, x) in v.iter_mut().enumerate() {
            *x = *(row.offset(tile.col_byte_stride * j as isize) as *const f32);
        }
        _mm512_loadu_ps(v.as_ptr())
    }
}

/// The product proper. The tile is passed by value and every index is a constant once the row
/// loop is unrolled, so the accumulators stay in registers (written inline in the kernel's
/// match they were stored back to the stack on every step of `k`: 0.89 → 0.73 ms on block 1).
#[inline(always)]
unsafe fn add_mat_mul<const MR: usize>(
    mut acc: [__m512; MR],
    k: usize,
    pa: *const f32,
    pb: *const f32,
) -> [__m512; MR] {
    // SAFETY: `pa` and `pb` are tract's packed panels of `k` steps of `MR` and `NR` f32.
    unsafe {
        for step in 0..k {
            let b = _mm512_loadu_ps(pb.add(NR * step));
            let a = pa.add(MR * step);
            for (i, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(i)), b, *acc);
            }
        }
        acc
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn run_avx512<const MR: usize>(specs: &[FusedKerSpec<f32>]) -> isize {
    // SAFETY: every pointer in `specs` is tract's, valid for one `MR` × `NR` tile (stores,
    // loads), `MR` rows or `NR` columns (per-row, per-column operands) or `k` packed steps; the
    // CPU has AVX-512F (this function is only reached through `run`).
    unsafe {
        let zero = _mm512_setzero_ps();
        let mut acc = [zero; MR];
        macro_rules! each {
            (|$a:ident, $i:ident| $e:expr) => {
                for $i in 0..MR {
                    let $a = acc[$i];
                    acc[$i] = $e;
                }
            };
        }
        for spec in specs {
            match *spec {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [zero; MR],
                FusedKerSpec::LoadTile(col_major, _) => {
                    for (i, a) in acc.iter_mut().enumerate() {
                        let mut v = [0f32; NR];
                        for (j, x) in v.iter_mut().enumerate() {
                            *x = *col_major.add(j * MR + i);
                        }
                        *a = _mm512_loadu_ps(v.as_ptr());
                    }
                }
                // tract's semantics, operand order included (the scalar first): min(s, x) is
                // `s < x ? s : x`, which is what `_mm512_min_ps(s, x)` computes, NaN cases too.
                FusedKerSpec::ScalarMin(s) => each!(|a, _i| _mm512_min_ps(_mm512_set1_ps(s), a)),
                FusedKerSpec::ScalarMax(s) => each!(|a, _i| _mm512_max_ps(_mm512_set1_ps(s), a)),
                FusedKerSpec::ScalarAdd(s) => each!(|a, _i| _mm512_add_ps(_mm512_set1_ps(s), a)),
                FusedKerSpec::ScalarMul(s) => each!(|a, _i| _mm512_mul_ps(_mm512_set1_ps(s), a)),
                FusedKerSpec::ScalarSub(s) => each!(|a, _i| _mm512_sub_ps(_mm512_set1_ps(s), a)),
                FusedKerSpec::ScalarSubF(s) => each!(|a, _i| _mm512_sub_ps(a, _mm512_set1_ps(s))),
                FusedKerSpec::LeakyRelu(s) => each!(|a, _i| {
                    let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, zero);
                    _mm512_mask_blend_ps(positive, _mm512_mul_ps(_mm512_set1_ps(s), a), a)
                }),
                FusedKerSpec::PerRowMin(p) => {
                    each!(|a, i| _mm512_min_ps(_mm512_set1_ps(*p.add(i)), a))
                }
                FusedKerSpec::PerRowMax(p) => {
                    each!(|a, i| _mm512_max_ps(_mm512_set1_ps(*p.add(i)), a))
                }
                FusedKerSpec::PerRowAdd(p) => {
                    each!(|a, i| _mm512_add_ps(_mm512_set1_ps(*p.add(i)), a))
                }
                FusedKerSpec::PerRowMul(p) => {
                    each!(|a, i| _mm512_mul_ps(_mm512_set1_ps(*p.add(i)), a))
                }
                FusedKerSpec::PerRowSub(p) => {
                    each!(|a, i| _mm512_sub_ps(_mm512_set1_ps(*p.add(i)), a))
                }
                FusedKerSpec::PerRowSubF(p) => {
                    each!(|a, i| _mm512_sub_ps(a, _mm512_set1_ps(*p.add(i))))
                }
                FusedKerSpec::PerColMin(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_min_ps(v, a))
                }
                FusedKerSpec::PerColMax(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_max_ps(v, a))
                }
                FusedKerSpec::PerColAdd(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_add_ps(v, a))
                }
                FusedKerSpec::PerColMul(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_mul_ps(v, a))
                }
                FusedKerSpec::PerColSub(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_sub_ps(v, a))
                }
                FusedKerSpec::PerColSubF(p) => {
                    let v = _mm512_loadu_ps(p);
                    each!(|a, _i| _mm512_sub_ps(a, v))
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let c = _mm512_loadu_ps(cols);
                    each!(|a, i| _mm512_fmadd_ps(_mm512_set1_ps(*rows.add(i)), c, a))
                }
                FusedKerSpec::AddUnicast(other) => {
                    if other.item_size != 4 {
                        return 1;
                    }
                    each!(|a, i| _mm512_add_ps(a, load_row(&other, i)))
                }
                FusedKerSpec::Store(tile) => {
                    if tile.item_size != 4 {
                        return 1;
                    }
                    for (i, a) in acc.iter().enumerate() {
                        let row = tile.ptr.offset(tile.row_byte_stride * i as isize);
                        if tile.col_byte_stride == 4 {
                            _mm512_storeu_ps(row as *mut f32, *a);
                        } else {
                            let mut v = [0f32; NR];
                            _mm512_storeu_ps(v.as_mut_ptr(), *a);
                            for (j, x) in v.iter().enumerate() {
                                *(row.offset(tile.col_byte_stride * j as isize) as *mut f32) = *x;
                            }
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing } => {
                    if packing != 0 {
                        return 1;
                    }
                    acc = add_mat_mul(acc, k, pa as *const f32, pb as *const f32);
                }
                // Integer requantisation: never part of an f32 product.
                FusedKerSpec::QScale(..)
                | FusedKerSpec::RoundingShiftRight(..)
                | FusedKerSpec::ShiftLeft(..) => return 1,
            }
        }
        0
    }
}

/// The columns kernels' names: `MR` = 32 rows (two registers) by 8 columns, held by columns like
/// tract's kernels, but storing each column with vector stores when the rows are contiguous (a
/// channels-first output, or `m` = channels), where tract's store one float at a time.
pub const NAME_COLS_32: &str = "glance_avx512_cols_f32_32x8";
/// The columns kernel with 7 columns: 49 positions (7×7 maps) make whole tiles.
pub const NAME_COLS_32X7: &str = "glance_avx512_cols_f32_32x7";

/// The columns kernel with `MV` registers (16 rows each) per column, as tract-linalg describes
/// one.
pub fn cols_kernel<const MV: usize, const MR: usize, const NR_COLS: usize>(
) -> DynKernel<MR, NR_COLS, f32> {
    const { assert!(MV * 16 == MR && MV == 2 && (NR_COLS == 8 || NR_COLS == 7)) };
    let name = if NR_COLS == 8 {
        NAME_COLS_32
    } else {
        NAME_COLS_32X7
    };
    let mut k = DynKernel::<MR, NR_COLS, f32>::new(
        name,
        run_cols::<MV, MR, NR_COLS>,
        f32::packing(MR),
        f32::packing(NR_COLS),
    )
    .with_isa(IsaReq::ANY.needing(&[Isa::X86_64Avx512f]))
    .with_boost(|| -1000);
    k.arch = Some(Arch::X86_64);
    k
}

inventory::submit! {
    tract_linalg::mmm_routines::MmmRoutine { make: || cols_kernel::<2, 32, 8>().mmm() }
}

inventory::submit! {
    tract_linalg::mmm_routines::MmmRoutine { make: || cols_kernel::<2, 32, 7>().mmm() }
}

/// tract's entry point for the columns kernel (see [`run`]).
unsafe fn run_cols<const MV: usize, const MR: usize, const NR_COLS: usize>(
    specs: &[FusedKerSpec<f32>],
) -> isize {
    // SAFETY: as `run`.
    unsafe { run_cols_avx512::<MV, MR, NR_COLS>(specs) }
}

/// Loads rows `16·v ..` of column `j` of the tile in `tile`, whatever the strides.
#[inline(always)]
unsafe fn load_col(tile: &OutputStoreKer, j: usize, v: usize) -> __m512 {
    // SAFETY: as `load_row`, for column `j < NR_COLS` and rows `16·v .. 16·v + 16 <= MR`.
    unsafe {
        let col = tile.ptr.offset(tile.col_byte_stride * j as isize);
        let first = col.offset(tile.row_byte_stride * (16 * v) as isize);
        if tile.row_byte_stride == 4 {
            return _mm512_loadu_ps(first as *const f32);
        }
        let mut x = [0f32; 16];
        for (i, x) in x.iter_mut().enumerate() {
            *x = *(first.offset(tile.row_byte_stride * i as isize) as *const f32);
        }
        _mm512_loadu_ps(x.as_ptr())
    }
}

/// The product of the columns kernel, accumulators by value (see [`add_mat_mul`]).
#[inline(always)]
unsafe fn add_mat_mul_cols<const MV: usize, const MR: usize, const NR_COLS: usize>(
    mut acc: [[__m512; MV]; NR_COLS],
    k: usize,
    pa: *const f32,
    pb: *const f32,
) -> [[__m512; MV]; NR_COLS] {
    // SAFETY: as `add_mat_mul`, panels of `MR` and `NR_COLS` f32 per step.
    unsafe {
        for step in 0..k {
            let a: [__m512; MV] =
                std::array::from_fn(|v| _mm512_loadu_ps(pa.add(MR * step + 16 * v)));
            let b = pb.add(NR_COLS * step);
            for (j, col) in acc.iter_mut().enumerate() {
                let bj = _mm512_set1_ps(*b.add(j));
                for (v, acc) in col.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(a[v], bj, *acc);
                }
            }
        }
        acc
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn run_cols_avx512<const MV: usize, const MR: usize, const NR_COLS: usize>(
    specs: &[FusedKerSpec<f32>],
) -> isize {
    // SAFETY: as `run_avx512`, for an `MR` × `NR_COLS` tile.
    unsafe {
        let zero = _mm512_setzero_ps();
        let mut acc = [[zero; MV]; NR_COLS];
        // `$e` computes the new value of `acc[j][v]` from `$a`, the old one.
        macro_rules! each {
            (|$a:ident, $j:ident, $v:ident| $e:expr) => {
                for $j in 0..NR_COLS {
                    for $v in 0..MV {
                        let $a = acc[$j][$v];
                        acc[$j][$v] = $e;
                    }
                }
            };
        }
        let rows = |p: *const f32, v: usize| _mm512_loadu_ps(p.add(16 * v));
        for spec in specs {
            match *spec {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => acc = [[zero; MV]; NR_COLS],
                FusedKerSpec::LoadTile(col_major, _) => {
                    each!(|_a, j, v| _mm512_loadu_ps(col_major.add(j * MR + 16 * v)))
                }
                FusedKerSpec::ScalarMin(s) => {
                    each!(|a, _j, _v| _mm512_min_ps(_mm512_set1_ps(s), a))
                }
                FusedKerSpec::ScalarMax(s) => {
                    each!(|a, _j, _v| _mm512_max_ps(_mm512_set1_ps(s), a))
                }
                FusedKerSpec::ScalarAdd(s) => {
                    each!(|a, _j, _v| _mm512_add_ps(_mm512_set1_ps(s), a))
                }
                FusedKerSpec::ScalarMul(s) => {
                    each!(|a, _j, _v| _mm512_mul_ps(_mm512_set1_ps(s), a))
                }
                FusedKerSpec::ScalarSub(s) => {
                    each!(|a, _j, _v| _mm512_sub_ps(_mm512_set1_ps(s), a))
                }
                FusedKerSpec::ScalarSubF(s) => {
                    each!(|a, _j, _v| _mm512_sub_ps(a, _mm512_set1_ps(s)))
                }
                FusedKerSpec::LeakyRelu(s) => each!(|a, _j, _v| {
                    let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, zero);
                    _mm512_mask_blend_ps(positive, _mm512_mul_ps(_mm512_set1_ps(s), a), a)
                }),
                FusedKerSpec::PerRowMin(p) => each!(|a, _j, v| _mm512_min_ps(rows(p, v), a)),
                FusedKerSpec::PerRowMax(p) => each!(|a, _j, v| _mm512_max_ps(rows(p, v), a)),
                FusedKerSpec::PerRowAdd(p) => each!(|a, _j, v| _mm512_add_ps(rows(p, v), a)),
                FusedKerSpec::PerRowMul(p) => each!(|a, _j, v| _mm512_mul_ps(rows(p, v), a)),
                FusedKerSpec::PerRowSub(p) => each!(|a, _j, v| _mm512_sub_ps(rows(p, v), a)),
                FusedKerSpec::PerRowSubF(p) => each!(|a, _j, v| _mm512_sub_ps(a, rows(p, v))),
                FusedKerSpec::PerColMin(p) => {
                    each!(|a, j, _v| _mm512_min_ps(_mm512_set1_ps(*p.add(j)), a))
                }
                FusedKerSpec::PerColMax(p) => {
                    each!(|a, j, _v| _mm512_max_ps(_mm512_set1_ps(*p.add(j)), a))
                }
                FusedKerSpec::PerColAdd(p) => {
                    each!(|a, j, _v| _mm512_add_ps(_mm512_set1_ps(*p.add(j)), a))
                }
                FusedKerSpec::PerColMul(p) => {
                    each!(|a, j, _v| _mm512_mul_ps(_mm512_set1_ps(*p.add(j)), a))
                }
                FusedKerSpec::PerColSub(p) => {
                    each!(|a, j, _v| _mm512_sub_ps(_mm512_set1_ps(*p.add(j)), a))
                }
                FusedKerSpec::PerColSubF(p) => {
                    each!(|a, j, _v| _mm512_sub_ps(a, _mm512_set1_ps(*p.add(j))))
                }
                FusedKerSpec::AddRowColProducts(r, c) => {
                    each!(|a, j, v| _mm512_fmadd_ps(rows(r, v), _mm512_set1_ps(*c.add(j)), a))
                }
                FusedKerSpec::AddUnicast(other) => {
                    if other.item_size != 4 {
                        return 1;
                    }
                    each!(|a, j, v| _mm512_add_ps(a, load_col(&other, j, v)))
                }
                FusedKerSpec::Store(tile) => {
                    if tile.item_size != 4 {
                        return 1;
                    }
                    for (j, col) in acc.iter().enumerate() {
                        let top = tile.ptr.offset(tile.col_byte_stride * j as isize);
                        for (v, a) in col.iter().enumerate() {
                            let first = top.offset(tile.row_byte_stride * (16 * v) as isize);
                            if tile.row_byte_stride == 4 {
                                _mm512_storeu_ps(first as *mut f32, *a);
                            } else {
                                let mut x = [0f32; 16];
                                _mm512_storeu_ps(x.as_mut_ptr(), *a);
                                for (i, x) in x.iter().enumerate() {
                                    *(first.offset(tile.row_byte_stride * i as isize)
                                        as *mut f32) = *x;
                                }
                            }
                        }
                    }
                }
                FusedKerSpec::AddMatMul { k, pa, pb, packing } => {
                    if packing != 0 {
                        return 1;
                    }
                    acc = add_mat_mul_cols::<MV, MR, NR_COLS>(
                        acc,
                        k,
                        pa as *const f32,
                        pb as *const f32,
                    );
                }
                FusedKerSpec::QScale(..)
                | FusedKerSpec::RoundingShiftRight(..)
                | FusedKerSpec::ShiftLeft(..) => return 1,
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::internal::*;
    use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};
    use tract_linalg::BinOp;

    /// A kernel's entry point, as tract calls it.
    type Kernel = unsafe fn(&[FusedKerSpec<f32>]) -> isize;

    fn usable() -> bool {
        let ok = is_x86_feature_detected!("avx512f");
        if !ok {
            eprintln!(
                "SKIPPED: this CPU has no AVX-512F; the crate's matrix-product kernels never run here"
            );
        }
        ok
    }

    /// Deterministic values in about [-2, 2].
    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 997) as f32 / 249.0) - 2.0)
            .collect()
    }

    /// One kernel call with every fused f32 operation, against the same operations in f64 with
    /// tract's operand order (tract-linalg's generic kernel is the model), stored row-major and
    /// column-major.
    #[test]
    fn every_fused_operation_matches_an_f64_reference() {
        if !usable() {
            return;
        }
        every_fused_operation(run::<ROWS>, NAME_ROWS, ROWS, NR);
        every_fused_operation(run_cols::<2, 32, 8>, NAME_COLS_32, 32, 8);
        every_fused_operation(run_cols::<2, 32, 7>, NAME_COLS_32X7, 32, 7);
    }

    fn every_fused_operation(run: Kernel, name: &str, mr: usize, nr: usize) {
        let k = 37;
        let (pa, pb) = (values(mr * k, 1), values(nr * k, 2));
        let (per_row, per_col) = (values(mr, 3), values(nr, 4));
        let (rows, cols) = (values(mr, 5), values(nr, 6));
        let loaded = values(mr * nr, 7); // col-major tile for LoadTile
        let other = values(mr * nr, 8); // row-major tile for AddUnicast
        let other_t: Vec<f32> = (0..mr * nr)
            .map(|x| other[(x % mr) * nr + x / mr])
            .collect();

        // The reference, in f64.
        let mut r = vec![vec![0f64; nr]; mr];
        let f = |x: f32| f64::from(x);
        type Op<'a> = Box<dyn Fn(usize, usize, f64) -> f64 + 'a>;
        let ops: Vec<(&str, Op)> = vec![
            (
                "matmul",
                Box::new(|i, j, _| (0..k).map(|s| f(pa[s * mr + i]) * f(pb[s * nr + j])).sum()),
            ),
            ("per col add", Box::new(|_, j, x| f(per_col[j]) + x)),
            ("per row mul", Box::new(|i, _, x| f(per_row[i]) * x)),
            ("per row sub", Box::new(|i, _, x| f(per_row[i]) - x)),
            ("per col subf", Box::new(|_, j, x| x - f(per_col[j]))),
            ("per col min", Box::new(|_, j, x| f(per_col[j]).min(x))),
            ("per row max", Box::new(|i, _, x| f(per_row[i]).max(x))),
            ("scalar sub", Box::new(|_, _, x| 0.5 - x)),
            ("scalar mul", Box::new(|_, _, x| 1.5 * x)),
            (
                "leaky relu",
                Box::new(|_, _, x| if x > 0.0 { x } else { 0.1 * x }),
            ),
            (
                "row col products",
                Box::new(|i, j, x| x + f(rows[i]) * f(cols[j])),
            ),
            ("add unicast", Box::new(|i, j, x| x + f(other[i * nr + j]))),
            (
                "add unicast strided",
                Box::new(|i, j, x| x + f(other[i * nr + j])),
            ),
            ("scalar max", Box::new(|_, _, x| x.max(-1.0))),
            ("scalar min", Box::new(|_, _, x| x.min(6.0))),
        ];
        for (_, op) in &ops {
            for (i, row) in r.iter_mut().enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    *x = op(i, j, *x);
                }
            }
        }

        let mut out_rows = vec![0f32; mr * nr];
        let mut out_cols = vec![0f32; mr * nr];
        let mut out_loaded = vec![0f32; mr * nr];
        let row_major = |p: *mut f32| OutputStoreKer {
            ptr: p as *mut u8,
            row_byte_stride: (nr * 4) as isize,
            col_byte_stride: 4,
            item_size: 4,
        };
        let col_major = |p: *mut f32| OutputStoreKer {
            ptr: p as *mut u8,
            row_byte_stride: 4,
            col_byte_stride: (mr * 4) as isize,
            item_size: 4,
        };
        let specs = [
            FusedKerSpec::Clear,
            FusedKerSpec::AddMatMul {
                k,
                pa: pa.as_ptr() as *const u8,
                pb: pb.as_ptr() as *const u8,
                packing: 0,
            },
            FusedKerSpec::PerColAdd(per_col.as_ptr()),
            FusedKerSpec::PerRowMul(per_row.as_ptr()),
            FusedKerSpec::PerRowSub(per_row.as_ptr()),
            FusedKerSpec::PerColSubF(per_col.as_ptr()),
            FusedKerSpec::PerColMin(per_col.as_ptr()),
            FusedKerSpec::PerRowMax(per_row.as_ptr()),
            FusedKerSpec::ScalarSub(0.5),
            FusedKerSpec::ScalarMul(1.5),
            FusedKerSpec::LeakyRelu(0.1),
            FusedKerSpec::AddRowColProducts(rows.as_ptr(), cols.as_ptr()),
            FusedKerSpec::AddUnicast(row_major(other.as_ptr() as *mut f32)),
            FusedKerSpec::AddUnicast(col_major(other_t.as_ptr() as *mut f32)),
            FusedKerSpec::ScalarMax(-1.0),
            FusedKerSpec::ScalarMin(6.0),
            FusedKerSpec::Store(row_major(out_rows.as_mut_ptr())),
            FusedKerSpec::Store(col_major(out_cols.as_mut_ptr())),
            FusedKerSpec::LoadTile(loaded.as_ptr(), std::ptr::null()),
            FusedKerSpec::Store(row_major(out_loaded.as_mut_ptr())),
            FusedKerSpec::Done,
        ];
        // SAFETY: every buffer above holds the `mr` × `nr` tile, `mr` or `nr` values, or `k`
        // packed steps the specs describe; `usable()` checked AVX-512F.
        assert_eq!(unsafe { run(&specs) }, 0);
        for i in 0..mr {
            for j in 0..nr {
                let want = r[i][j];
                for (layout, got) in [
                    ("rows", out_rows[i * nr + j]),
                    ("cols", out_cols[j * mr + i]),
                ] {
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{name}, {layout} ({i}, {j}): {got} vs {want}"
                    );
                }
                assert_eq!(
                    out_loaded[i * nr + j],
                    loaded[j * mr + i],
                    "{name}: LoadTile ({i}, {j})"
                );
            }
        }
        // Integer requantisation is not an f32 operation: an error, not a wrong tile.
        let q = [
            FusedKerSpec::Clear,
            FusedKerSpec::ShiftLeft(1),
            FusedKerSpec::Done,
        ];
        // SAFETY: no pointer in these specs.
        assert_ne!(unsafe { run(&q) }, 0);
    }

    /// Through tract's own driver (packing, tiling, partial tiles in scratch), for sizes that
    /// are not multiples of the tile, with the output row-major and transposed.
    #[test]
    fn products_through_tract_match_a_naive_product() -> TractResult<()> {
        if !usable() {
            return Ok(());
        }
        for mmm in [
            kernel().mmm(),
            cols_kernel::<2, 32, 8>().mmm(),
            cols_kernel::<2, 32, 7>().mmm(),
        ] {
            product_through_tract(&*mmm)?;
        }
        Ok(())
    }

    fn product_through_tract(mmm: &dyn MatMatMul) -> TractResult<()> {
        let (m, k, n) = (61, 19, 37);
        let (av, bv, bias_v) = (values(m * k, 11), values(k * n, 12), values(n, 13));
        let a = Tensor::from_shape(&[m, k], &av)?;
        let b = Tensor::from_shape(&[k, n], &bv)?;
        let bias = Tensor::from_shape(&[n], &bias_v)?;
        let (lo, hi) = (tensor0(0f32), tensor0(2.5f32));
        let (pack_a, pack_b) = &mmm.packings()[0];
        let pa = pack_a.prepare_one(&a, 1, 0)?;
        let pb = pack_b.prepare_one(&b, 0, 1)?;
        let want = |i: usize, j: usize| {
            let s: f64 = (0..k)
                .map(|s| f64::from(av[i * k + s]) * f64::from(bv[s * n + j]))
                .sum();
            (s + f64::from(bias_v[j])).clamp(0.0, 2.5)
        };
        for transposed in [false, true] {
            let shape = if transposed { [n, m] } else { [m, n] };
            let mut c = Tensor::zero::<f32>(&shape)?;
            let (m_axis, n_axis) = if transposed { (1, 0) } else { (0, 1) };
            // SAFETY: `c` is an `m` × `n` (or transposed) f32 tensor that outlives the run, and
            // the packed operands come from this kernel's own packings.
            unsafe {
                let store = mmm.c_view(Some(m_axis), Some(n_axis)).wrap(&c.view_mut());
                mmm.run(
                    m,
                    n,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&*pa),
                            b: AsInputValue::Borrowed(&*pb),
                            packing: 0,
                        },
                        FusedSpec::BinPerCol(bias.view(), BinOp::Add),
                        FusedSpec::BinScalar(&lo, BinOp::Max),
                        FusedSpec::BinScalar(&hi, BinOp::Min),
                        FusedSpec::Store(store),
                    ],
                )?;
            }
            let plain = c.try_as_plain_ram()?;
            let got = plain.as_slice::<f32>()?;
            for i in 0..m {
                for j in 0..n {
                    let g = if transposed {
                        got[j * m + i]
                    } else {
                        got[i * n + j]
                    };
                    let w = want(i, j);
                    assert!(
                        (f64::from(g) - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{}, transposed {transposed}: ({i}, {j}) {g} vs {w}",
                        mmm.name()
                    );
                }
            }
        }
        Ok(())
    }
}
