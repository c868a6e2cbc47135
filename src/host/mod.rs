//! Host-only code (the `glance-host` workbench): datasets, cached extraction, fitting,
//! evaluation, reports, and the commands built on them. Behind the `host` cargo feature so the
//! board binary stays small.

mod backbones;
pub mod commands;
mod dataset;
mod draw;
mod extract;
mod fit;
mod label;
mod metrics;
mod monitor;
mod monitor_mqtt;
mod npy;
mod openset;
mod report;
mod show;
mod workbench;

pub use backbones::Shipped as ShippedBackbone;
pub use extract::default_cache_dir;
pub use label::{label, LabelSummary, LABELS_CSV};
pub use monitor::{monitor, Framing, MonitorOptions, MonitorSummary};
pub use monitor_mqtt::{monitor_mqtt, MqttMonitorOptions};
pub use show::show;
pub use workbench::{Augment, DeepNorm, RunOptions};
