//! Host-only code (the `glance-host` workbench): datasets, cached extraction, fitting,
//! evaluation, reports, and the commands built on them. Behind the `host` cargo feature so the
//! board binary stays small.

pub mod commands;
pub mod dataset;
pub mod draw;
pub mod extract;
pub mod fit;
pub mod metrics;
pub mod monitor;
pub mod npy;
pub mod openset;
pub mod report;
pub mod show;
pub mod workbench;
