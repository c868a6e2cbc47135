//! Frame → tensor: decode any format the `image` crate reads, convert to RGB, resize, normalise.
//!
//! The same code runs on the board and in the host tools, so what the host measures is what the
//! board computes.

use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod decode;

pub use decode::{decode_bytes, decode_file, exr_declared_bytes, jpeg_truncation, DecodeLimits};

/// Largest width or height accepted by default. Camera frames and photos are far below this;
/// a header claiming more is refused before any pixel memory is allocated.
pub const DEFAULT_MAX_SIDE: u32 = 16_384;

/// Revision of what decoding produces, for caches of decoded results: 2 applies the EXIF
/// orientation (1 did not). Only the workbench caches decoded results.
#[cfg(feature = "host")]
pub(crate) const DECODE_REVISION: u32 = 2;

/// Largest decoder allocation accepted by default (bytes).
pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// How a frame of any aspect ratio becomes the network's input size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Stretch to the input size, ignoring aspect ratio (right for small, already-square data).
    Squash,
    /// Take the centred region covering `crop_fraction` of the shorter side and scale it to the
    /// input size. `0.875` is the ImageNet evaluation convention (resize to 256, crop 224).
    CenterCrop {
        /// Fraction of the shorter side kept, in (0, 1].
        crop_fraction: f32,
    },
    /// Fit inside the input size keeping aspect ratio; pad the rest with the mean colour
    /// (which normalises to zero).
    Letterbox,
}

/// The command-line form: `squash`, `letterbox` or `center-crop=F` (F in (0, 1]).
impl std::str::FromStr for ResizeMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let usage = "expected `squash`, `letterbox` or `center-crop=F` with F in (0, 1]";
        match s {
            "squash" => Ok(ResizeMode::Squash),
            "letterbox" => Ok(ResizeMode::Letterbox),
            _ => {
                let f = s
                    .strip_prefix("center-crop=")
                    .ok_or_else(|| format!("unknown resize mode `{s}`: {usage}"))?;
                match f.parse::<f32>() {
                    Ok(crop_fraction) if crop_fraction > 0.0 && crop_fraction <= 1.0 => {
                        Ok(ResizeMode::CenterCrop { crop_fraction })
                    }
                    _ => Err(format!("bad crop fraction `{f}`: {usage}")),
                }
            }
        }
    }
}

/// Order of the colour planes in the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue (what EfficientNet-Lite was trained with).
    Rgb,
    /// Blue, green, red (some Caffe-era models).
    Bgr,
}

/// Everything needed to turn a decoded frame into the backbone's input tensor (NCHW, f32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Resize policy.
    pub resize: ResizeMode,
    /// Per-channel mean subtracted from pixel values in 0..=255, in `channel_order`.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, in `channel_order`.
    pub std: [f32; 3],
    /// Plane order in the tensor.
    pub channel_order: ChannelOrder,
}

impl PreprocessSpec {
    /// Checks that the spec can be applied (non-zero size, positive std, sane crop fraction).
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 4096 || self.height > 4096 {
            return Err(Error::InvalidSetting(format!(
                "input size {}×{} must be between 1 and 4096",
                self.width, self.height
            )));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidSetting(format!(
                "normalisation std {:?} must be positive",
                self.std
            )));
        }
        if let ResizeMode::CenterCrop { crop_fraction } = self.resize {
            if !(crop_fraction > 0.0 && crop_fraction <= 1.0) {
                return Err(Error::InvalidSetting(format!(
                    "crop fraction {crop_fraction} must be in (0, 1]"
                )));
            }
        }
        Ok(())
    }

    /// Number of f32 values in one input tensor.
    pub fn tensor_len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }
}

