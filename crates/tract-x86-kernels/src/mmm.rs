//! Which of tract-linalg's f32 matrix-product kernels runs each 1×1 convolution of the backbone
//! on Intel CPUs with AVX-512.
//!
//! tract-linalg chooses a kernel per matmul with a linear cost model fitted on plain `m × k × n`
//! products. The backbone's convolutions are not plain: the stem writes a 32 × 12544 output
//! along its long axis, and the early 1×1 convolutions have `k` of 16 to 40, where packing and
//! stores, not the multiply, decide. Timed in the real graph (every node, every kernel:
//! `scripts/tune-mmm.py`), tract's pick was up to 1.8× slower than the best kernel on the stem
//! and 10–25 % slower on a dozen other shapes. The candidates include this crate's own kernels
//! (`rowmmm.rs`), which win every shape in the table but the stem's: up to 2× faster than
//! tract's pick, because they store whole vectors where tract's store one float at a time. This
//! module registers a dispatch tier in tract-linalg (`MmmTier`, the table tract's own x86 and
//! arm tiers are declared in) above tract's, which answers for those shapes with the kernel
//! measured fastest, and leaves every other query to tract. A kernel the query cannot use is
//! ignored by tract, which then asks its own tiers, so the table can never make a matmul
//! impossible; results differ from tract's choice only by summation order.
//!
//! The tier answers only while [`with`] runs (in [`crate::optimize`], per [`Matmul`]): tract
//! asks it when it builds each product's plan, so the answer is fixed in the optimised model and
//! models optimised otherwise in the same process keep tract's choice.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tract_core::internal::DatumType;
use tract_linalg::isa::{Arch, Isa, IsaSet};
use tract_linalg::mmm::{Query, Suitable};
use tract_linalg::mmm_tiers::MmmTier;

/// How [`crate::optimize`] chooses the f32 matrix-product kernel of each product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matmul {
    /// tract's own choice.
    Tract,
    /// [`TUNED`]'s kernel for the shapes it lists, on the CPUs it was measured on (Intel,
    /// AVX-512F); tract's choice elsewhere.
    Table,
    /// This kernel (by tract-linalg's name, e.g. `avx512_mmm_f32_16x12`) for every f32 product
    /// it can run: how the table is measured (`scripts/tune-mmm.py`).
    Force(&'static str),
}

thread_local! {
    /// What the tier answers on this thread: set by [`with`] only.
    static MODE: Cell<Matmul> = const { Cell::new(Matmul::Tract) };
}

/// Runs `f` with the tier answering per `mode` on this thread (tract asks on the thread that
/// optimises the model).
pub(crate) fn with<R>(mode: Matmul, f: impl FnOnce() -> R) -> R {
    let previous = MODE.with(|m| m.replace(mode));
    let r = f();
    MODE.with(|m| m.set(previous));
    r
}

