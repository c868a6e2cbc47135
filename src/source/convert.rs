//! Camera pixel formats to what the decoder and preprocessing take: YUYV, UYVY, NV12 and YU12
//! to RGB, and MJPEG frames without Huffman tables to complete JPEG files.

use image::RgbImage;

use crate::error::{Error, Result};

/// An uncompressed camera pixel format glance converts to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed 4:2:2, `Y0 U Y1 V` per two pixels (UVC webcams).
    Yuyv,
    /// Packed 4:2:2, `U Y0 V Y1` (some CSI bridges and capture cards).
    Uyvy,
    /// 4:2:0, a Y plane then one plane of interleaved `U V` at half size (Raspberry Pi's
    /// V4L2 drivers, many SoC cameras).
    Nv12,
    /// 4:2:0, a Y plane then a U and a V plane at half size (I420; `YU12` in V4L2).
    Yu12,
}

impl RawFormat {
    /// The V4L2 four-character code.
    pub fn fourcc(self) -> u32 {
        use super::v4l2::fourcc;
        match self {
            Self::Yuyv => fourcc(b"YUYV"),
            Self::Uyvy => fourcc(b"UYVY"),
            Self::Nv12 => fourcc(b"NV12"),
            Self::Yu12 => fourcc(b"YU12"),
        }
    }

    /// The format with this four-character code, if glance converts it.
    pub fn from_fourcc(code: u32) -> Option<Self> {
        [Self::Yuyv, Self::Uyvy, Self::Nv12, Self::Yu12]
            .into_iter()
            .find(|f| f.fourcc() == code)
    }

    /// ffmpeg's name for it (`-pix_fmt`).
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Self::Yuyv => "yuyv422",
            Self::Uyvy => "uyvy422",
            Self::Nv12 => "nv12",
            Self::Yu12 => "yuv420p",
        }
    }

    /// Bytes a `width`×`height` frame with `stride` bytes per (luma or packed) row needs, or
    /// `None` when the geometry is impossible (odd width, a stride too short for the width).
    /// In u64: on a 32-bit board a lying driver's geometry could wrap a usize.
    pub fn frame_len(self, width: u32, height: u32, stride: u32) -> Option<u64> {
        let (w, h, s) = (u64::from(width), u64::from(height), u64::from(stride));
        if w == 0 || h == 0 || w % 2 != 0 {
            return None;
        }
        let chroma_rows = h.div_ceil(2);
        match self {
            Self::Yuyv | Self::Uyvy => (s >= 2 * w).then(|| s * (h - 1) + 2 * w),
            // The chroma plane(s) follow the luma plane at the same stride (NV12) or half of
            // it (YU12), as V4L2's single-planar formats lay them out.
            Self::Nv12 => (s >= w).then(|| s * h + s * (chroma_rows - 1) + w),
            Self::Yu12 => (s >= w && s % 2 == 0)
                .then(|| s * h + (s / 2) * chroma_rows + (s / 2) * (chroma_rows - 1) + w / 2),
        }
    }
}

/// Converts one YUV sample to RGB: BT.601 limited range in 16.16 fixed point, the coefficients
/// ffmpeg's converters use, so glance's pixels match `ffmpeg -pix_fmt rgb24`'s.
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let (u, v) = (i32::from(u) - 128, i32::from(v) - 128);
    let yy = 76_309 * (i32::from(y) - 16) + 32_768;
    [
        clamp8((yy + 104_597 * v) >> 16),
        clamp8((yy - 25_675 * u - 53_279 * v) >> 16),
        clamp8((yy + 132_201 * u) >> 16),
    ]
}