/// Resizes a frame to the spec's input size with its resize policy (bilinear, antialiased when
/// shrinking).
pub fn resize(image: &RgbImage, spec: &PreprocessSpec) -> RgbImage {
    let (tw, th) = (spec.width, spec.height);
    let (w, h) = image.dimensions();
    if (w, h) == (tw, th) {
        return image.clone();
    }
    if w == 0 || h == 0 {
        // Nothing to scale: a mean-coloured frame (all zeros after normalisation).
        return RgbImage::from_pixel(tw, th, image::Rgb(rgb_of_mean(spec)));
    }
    match spec.resize {
        ResizeMode::Squash => resize_region(image, (0, 0, w, h), (tw, th)),
        ResizeMode::CenterCrop { crop_fraction } => {
            // The largest centred box with the target's aspect ratio, shrunk by crop_fraction.
            let target_aspect = tw as f64 / th as f64;
            let (mut cw, mut ch) = if (w as f64 / h as f64) > target_aspect {
                (h as f64 * target_aspect, h as f64)
            } else {
                (w as f64, w as f64 / target_aspect)
            };
            cw *= f64::from(crop_fraction);
            ch *= f64::from(crop_fraction);
            let cw = (cw.round() as u32).clamp(1, w);
            let ch = (ch.round() as u32).clamp(1, h);
            let x = (w - cw) / 2;
            let y = (h - ch) / 2;
            resize_region(image, (x, y, cw, ch), (tw, th))
        }
        ResizeMode::Letterbox => {
            let scale = (tw as f64 / w as f64).min(th as f64 / h as f64);
            let nw = ((w as f64 * scale).round() as u32).clamp(1, tw);
            let nh = ((h as f64 * scale).round() as u32).clamp(1, th);
            let scaled = imageops::resize(image, nw, nh, FilterType::Triangle);
            let fill = image::Rgb(rgb_of_mean(spec));
            let mut canvas = RgbImage::from_pixel(tw, th, fill);
            imageops::replace(
                &mut canvas,
                &scaled,
                i64::from((tw - nw) / 2),
                i64::from((th - nh) / 2),
            );
            canvas
        }
    }
}

fn rgb_of_mean(spec: &PreprocessSpec) -> [u8; 3] {
    let m = spec.mean.map(|v| v.round().clamp(0.0, 255.0) as u8);
    match spec.channel_order {
        ChannelOrder::Rgb => m,
        ChannelOrder::Bgr => [m[2], m[1], m[0]],
    }
}

/// Normalises an image already at the input size into an NCHW f32 tensor (batch of one).
///
/// Panics never: an image of the wrong size is an `InvalidSetting` error.
pub fn normalize(image: &RgbImage, spec: &PreprocessSpec) -> Result<Vec<f32>> {
    if image.dimensions() != (spec.width, spec.height) {
        return Err(Error::InvalidSetting(format!(
            "image is {}×{}, the tensor needs {}×{}",
            image.width(),
            image.height(),
            spec.width,
            spec.height
        )));
    }
    let plane = spec.width as usize * spec.height as usize;
    let mut tensor = vec![0f32; 3 * plane];
    let planes: [usize; 3] = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let inv_std = spec.std.map(|s| 1.0 / s);
    for (i, px) in image.pixels().enumerate() {
        for (c, &p) in planes.iter().enumerate() {
            // Mean and std are given in tensor (channel_order) order; px is always RGB.
            tensor[p * plane + i] = (f32::from(px[c]) - spec.mean[p]) * inv_std[p];
        }
    }
    Ok(tensor)
}

/// Bilinear (triangle filter, widened when shrinking, as Pillow's `resize(…, BILINEAR)`) of the
/// box `(x, y, width, height)` of `image` to `size`, with fast_image_resize's SIMD kernels: about
/// 10× faster than `image::imageops::resize` on a 640×480 frame (BENCHMARKS.md). The box is cut
/// out first, so that, as with PIL's `crop(…).resize(…)`, no pixel outside it leaks in at the
/// edges. Should the resizer refuse (it cannot for these sizes), the image crate does the work.
fn resize_region(image: &RgbImage, region: (u32, u32, u32, u32), size: (u32, u32)) -> RgbImage {
    use fast_image_resize::{
        images::Image, FilterType as Fir, PixelType, ResizeAlg, ResizeOptions,
    };
    let (x, y, cw, ch) = region;
    let (tw, th) = size;
    let cut = if (x, y, cw, ch) == (0, 0, image.width(), image.height()) {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(crop(image, (x, y, cw, ch)))
    };
    let fast = || -> Option<RgbImage> {
        let src = fast_image_resize::images::ImageRef::new(
            cut.width(),
            cut.height(),
            cut.as_raw(),
            PixelType::U8x3,
        )
        .ok()?;
        let mut dst = Image::new(tw, th, PixelType::U8x3);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(Fir::Bilinear));
        fast_image_resize::Resizer::new()
            .resize(&src, &mut dst, &options)
            .ok()?;
        RgbImage::from_raw(tw, th, dst.into_vec())
    };
    fast().unwrap_or_else(|| imageops::resize(cut.as_ref(), tw, th, FilterType::Triangle))
}

