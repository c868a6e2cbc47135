//! Bytes → RGB: decoding any format the `image` crate reads, within limits that refuse
//! decompression bombs and absurd headers before pixel memory is allocated, and conversion to
//! 8-bit RGB.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

use super::{DEFAULT_MAX_ALLOC, DEFAULT_MAX_SIDE};

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
        source: None,
    };
    // The decoder's own error, kept whole as the source.
    let decoder_err = |e: crate::error::Cause| Error::Decode {
        path: name.to_path_buf(),
        reason: String::new(),
        source: Some(e),
    };
    if bytes.is_empty() {
        return Err(decode_err("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decoder_err(e.into()))?;
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
                source: None,
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
        other => decoder_err(other.into()),
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
/// data from one FF byte to the next. Linear in the length. Bytes after the end-of-image marker
/// are allowed (some cameras append data there).
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
            // Entropy-coded data: FF 00 is a stuffed byte, FF D0..D7 a restart marker. Only an
            // FF can start either, so the data between them is skipped by `memchr`'s vector
            // search rather than a byte at a time.
            match memchr::memchr(0xFF, &bytes[i..]) {
                Some(ff) => i += ff,
                None => break,
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
pub(crate) fn to_rgb(image: DynamicImage) -> RgbImage {
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
