//! PNG pictures for people: contact sheets of examples and confusion-matrix heat maps.

use std::path::Path;

use anyhow::{Context, Result};
use image::{imageops, Rgb, RgbImage};

/// Thumbnail side in pixels.
pub const THUMB: u32 = 64;
const GAP: u32 = 4;

/// Lays out rows of images as a grid of `THUMB`-pixel thumbnails (aspect kept, centred) and
/// writes it as PNG. Missing images (`None`) are drawn as a red cross.
pub fn contact_sheet(rows: &[Vec<Option<RgbImage>>], out: &Path) -> Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0).max(1) as u32;
    let w = GAP + cols * (THUMB + GAP);
    let h = GAP + rows.len().max(1) as u32 * (THUMB + GAP);
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let x = GAP + c as u32 * (THUMB + GAP);
            let y = GAP + r as u32 * (THUMB + GAP);
            match img {
                Some(img) => {
                    let t = thumbnail(img);
                    let ox = (THUMB - t.width()) / 2;
                    let oy = (THUMB - t.height()) / 2;
                    imageops::replace(&mut sheet, &t, i64::from(x + ox), i64::from(y + oy));
                }
                None => {
                    for i in 0..THUMB {
                        sheet.put_pixel(x + i, y + i, Rgb([220, 0, 0]));
                        sheet.put_pixel(x + THUMB - 1 - i, y + i, Rgb([220, 0, 0]));
                    }
                }
            }
        }
    }
    sheet
        .save(out)
        .with_context(|| format!("{}: cannot write PNG", out.display()))
}

/// Scales an image to fit in `THUMB × THUMB`.
pub fn thumbnail(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = f64::from(THUMB) / f64::from(w.max(h).max(1));
    let (tw, th) = (
        ((f64::from(w) * s).round() as u32).clamp(1, THUMB),
        ((f64::from(h) * s).round() as u32).clamp(1, THUMB),
    );
    imageops::resize(img, tw, th, imageops::FilterType::Triangle)
}

/// A confusion matrix as a heat map: row = true class, column = predicted, colour = fraction of
/// the row (white 0 → dark blue 1); the diagonal is outlined in green.
pub fn confusion_png(confusion: &[Vec<usize>], out: &Path) -> Result<()> {
    let c = confusion.len().max(1) as u32;
    let cell = (480 / c).clamp(8, 48);
    let mut img = RgbImage::from_pixel(c * cell, c * cell, Rgb([255, 255, 255]));
    for (t, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let f = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            let shade = |full: f64| (255.0 - f * (255.0 - full)).round() as u8;
            let colour = Rgb([shade(8.0), shade(48.0), shade(107.0)]);
            for y in 0..cell {
                for x in 0..cell {
                    let edge = x == 0 || y == 0 || x == cell - 1 || y == cell - 1;
                    let px = if edge && t == p {
                        Rgb([0, 160, 0])
                    } else {
                        colour
                    };
                    img.put_pixel(p as u32 * cell + x, t as u32 * cell + y, px);
                }
            }
        }
    }
    img.save(out)
        .with_context(|| format!("{}: cannot write PNG", out.display()))
}