/// A raw camera frame (`format`, `width`×`height`, `stride` bytes per luma or packed row) to
/// RGB. Chroma is taken for each 2×1 (4:2:2) or 2×2 (4:2:0) block of pixels, as ffmpeg's
/// unscaled converters do. A buffer too short for the geometry is refused.
pub fn raw_to_rgb(
    format: RawFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<RgbImage> {
    let need = format.frame_len(width, height, stride);
    if need.is_none_or(|n| (data.len() as u64) < n) {
        return Err(Error::Decode {
            path: format!("<{} frame>", format.ffmpeg_name()).into(),
            reason: format!(
                "{} bytes cannot hold a {width}×{height} {} frame with stride {stride}",
                data.len(),
                format.ffmpeg_name()
            ),
            source: None,
        });
    }
    let (w, h, s) = (width as usize, height as usize, stride as usize);
    let mut out = vec![0u8; w * h * 3];
    match format {
        RawFormat::Yuyv | RawFormat::Uyvy => {
            // Offsets of Y0, U, Y1, V in each 4-byte group.
            let (y0, u, y1, v) = if format == RawFormat::Yuyv {
                (0, 1, 2, 3)
            } else {
                (1, 0, 3, 2)
            };
            for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let src = &data[row * s..row * s + 2 * w];
                for (px, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                    d[..3].copy_from_slice(&yuv_to_rgb(px[y0], px[u], px[v]));
                    d[3..].copy_from_slice(&yuv_to_rgb(px[y1], px[u], px[v]));
                }
            }
        }
        RawFormat::Nv12 | RawFormat::Yu12 => {
            let luma = s * h;
            for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
                let ys = &data[row * s..row * s + w];
                let crow = row / 2;
                for (x, d) in dst.chunks_exact_mut(3).enumerate() {
                    let (u, v) = if format == RawFormat::Nv12 {
                        let at = luma + crow * s + (x / 2) * 2;
                        (data[at], data[at + 1])
                    } else {
                        let cs = s / 2;
                        let planes = h.div_ceil(2) * cs;
                        let at = crow * cs + x / 2;
                        (data[luma + at], data[luma + planes + at])
                    };
                    d.copy_from_slice(&yuv_to_rgb(ys[x], u, v));
                }
            }
        }
    }
    RgbImage::from_raw(width, height, out).ok_or_else(|| Error::Decode {
        path: "<raw frame>".into(),
        reason: "buffer size mismatch".into(),
        source: None,
    })
}

/// YUYV 4:2:2 (`Y0 U Y1 V` per two pixels, BT.601 limited range, what UVC cameras send) to RGB.
/// `stride` is the bytes per row (at least `2 × width`).
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32, stride: u32) -> Result<RgbImage> {
    raw_to_rgb(RawFormat::Yuyv, data, width, height, stride)
}

fn clamp8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// The JPEG standard's example Huffman tables (ITU T.81 Annex K.3) as one DHT segment: what
/// MJPEG cameras leave out of every frame and decoders are expected to assume.
const STANDARD_DHT: &[u8] = &{
    const DC_L_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_C_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_L_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_C_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const LEN: usize = 2 + 4 * 17 + 12 + 12 + 162 + 162;
    let mut out = [0u8; 2 + LEN];
    out[0] = 0xFF;
    out[1] = 0xC4;
    out[2] = (LEN >> 8) as u8;
    out[3] = (LEN & 0xFF) as u8;
    let mut at = 4;
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_L_BITS, &DC_VALS),
        (0x10, &AC_L_BITS, &AC_LUMA_VALS),
        (0x01, &DC_C_BITS, &DC_VALS),
        (0x11, &AC_C_BITS, &AC_CHROMA_VALS),
    ];
    let mut t = 0;
    while t < 4 {
        let (class_id, bits, vals) = tables[t];
        out[at] = class_id;
        at += 1;
        let mut i = 0;
        while i < 16 {
            out[at] = bits[i];
            at += 1;
            i += 1;
        }
        let mut i = 0;
        while i < vals.len() {
            out[at] = vals[i];
            at += 1;
            i += 1;
        }
        t += 1;
    }
    out
};

#[rustfmt::skip]
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