/// The box `(x, y, width, height)` of `image`, clamped to it, copied row by row: the same
/// pixels as `imageops::crop_imm(…).to_image()`, which copies pixel by pixel through a generic
/// view (about 4 M instructions a 640×427 frame on an emulated Cortex-A76; BENCHMARKS.md).
fn crop(image: &RgbImage, region: (u32, u32, u32, u32)) -> RgbImage {
    let (w, h) = image.dimensions();
    let x = region.0.min(w);
    let y = region.1.min(h);
    let cw = region.2.min(w - x);
    let ch = region.3.min(h - y);
    let (stride, row, left) = (w as usize * 3, cw as usize * 3, x as usize * 3);
    let raw = image.as_raw();
    let mut out = Vec::with_capacity(row * ch as usize);
    for r in y as usize..(y + ch) as usize {
        out.extend_from_slice(&raw[r * stride + left..][..row]);
    }
    RgbImage::from_raw(cw, ch, out).unwrap_or_else(|| RgbImage::new(cw, ch))
}

/// Resize + normalise: a decoded RGB frame of any size to the backbone's input tensor.
pub fn tensor_from_image(image: &RgbImage, spec: &PreprocessSpec) -> Result<Vec<f32>> {
    normalize(&resize(image, spec), spec)
}

/// Raw-pixel features (the seed's baseline): the frame squashed to `size × size`, RGB planes,
/// values 0..1.
pub(crate) fn raw_pixels(image: &RgbImage, size: u32) -> Vec<f32> {
    if image.width() == 0 || image.height() == 0 {
        return vec![0.0; 3 * (size * size) as usize];
    }
    let small = imageops::resize(image, size, size, FilterType::Triangle);
    let plane = (size * size) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(p[c]) / 255.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode::to_rgb;
    use super::*;
    use image::{DynamicImage, GrayImage, Rgb, Rgba, RgbaImage};

    /// The row-by-row crop gives the image crate's pixels, for boxes inside, at the edges
    /// and past them (both clamp).
    #[test]
    fn crop_equals_the_image_crates() {
        let image = RgbImage::from_fn(37, 23, |x, y| {
            Rgb([x as u8 * 7, y as u8 * 11, (x ^ y) as u8])
        });
        for region in [
            (0, 0, 37, 23),
            (3, 5, 20, 11),
            (36, 22, 1, 1),
            (30, 10, 20, 20),
            (0, 7, 37, 9),
            (40, 30, 5, 5),
        ] {
            let ours = crop(&image, region);
            let theirs =
                imageops::crop_imm(&image, region.0, region.1, region.2, region.3).to_image();
            assert_eq!(ours.dimensions(), theirs.dimensions(), "{region:?}");
            assert_eq!(ours.as_raw(), theirs.as_raw(), "{region:?}");
        }
    }

    fn spec(resize: ResizeMode) -> PreprocessSpec {
        PreprocessSpec {
            width: 4,
            height: 4,
            resize,
            mean: [127.0; 3],
            std: [128.0; 3],
            channel_order: ChannelOrder::Rgb,
        }
    }

    #[test]
    fn normalize_is_tf_style_and_planar() {
        let mut img = RgbImage::from_pixel(4, 4, Rgb([127, 255, 0]));
        img.put_pixel(1, 0, Rgb([255, 0, 127]));
        let t = normalize(&img, &spec(ResizeMode::Squash)).unwrap();
        assert_eq!(t.len(), 48);
        assert_eq!(t[0], 0.0); // R plane, pixel 0
        assert_eq!(t[16], 1.0); // G plane, pixel 0: (255-127)/128
        assert_eq!(t[32], -127.0 / 128.0); // B plane, pixel 0
        assert_eq!(t[1], 1.0); // R plane, pixel 1
    }

    #[test]
    fn bgr_swaps_planes() {
        let img = RgbImage::from_pixel(4, 4, Rgb([255, 127, 0]));
        let mut s = spec(ResizeMode::Squash);
        s.channel_order = ChannelOrder::Bgr;
        let t = normalize(&img, &s).unwrap();
        assert_eq!(t[0], -127.0 / 128.0); // plane 0 is blue
        assert_eq!(t[32], 1.0); // plane 2 is red
    }

    #[test]
    fn wrong_size_is_an_error_not_a_panic() {
        let img = RgbImage::new(3, 4);
        assert!(normalize(&img, &spec(ResizeMode::Squash)).is_err());
    }

    #[test]
    fn center_crop_takes_the_middle() {
        // 8×4 image: left half black, middle white, right half black. A full-height centre crop
        // (fraction 0.5 of the 4-px side = 2 px) lands entirely in the white middle.
        let mut img = RgbImage::from_pixel(8, 4, Rgb([0, 0, 0]));
        for y in 0..4 {
            for x in 3..5 {
                img.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let out = resize(&img, &spec(ResizeMode::CenterCrop { crop_fraction: 0.5 }));
        assert_eq!(out.dimensions(), (4, 4));
        assert!(out.pixels().all(|p| p[0] == 255), "{out:?}");
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads_with_the_mean() {
        let img = RgbImage::from_pixel(8, 4, Rgb([255, 0, 0]));
        let out = resize(&img, &spec(ResizeMode::Letterbox));
        assert_eq!(out.dimensions(), (4, 4));
        assert_eq!(*out.get_pixel(0, 0), Rgb([127, 127, 127]));
        assert_eq!(*out.get_pixel(0, 1), Rgb([255, 0, 0]));
        assert_eq!(*out.get_pixel(3, 3), Rgb([127, 127, 127]));
    }

    #[test]
    fn squash_fills_the_frame() {
        let img = RgbImage::from_pixel(10, 3, Rgb([9, 9, 9]));
        let out = resize(&img, &spec(ResizeMode::Squash));
        assert_eq!(out.dimensions(), (4, 4));
        assert!(out.pixels().all(|p| *p == Rgb([9, 9, 9])));
    }

    #[test]
    fn grey_and_alpha_become_rgb() {
        let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(2, 2, image::Luma([80])));
        assert_eq!(*to_rgb(grey).get_pixel(1, 1), Rgb([80, 80, 80]));
        let mut rgba = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, Rgba([10, 20, 30, 255]));
        let rgb = to_rgb(DynamicImage::ImageRgba8(rgba));
        assert_eq!(*rgb.get_pixel(0, 0), Rgb([255, 255, 255])); // transparent → white
        assert_eq!(*rgb.get_pixel(1, 0), Rgb([10, 20, 30])); // opaque unchanged
    }

    #[test]
    fn an_empty_frame_becomes_a_mean_frame_not_a_panic() {
        let out = resize(&RgbImage::new(0, 0), &spec(ResizeMode::Letterbox));
        assert_eq!(out.dimensions(), (4, 4));
        assert!(out.pixels().all(|p| *p == Rgb([127, 127, 127])));
        assert_eq!(raw_pixels(&RgbImage::new(0, 3), 2), vec![0.0; 12]);
    }

    #[test]
    fn resize_modes_parse_from_the_command_line_form() {
        assert_eq!("squash".parse(), Ok(ResizeMode::Squash));
        assert_eq!("letterbox".parse(), Ok(ResizeMode::Letterbox));
        assert_eq!(
            "center-crop=1".parse(),
            Ok(ResizeMode::CenterCrop { crop_fraction: 1.0 })
        );
        for bad in [
            "",
            "crop",
            "center-crop",
            "center-crop=0",
            "center-crop=1.5",
            "center-crop=NaN",
        ] {
            let err = bad.parse::<ResizeMode>().expect_err(bad);
            assert!(err.contains("center-crop=F"), "{bad}: {err}");
        }
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut s = spec(ResizeMode::CenterCrop { crop_fraction: 1.5 });
        assert!(s.validate().is_err());
        s.resize = ResizeMode::Squash;
        s.std = [0.0, 1.0, 1.0];
        assert!(s.validate().is_err());
        s.std = [1.0; 3];
        s.width = 0;
        assert!(s.validate().is_err());
    }
}