/// `(m, k, n)` of a matmul in EfficientNet-Lite0 at 224² as tract lays it out, and the kernel
/// measured fastest for it on an Intel AVX-512 core (1 thread; medians of three sweeps, matmul
/// plus its activation packing, kept only where the gain was over 5 % in every sweep). The
/// layers each shape occurs in are named for the record.
pub const TUNED: &[((usize, usize, usize), &str)] = &[
    ((32, 27, 12544), "avx512_mmm_f32_16x12"), // stem (fma 32x3, 1.42 → 0.77 ms)
    ((12544, 32, 16), COLS_32),                // block 0 project (48x4, 0.41 → 0.29)
    ((12544, 16, 96), ROWS_24),                // block 1 expand (80x2, 1.29 → 0.66)
    ((3136, 96, 24), COLS_32),                 // block 1 project (16x12, 0.28 → 0.24)
    ((3136, 24, 144), ROWS_24),                // blocks 2-3 expand (80x2, 0.46 → 0.27)
    ((3136, 144, 24), COLS_32),                // block 2 project (16x12, 0.57 → 0.31)
    ((784, 144, 40), COLS_32),                 // block 3 project (16x8, 0.13 → 0.10)
    ((784, 40, 240), ROWS_24),                 // blocks 4-5 expand (16x12, 0.21 → 0.15)
    ((784, 240, 40), COLS_32),                 // block 4 project (16x8, 0.30 → 0.15)
    ((196, 240, 80), COLS_32),                 // block 5 project (16x8, 0.096 → 0.073)
    ((480, 80, 196), COLS_32),                 // blocks 6-8 expand (16x12, 0.18-0.20 → 0.12)
    ((196, 480, 80), COLS_32),                 // blocks 6-7 project (16x8, 0.18-0.19 → 0.13)
    ((196, 480, 112), COLS_32),                // block 8 project (16x8, 0.21 → 0.17)
    ((672, 112, 196), COLS_32),                // blocks 9-11 expand (16x12, 0.32-0.34 → 0.21)
    ((196, 672, 112), COLS_32),                // blocks 9-10 project (16x8, 0.34-0.36 → 0.24)
    ((192, 672, 49), COLS_7),                  // block 11 project (32x5, 0.13 → 0.11)
    ((1152, 192, 49), COLS_7),                 // blocks 12-15 expand (32x5, 0.22 → 0.19)
    ((192, 1152, 49), COLS_7),                 // blocks 12-14 project (32x5, 0.21-0.22 → 0.18-0.20)
    ((320, 1152, 49), COLS_7),                 // block 15 project (32x5, 0.33 → 0.28)
];

/// This crate's row-major AVX-512 kernel (`rowmmm.rs`), for products whose output rows (one
/// position's channels) are contiguous.
const ROWS_24: &str = super::rowmmm::NAME_ROWS;
/// This crate's column-major AVX-512 kernel with vector stores (`rowmmm.rs`), for products whose
/// output columns are contiguous.
const COLS_32: &str = super::rowmmm::NAME_COLS_32;
/// The same with 7 columns, for the 7×7 maps' 49 positions.
const COLS_7: &str = super::rowmmm::NAME_COLS_32X7;

/// One flag per [`TUNED`] entry: set once tract has asked for that shape and got the answer.
static ASKED: [AtomicBool; TUNED.len()] = [const { AtomicBool::new(false) }; TUNED.len()];

/// The CPUs the table was measured on: Intel, AVX-512F (tract's own models also split Intel
/// from AMD).
fn measured_here(isa: &IsaSet) -> bool {
    isa.has(Isa::X86_64Avx512f) && isa.has(Isa::X86_64Fma) && is_intel()
}

fn is_intel() -> bool {
    static INTEL: OnceLock<bool> = OnceLock::new();
    *INTEL.get_or_init(|| {
        // `__cpuid` is safe on recent rustc and unsafe on older ones.
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU.
        #[allow(unused_unsafe, unsafe_code)]
        let id = unsafe { std::arch::x86_64::__cpuid(0) };
        let mut vendor = [0u8; 12];
        vendor[0..4].copy_from_slice(&id.ebx.to_le_bytes());
        vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
        vendor[8..12].copy_from_slice(&id.ecx.to_le_bytes());
        &vendor == b"GenuineIntel"
    })
}

fn preferred(isa: &IsaSet, dt: DatumType, q: &Query, _: &[Suitable]) -> Option<&'static str> {
    if dt != DatumType::F32 || q.n == Some(1) {
        return None;
    }
    match MODE.with(Cell::get) {
        Matmul::Tract => None,
        Matmul::Force(name) => Some(name),
        Matmul::Table => {
            if !measured_here(isa) {
                return None;
            }
            let shape = (q.m?, q.k?, q.n?);
            let ix = TUNED.iter().position(|(s, _)| *s == shape)?;
            ASKED[ix].store(true, Ordering::Relaxed);
            Some(TUNED[ix].1)
        }
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::X86_64),
        // Above every tier tract-linalg 0.23 declares for x86-64 (the highest is 8).
        precedence: 100,
        name: "tract-x86-kernels-tuned",
        applies: |_| true,
        preferred,
    }
}

