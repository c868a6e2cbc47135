//! tract's declutter as it runs on a machine without a channels-last depthwise kernel: how
//! [`crate::Pieces::depthwise`] off times tract's own layout and kernels in a process that links
//! this crate (whose kernels are registered at link time and cannot be taken back).

use std::collections::HashSet;

use tract_core::internal::*;
use tract_core::ops::cnn::Conv;
use tract_core::ops::dummy::Dummy;
use tract_core::optim::change_axes::change_axes;
use tract_core::optim::{Optimizer, OptimizerSession, TypedPass};

/// tract's `ChangeAxes` pass (tract-core 0.23.9, `optim/change_axes.rs`, copied) without the
/// suggestions of `Conv` nodes. `Conv` suggests one thing only: moving a depthwise convolution's
/// channels last, and only where tract-linalg has a channels-last kernel, which is what this
/// crate adds. Everything else the pass does (other ops' suggestions, unit axes removed) stays.
#[derive(Clone, Default)]
struct ChangeAxesExceptConv(HashSet<AxisChange>, usize);

impl std::fmt::Debug for ChangeAxesExceptConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChangeAxesExceptConv")
    }
}

impl TypedPass for ChangeAxesExceptConv {
    fn reset(&mut self) -> TractResult<()> {
        self.0.clear();
        self.1 = 0;
        Ok(())
    }

    fn next(
        &mut self,
        _session: &mut OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        let mut explored: HashSet<AxisChange> = Default::default();
        let mut interfaces = model.output_outlets()?.to_vec();
        interfaces.extend(model.input_outlets()?.iter());
        for node in &model.nodes[self.1..] {
            if node.op_is::<Dummy>() {
                continue;
            }
            let suggestions = match node.op_is::<Conv>() {
                true => tvec!(),
                false => node.op.suggested_axis_changes()?,
            };
            for suggestion in suggestions {
                let outlet = suggestion.0.as_outlet(node);
                let change = AxisChange {
                    outlet,
                    op: suggestion.1,
                };
                if self.0.insert(change.clone()) {
                    if let Some((patch, _)) =
                        change_axes(model, &change, &interfaces, &[], &mut explored)?
                    {
                        self.1 = node.id;
                        return Ok(Some(patch));
                    }
                }
            }
            for (slot, fact) in node.outputs.iter().enumerate() {
                for (ix, dim) in fact.fact.shape.iter().enumerate() {
                    if !dim.is_one() {
                        continue;
                    }
                    let change = AxisChange {
                        outlet: OutletId::new(node.id, slot),
                        op: AxisOp::Rm(ix),
                    };
                    if self.0.insert(change.clone()) {
                        if let Some((patch, _)) =
                            change_axes(model, &change, &interfaces, &[], &mut explored)?
                        {
                            self.1 = node.id;
                            return Ok(Some(patch));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

/// `model.declutter()` with tract's `ChangeAxes` pass replaced by [`ChangeAxesExceptConv`].
pub(crate) fn declutter_without_depthwise_layout(model: &mut TypedModel) -> TractResult<()> {
    let mut optimizer = Optimizer::declutter();
    let ix = optimizer
        .passes
        .iter()
        .position(|p| format!("{p:?}") == "ChangeAxes")
        .context("tract's declutter has no ChangeAxes pass (not tract-core 0.23.9?)")?;
    optimizer.passes[ix] = Box::new(ChangeAxesExceptConv::default());
    optimizer.optimize(model)
}
