//! x86-64 kernels for tract 0.23.9, for EfficientNet-Lite0-like backbones: what glance plugs into
//! tract's internal registries, in one place, meant to go upstream into tract itself.
//!
//! What it adds (README.md has the measurements):
//! * a channels-last depthwise convolution kernel (AVX2 + FMA) in tract-linalg's routine table
//!   (`Func::DepthwiseC`), where tract 0.23 has one for aarch64 and wasm only: with one
//!   registered, tract runs depthwise convolutions channels-last on it ([`Pieces::depthwise`]);
//! * three AVX-512 f32 matrix-product kernels that store whole vectors (`rowmmm`), and a dispatch
//!   tier above tract's that names, for this backbone's 1×1-convolution shapes, the kernel measured
//!   fastest on Intel AVX-512 (`mmm`, [`Pieces::matmul`]).
//!
//! Everything here is compiled on x86-64 only. The depthwise kernel is registered at link time, so
//! any tract model optimised in a process that links this crate may run it; the matrix-product
//! table applies only to models optimised with [`optimize`].
//!
//! The versions of tract-linalg and tract-core are pinned `=`: the registries, `FusedKerSpec` and
//! the op names this crate relies on are not tract's public API and change between releases.
#![cfg(target_arch = "x86_64")]
#![warn(missing_docs)]
// Unsafe code only in the modules that say so (the SIMD kernels), each block with a SAFETY comment.
#![deny(unsafe_code)]

mod depthwise;
mod layout;
mod mmm;
mod rowmmm;

use tract_core::internal::*;

pub use mmm::Matmul;

/// Which of the crate's pieces [`optimize`] applies. [`Pieces::default`] is everything, which is
/// what glance runs; the others exist to time each piece against tract's own
/// (`examples/side_by_side.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    /// Depthwise convolutions channels-last on this crate's kernel. Off, the graph is laid out as
    /// tract lays it out without a channels-last kernel (depthwise convolutions stay NCHW, on
    /// tract's own kernels); the kernel stays registered, nothing calls it.
    pub depthwise: bool,
    /// Which f32 matrix-product kernel runs each product.
    pub matmul: Matmul,
}

impl Default for Pieces {
    fn default() -> Self {
        Self {
            depthwise: true,
            matmul: Matmul::Table,
        }
    }
}

impl Pieces {
    /// Nothing of this crate's but the registration of its kernels: tract's own layout and
    /// kernel choice.
    pub const NONE: Pieces = Pieces {
        depthwise: false,
        matmul: Matmul::Tract,
    };
}

/// Declutters and optimises `model` as tract's `TypedModel::into_optimized` does, with `pieces`
/// of this crate: the depthwise layout while decluttering, the matrix-product kernel choice while
/// optimising.
pub fn optimize(model: TypedModel, pieces: &Pieces) -> TractResult<TypedModel> {
    let mut model = model;
    mmm::with(pieces.matmul, || {
        match pieces.depthwise {
            true => model.declutter()?,
            false => layout::declutter_without_depthwise_layout(&mut model)?,
        }
        model.optimize()
    })?;
    Ok(model)
}

/// What this crate does on this machine, in words, for logs and profiles: the depthwise kernel
/// tract runs and how matrix-product kernels are chosen by [`optimize`].
pub fn describe() -> String {
    format!(
        "depthwise kernel: {}; matrix products: {}",
        depthwise::active().unwrap_or("tract's own (this CPU has no AVX2 + FMA)"),
        mmm::describe(),
    )
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::*;

    /// The shipped fp32 backbone as glance loads it, for one 1×3×224×224 input: typed, its first
    /// `outputs` outputs (1: the features, as bundles run it; 2: and the ImageNet logits), not
    /// optimised yet.
    pub(crate) fn shipped_backbone(outputs: usize) -> TypedModel {
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
        model.outputs.truncate(outputs);
        model
    }
}