/// What [`Matmul::Table`] does on this machine, for logs and profiles.
pub(crate) fn describe() -> String {
    match measured_here(&tract_linalg::isa::native()) {
        true => format!(
            "a table of kernels for Intel AVX-512 ({} shapes), tract's choice elsewhere",
            TUNED.len()
        ),
        false => "tract's choice (the table is for Intel AVX-512)".to_string(),
    }
}

/// The [`TUNED`] shapes tract has not asked about in this process.
#[cfg(test)]
fn unasked() -> Vec<(usize, usize, usize)> {
    TUNED
        .iter()
        .zip(&ASKED)
        .filter(|(_, asked)| !asked.load(Ordering::Relaxed))
        .map(|((shape, _), _)| *shape)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::MmmDispatch;

    #[test]
    fn the_table_names_kernels_this_build_has_once_each() {
        let runnable: Vec<String> = MmmDispatch::native()
            .runnable()
            .iter()
            .map(|k| k.name().to_string())
            .collect();
        for (i, (shape, name)) in TUNED.iter().enumerate() {
            assert!(
                TUNED[..i].iter().all(|(s, _)| s != shape),
                "{shape:?} is in the table twice"
            );
            if measured_here(&tract_linalg::isa::native()) {
                assert!(
                    runnable.iter().any(|r| r == name),
                    "{name} is not runnable here"
                );
            }
        }
    }

    /// Whether the table answers on this machine; says so loudly when it does not.
    fn table_in_use() -> bool {
        let used = measured_here(&tract_linalg::isa::native());
        if !used {
            eprintln!("SKIPPED: not an Intel AVX-512 CPU: {}", describe());
        }
        used
    }

    #[test]
    fn tuned_shapes_get_their_kernel_this_crates_included_and_other_shapes_tracts_choice() {
        if !table_in_use() {
            return;
        }
        let dispatch = MmmDispatch::native();
        let pick = |m, k, n| {
            with(Matmul::Table, || {
                dispatch
                    .preferred_kernel(DatumType::F32, Some(m), Some(k), Some(n))
                    .map(|k| k.name().to_string())
            })
        };
        assert_eq!(pick(32, 27, 12544).as_deref(), Some("avx512_mmm_f32_16x12"));
        // This crate's own kernel is in tract's inventory and tract takes the tier's word for it.
        assert_eq!(pick(12544, 16, 96).as_deref(), Some(ROWS_24));
        assert_eq!(pick(672, 112, 196).as_deref(), Some(COLS_32));
        assert_eq!(pick(1152, 192, 49).as_deref(), Some(COLS_7));
        // A shape not in the table gets what tract's own tiers say, not an error.
        let other = pick(1024, 1024, 1024);
        assert!(other.is_some() && !TUNED.iter().any(|(s, _)| *s == (1024, 1024, 1024)));
        // Outside `with`, tract's own choice, whatever the table says.
        let tract = dispatch
            .preferred_kernel(DatumType::F32, Some(12544), Some(16), Some(96))
            .map(|k| k.name().to_string());
        assert_ne!(tract.as_deref(), Some(ROWS_24));
    }

    /// The table is keyed on shapes as tract lays this model out; if a tract upgrade changes
    /// that layout, the entries go stale silently. This catches it: optimising the shipped
    /// backbone (fp32, 224², as glance loads it) asks for every shape in the table.
    #[test]
    fn optimising_the_shipped_backbone_asks_for_every_tuned_shape() {
        if !table_in_use() {
            return;
        }
        crate::optimize(crate::tests::shipped_backbone(1), &crate::Pieces::default()).unwrap();
        assert_eq!(unasked(), Vec::<(usize, usize, usize)>::new());
    }
}
