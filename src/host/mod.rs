//! Host-only code (the `glance-host` workbench): datasets, cached extraction, fitting,
//! evaluation, reports, and the commands built on them. Behind the `host` cargo feature so the
//! board binary stays small.

pub mod commands;
mod dataset;
mod draw;
mod extract;
mod fit;
mod metrics;
mod monitor;
mod monitor_mqtt;
mod npy;
mod openset;
mod report;
mod show;
mod workbench;

pub use extract::default_cache_dir;
pub use monitor::{monitor, Framing, MonitorOptions, MonitorSummary};
pub use monitor_mqtt::{monitor_mqtt, MqttMonitorOptions};
pub use show::show;
pub use workbench::{DeepNorm, RunOptions};
