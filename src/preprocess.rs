//! Frame → tensor: decode any format the `image` crate reads, convert to RGB, resize, normalise.
//!
//! The same code runs on the board and in the host tools, so what the host measures is what the
//! board computes.

use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest width or height accepted by default. Camera frames and photos are far below this;
/// a header claiming more is refused before any pixel memory is allocated.
pub const DEFAULT_MAX_SIDE: u32 = 16_384;

/// Revision of what decoding produces, for caches of decoded results: 2 applies the EXIF
/// orientation (1 did not).
pub const DECODE_REVISION: u32 = 2;

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

/// Decoder limits: the guard against decompression bombs and absurd headers.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted width and height.
    pub max_side: u32,
    /// Largest accepted decoder allocation, in bytes.
    pub max_alloc: u64,
    /// Decode a JPEG that ends before its end-of-image marker (the decoder fills the missing
    /// rows with grey) instead of refusing it.
    pub allow_truncated: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_side: DEFAULT_MAX_SIDE,
            max_alloc: DEFAULT_MAX_ALLOC,
            allow_truncated: false,
        }
    }
}

impl DecodeLimits {
    fn to_image_limits(self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

/// Reads and decodes an image file into 8-bit RGB.
pub fn decode_file(path: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_bytes(&bytes, path, limits)
}

/// Decodes an encoded image held in memory. `name` is used in error messages (a path, or a
/// description such as `stdin frame 12`). The format is recognised from the content; the file
/// extension is only a fallback for formats without a signature (TGA). The EXIF orientation of
/// JPEG, PNG, WebP and TIFF files is applied, so a phone photo comes out upright whichever way
/// the phone was held. A JPEG cut short is refused unless `limits.allow_truncated`.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: DecodeLimits) -> Result<RgbImage> {
    let decode_err = |reason: String| Error::Decode {
        path: name.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(e.to_string()))?;
    if reader.format().is_none() {
        match image::ImageFormat::from_path(name) {
            Ok(format) if format == image::ImageFormat::Tga => reader.set_format(format),
            _ if crate::source::has_unsupported_image_extension(name) => {
                return Err(decode_err(format!(
                    "{} photos cannot be decoded by glance; convert them to JPEG first \
                     (for example with heif-convert or ImageMagick)",
                    name.extension()
                        .map(|e| e.to_string_lossy().to_ascii_uppercase())
                        .unwrap_or_default()
                )))
            }
            _ => {
                return Err(decode_err(
                    "not a recognised image format (no PNG, JPEG, GIF, BMP, TIFF, WebP, PNM, \
                     ICO, QOI or HDR signature)"
                        .into(),
                ))
            }
        }
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !limits.allow_truncated {
        if let Some(why) = jpeg_truncation(bytes) {
            return Err(Error::Decode {
                path: name.to_path_buf(),
                reason: format!("truncated JPEG: {why} (--allow-truncated decodes it anyway)"),
            });
        }
    }
    reader.limits(limits.to_image_limits());
    let too_large = |limit: String| Error::ImageTooLarge {
        path: name.to_path_buf(),
        reason: format!(
            "{limit} (limits: {} px per side, {} MiB)",
            limits.max_side,
            limits.max_alloc / (1024 * 1024)
        ),
    };
    if reader.format() == Some(image::ImageFormat::OpenExr) {
        if let Some(need) = exr_declared_bytes(bytes).filter(|&n| n > limits.max_alloc) {
            return Err(too_large(format!(
                "its OpenEXR header declares tiles or chunk tables of {} MiB",
                need / (1024 * 1024)
            )));
        }
    }
    let map_err = |e: image::ImageError| match e {
        image::ImageError::Limits(limit) => too_large(limit.to_string()),
        other => decode_err(other.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(map_err)?;
    // `into_decoder` checks the dimensions against the limits; the whole decode is checked
    // here against the budget: the decoder's buffer and, unless it is RGB already, the RGB copy
    // `to_rgb` makes (a 16000² grey JPEG is 244 MiB decoded, 732 MiB more as RGB).
    let total = image::ImageDecoder::total_bytes(&decoder);
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let rgb_copy = if image::ImageDecoder::color_type(&decoder) == image::ColorType::Rgb8 {
        0
    } else {
        u64::from(w) * u64::from(h) * 3
    };
    let need = total.saturating_add(rgb_copy);
    if need > limits.max_alloc {
        return Err(too_large(format!(
            "decoding {w}×{h} pixels needs {} MiB",
            need / (1024 * 1024)
        )));
    }
    // An unreadable orientation tag is treated as upright: the pixels are still good.
    let orientation = image::ImageDecoder::orientation(&mut decoder)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(map_err)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(decode_err(
            "the image has no pixels (0 wide or high)".into(),
        ));
    }
    Ok(to_rgb(image))
}

/// The most memory an OpenEXR file's headers make the `exr` decoder allocate before it reads
/// any pixel: a tile buffer of the declared tile size per part (whatever the data window: a
/// 1.3 KB file declaring 3,014,720 × 64 tiles made it allocate 2 GB) and the chunk offset
/// tables. `None` when the headers cannot be walked (the decoder then reports the error).
///
/// Layout (openexr.com, "OpenEXR File Layout"): magic `76 2F 31 01`, a version word (bit 12:
/// multi-part), then per part the attributes `name\0 type\0 size:i32 value`, ended by an
/// empty name; multi-part files end the list of parts with one more empty name.
pub fn exr_declared_bytes(bytes: &[u8]) -> Option<u64> {
    fn cstr<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let rest = b.get(*at..)?;
        let len = rest.iter().position(|&c| c == 0)?;
        *at += len + 1;
        Some(&rest[..len])
    }
    fn le32(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }
    if bytes.get(..4)? != [0x76, 0x2F, 0x31, 0x01] {
        return None;
    }
    let multipart = le32(bytes, 4)? & 0x1000 != 0;
    let mut at = 8usize;
    let mut total = 0u64;
    loop {
        let (mut channels, mut tile, mut chunks, mut window) = (0u64, None, None, None);
        loop {
            let name = cstr(bytes, &mut at)?;
            if name.is_empty() {
                break;
            }
            let _kind = cstr(bytes, &mut at)?;
            let size = le32(bytes, at)? as usize;
            at += 4;
            let value = bytes.get(at..at.checked_add(size)?)?;
            at += size;
            match name {
                b"channels" => {
                    // name\0 then 16 bytes per channel, ended by an empty name.
                    let mut c = 0usize;
                    while c < value.len() && value[c] != 0 {
                        c += value[c..].iter().position(|&x| x == 0)? + 1 + 16;
                        channels += 1;
                    }
                }
                b"tiles" if value.len() >= 9 => {
                    let level_factor = if value[8] & 0x0F == 0 { 1 } else { 4 };
                    tile = Some((
                        u64::from(le32(value, 0)?),
                        u64::from(le32(value, 4)?),
                        level_factor,
                    ));
                }
                b"chunkCount" if value.len() >= 4 => chunks = Some(u64::from(le32(value, 0)?)),
                b"dataWindow" if value.len() >= 16 => {
                    let i = |k| le32(value, k).map(|v| i64::from(v as i32));
                    window = Some(((i(8)? - i(0)? + 1).max(0), (i(12)? - i(4)? + 1).max(0)));
                }
                _ => {}
            }
        }
        // 4 bytes a sample (float and uint; half is 2), one tile buffer at a time.
        if let Some((tx, ty, levels)) = tile {
            total = total.saturating_add(tx.saturating_mul(ty).saturating_mul(channels.max(1) * 4));
            if let Some((w, h)) = window.filter(|_| tx > 0 && ty > 0) {
                let tiles = (w as u64)
                    .div_ceil(tx)
                    .saturating_mul((h as u64).div_ceil(ty));
                total = total.saturating_add(tiles.saturating_mul(8 * levels));
            }
        }
        if let Some(n) = chunks {
            total = total.saturating_add(n.saturating_mul(8));
        }
        if !multipart || bytes.get(at) == Some(&0) || at >= bytes.len() {
            return Some(total);
        }
    }
}

/// Why a JPEG is cut short, or `None` when it is whole: walks the marker segments to the
/// end-of-image marker (FF D9), stepping over each segment by its length (so the thumbnail's
/// markers inside an EXIF segment are not mistaken for the image's) and over entropy-coded
/// data byte by byte. Linear in the length. Bytes after the end-of-image marker are allowed
/// (some cameras append data there).
pub fn jpeg_truncation(bytes: &[u8]) -> Option<String> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Some("no start-of-image marker".into());
    }
    let n = bytes.len();
    let mut i = 2;
    let mut in_scan = false;
    let mut scans = 0usize;
    while i < n {
        if in_scan {
            // Entropy-coded data: FF 00 is a stuffed byte, FF D0..D7 a restart marker.
            if bytes[i] != 0xFF {
                i += 1;
                continue;
            }
            match bytes.get(i + 1) {
                None => break,
                Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => {
                    i += 1;
                    continue;
                }
                Some(_) => in_scan = false,
            }
        }
        if bytes[i] != 0xFF {
            return Some(format!("no marker at byte {i} where one should be"));
        }
        // Fill bytes (FF FF …) may precede a marker.
        while i + 1 < n && bytes[i + 1] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i + 1) else {
            break;
        };
        match marker {
            0xD9 => {
                return (scans == 0).then(|| "end-of-image marker before any image data".into());
            }
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                let Some(len) = bytes
                    .get(i + 2..i + 4)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                else {
                    break;
                };
                if len < 2 || i + 2 + len > n {
                    break;
                }
                i += 2 + len;
                if marker == 0xDA {
                    in_scan = true;
                    scans += 1;
                }
            }
        }
    }
    Some(format!(
        "the file ends after {n} bytes, before the end-of-image marker"
    ))
}

/// Converts any decoded image to 8-bit RGB. Grey becomes three equal planes; alpha is
/// composited over white, so transparent backgrounds look like paper rather than black.
pub fn to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            let v = (u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255;
            dst[c] = v as u8;
        }
    }
    out
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
        std::borrow::Cow::Owned(imageops::crop_imm(image, x, y, cw, ch).to_image())
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

/// Resize + normalise: a decoded RGB frame of any size to the backbone's input tensor.
pub fn tensor_from_image(image: &RgbImage, spec: &PreprocessSpec) -> Result<Vec<f32>> {
    normalize(&resize(image, spec), spec)
}

/// Raw-pixel features (the seed's baseline): the frame squashed to `size × size`, RGB planes,
/// values 0..1.
pub fn raw_pixels(image: &RgbImage, size: u32) -> Vec<f32> {
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
    use super::*;
    use image::{GrayImage, Rgb, Rgba, RgbaImage};

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