#[rustfmt::skip]
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// An MJPEG frame as a complete JPEG: when no Huffman table (DHT) precedes the first scan, the
/// standard tables are inserted before it. Frames that carry tables come back unchanged.
pub fn mjpeg_to_jpeg(frame: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if frame.len() < 4 || frame[0] != 0xFF || frame[1] != 0xD8 {
        return Cow::Borrowed(frame);
    }
    let mut p = 2;
    while p + 3 < frame.len() {
        if frame[p] != 0xFF {
            return Cow::Borrowed(frame); // not a marker; let the decoder complain
        }
        let code = frame[p + 1];
        match code {
            0xC4 => return Cow::Borrowed(frame),
            0xDA => {
                let mut out = Vec::with_capacity(frame.len() + STANDARD_DHT.len());
                out.extend_from_slice(&frame[..p]);
                out.extend_from_slice(STANDARD_DHT);
                out.extend_from_slice(&frame[p..]);
                return Cow::Owned(out);
            }
            0xFF => p += 1,
            0x01 | 0xD0..=0xD7 => p += 2,
            _ => p += 2 + usize::from(u16::from_be_bytes([frame[p + 2], frame[p + 3]])),
        }
    }
    Cow::Borrowed(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_have_the_counts_their_bits_promise() {
        let len = usize::from(u16::from_be_bytes([STANDARD_DHT[2], STANDARD_DHT[3]]));
        assert_eq!(len + 2, STANDARD_DHT.len());
        let mut at = 4;
        for _ in 0..4 {
            let n: usize = STANDARD_DHT[at + 1..at + 17]
                .iter()
                .map(|&b| usize::from(b))
                .sum();
            at += 17 + n;
        }
        assert_eq!(at, STANDARD_DHT.len());
    }

    #[test]
    fn grey_and_primary_colours_convert() {
        // Y=235 U=V=128 is white; Y=16 black; a limited-range pure red is Y=81 U=90 V=240.
        let frame = [235, 128, 16, 128, 81, 90, 81, 240];
        let img = yuyv_to_rgb(&frame, 4, 1, 8).unwrap();
        let px: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert_eq!(px[0], [255, 255, 255]);
        assert_eq!(px[1], [0, 0, 0]);
        assert!(
            px[2][0] >= 250 && px[2][1] <= 5 && px[2][2] <= 5,
            "{:?}",
            px[2]
        );
        assert!(yuyv_to_rgb(&frame, 4, 2, 8).is_err());
        assert!(yuyv_to_rgb(&frame, 3, 1, 8).is_err());
    }

    #[test]
    fn every_layout_puts_each_sample_where_v4l2_does() {
        // A 4×2 image: left half white (Y=235), right half limited-range red (Y=81 U=90 V=240),
        // in each layout by hand, with 2 bytes of row padding to catch stride mistakes.
        let (white, red) = ([255, 255, 255], [255, 0, 0]);
        let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 5);
        let yuyv_row = [235, 128, 235, 128, 81, 90, 81, 240, 0, 0];
        let uyvy_row = [128, 235, 128, 235, 90, 81, 240, 81, 0, 0];
        let nv12: Vec<u8> = [
            &[235, 235, 81, 81, 0, 0][..],
            &[235, 235, 81, 81, 0, 0],
            &[128, 128, 90, 240, 0, 0],
        ]
        .concat();
        // YU12: luma stride 6, chroma stride 3.
        let yu12: Vec<u8> = [
            &[235, 235, 81, 81, 0, 0][..],
            &[235, 235, 81, 81, 0, 0],
            &[128, 90, 0],
            &[128, 240, 0],
        ]
        .concat();
        for (format, data, stride) in [
            (RawFormat::Yuyv, [yuyv_row, yuyv_row].concat(), 10),
            (RawFormat::Uyvy, [uyvy_row, uyvy_row].concat(), 10),
            (RawFormat::Nv12, nv12, 6),
            (RawFormat::Yu12, yu12, 6),
        ] {
            let img = raw_to_rgb(format, &data, 4, 2, stride).unwrap();
            for y in 0..2 {
                for x in 0..4 {
                    let want = if x < 2 { white } else { red };
                    let got = img.get_pixel(x, y).0;
                    assert!(close(got, want), "{format:?} ({x},{y}): {got:?}");
                }
            }
            let need = format.frame_len(4, 2, stride).unwrap() as usize;
            assert!(
                raw_to_rgb(format, &data[..need], 4, 2, stride).is_ok(),
                "{format:?}"
            );
            assert!(
                raw_to_rgb(format, &data[..need - 1], 4, 2, stride).is_err(),
                "{format:?}"
            );
            assert_eq!(RawFormat::from_fourcc(format.fourcc()), Some(format));
        }
    }
}
