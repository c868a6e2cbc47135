//! The backbones `glance-host` can fit on without a file: EfficientNet-Lite0, -Lite1 and -Lite2,
//! their int8-weight exports compiled into the host binary (`fit --backbone lite2`), and Lite0 at
//! 160² and 192² (`lite0-160`: the same file at a smaller input side), and Lite0 multi-level
//! (`lite0-ml`: its own file, middle blocks' pooled outputs after the head's). The board
//! binary embeds Lite0 alone (`embedded-model`); a bundle fitted on another carries its bytes.

use anyhow::{Context, Result};

use crate::backbone::{embedded_model, Backbone, EngineOptions};
use crate::manifest::Manifest;

/// A backbone shipped in `models/`, by its family name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shipped {
    /// EfficientNet-Lite0: 224², 0.81 GFLOPs, ImageNet top-1 75.1% (the default).
    Lite0,
    /// EfficientNet-Lite1: 240², 1.26 GFLOPs, 76.7%.
    Lite1,
    /// EfficientNet-Lite2: 260², 1.80 GFLOPs, 77.6%.
    Lite2,
    /// EfficientNet-Lite0 at 160²: the same file (convolutions up to a global pooling take any
    /// input side), about half the multiply-adds, for the slowest boards.
    #[value(name = "lite0-160")]
    Lite0At160,
    /// EfficientNet-Lite0 at 192², about three quarters of the multiply-adds.
    #[value(name = "lite0-192")]
    Lite0At192,
    /// EfficientNet-Lite0, multi-level: its 1280 features, then the pooled outputs of four
    /// middle blocks (1776 in all), for subjects far from ImageNet's photos (textures, scans,
    /// grey garments); the same multiply-adds as Lite0.
    #[value(name = "lite0-ml")]
    Lite0Ml,
}

impl Shipped {
    /// The manifest name of its int8-weight file.
    pub fn manifest_name(self) -> &'static str {
        match self {
            Shipped::Lite0 | Shipped::Lite0At160 | Shipped::Lite0At192 => {
                "efficientnet-lite0-int8w"
            }
            Shipped::Lite1 => "efficientnet-lite1-int8w",
            Shipped::Lite2 => "efficientnet-lite2-int8w",
            Shipped::Lite0Ml => "efficientnet-lite0ml-int8w",
        }
    }

    /// The ONNX bytes compiled into this binary.
    pub fn bytes(self) -> Option<&'static [u8]> {
        match self {
            Shipped::Lite0 | Shipped::Lite0At160 | Shipped::Lite0At192 => embedded_model(),
            Shipped::Lite1 => Some(include_bytes!("../../models/efficientnet_lite1_int8w.onnx")),
            Shipped::Lite2 => Some(include_bytes!("../../models/efficientnet_lite2_int8w.onnx")),
            Shipped::Lite0Ml => Some(include_bytes!(
                "../../models/efficientnet_lite0ml_int8w.onnx"
            )),
        }
    }

    /// The input side when it is not the manifest's (the preprocessing's crop fraction stays).
    pub fn side(self) -> Option<u32> {
        match self {
            Shipped::Lite0At160 => Some(160),
            Shipped::Lite0At192 => Some(192),
            Shipped::Lite0 | Shipped::Lite1 | Shipped::Lite2 | Shipped::Lite0Ml => None,
        }
    }

    /// Loads it on `engine`; [`Backbone::from_bytes`] checks the bytes against the manifest's
    /// sha256 (both come from models/ at build time: a difference means a stale manifest).
    pub fn load(self, engine: &EngineOptions) -> Result<Backbone> {
        let bytes = self.bytes().with_context(|| {
            format!(
                "this build does not embed {} (cargo feature `embedded-model`)",
                self.manifest_name()
            )
        })?;
        let mut entry = Manifest::embedded()?.find(self.manifest_name())?.clone();
        // The bundle carries this preprocessing, so the board runs the backbone at this side too.
        if let Some(side) = self.side() {
            entry.preprocess.width = side;
            entry.preprocess.height = side;
        }
        let origin = format!("<embedded {}>", entry.name).into();
        Ok(Backbone::from_bytes(bytes, entry, origin, engine)?)
    }
}
