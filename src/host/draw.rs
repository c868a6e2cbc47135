//! PNG pictures for people: captioned contact sheets, confusion heat maps with names and counts,
//! and threshold curves, with text in an 8x8 bitmap font.

use std::path::Path;

use anyhow::{Context, Result};
use image::{imageops, Rgb, RgbImage};

/// Thumbnail side in pixels.
pub(super) const THUMB: u32 = 64;
const GAP: u32 = 4;

/// The last two parts of a path (`class/file.png`, or `file.idx#12`): enough to tell apart
/// files of the same name in different class folders.
pub(super) fn short_name(path: &str) -> String {
    let parts: Vec<&str> = path.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// Height of one line of text at scale 1 (the 8×8 font plus spacing).
const LINE: u32 = 10;

/// Draws `text` with its top-left corner at (`x`, `y`), `scale` pixels per font pixel, clipped
/// to the image. Non-ASCII characters are drawn as `?`.
pub(super) fn draw_text(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    colour: Rgb<u8>,
    scale: u32,
) {
    let s = i64::from(scale.max(1));
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let ox = x + i as i64 * 8 * s;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let (px, py) = (ox + col * s + dx, y + row as i64 * s + dy);
                        if px >= 0
                            && py >= 0
                            && px < i64::from(img.width())
                            && py < i64::from(img.height())
                        {
                            img.put_pixel(px as u32, py as u32, colour);
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` at `scale`.
pub(super) fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale.max(1)
}

/// `text` cut to at most `max` characters (an ellipsis `~` marks the cut).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('~');
    s
}

/// `text` cut to its last `max` characters (a path's file name matters most).
fn clip_tail(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(n - max.saturating_sub(1)).collect();
    format!("~{tail}")
}

/// One picture of a contact sheet with the lines of its caption.
pub(super) struct Captioned {
    /// The picture (`None`: unreadable, drawn as a red cross).
    pub image: Option<RgbImage>,
    /// Caption lines (each clipped to the thumbnail's width).
    pub caption: Vec<String>,
}

/// Thumbnail side of captioned sheets.
const SHEET_THUMB: u32 = 96;
/// Characters of a caption line (the cell is this wide).
const CAPTION_CHARS: u32 = 15;

/// Lays out titled rows of captioned pictures as a grid and writes it as PNG: each row starts
/// with its title, each picture has its caption lines under it.
pub(super) fn captioned_sheet(rows: &[(String, Vec<Captioned>)], out: &Path) -> Result<()> {
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(1) as u32;
    let lines = rows
        .iter()
        .flat_map(|r| r.1.iter().map(|c| c.caption.len()))
        .max()
        .unwrap_or(0) as u32;
    let title_w = rows
        .iter()
        .map(|r| text_width(&clip(&r.0, 16), 1))
        .max()
        .unwrap_or(0)
        + GAP * 2;
    let cell_w = CAPTION_CHARS * 8 + 2 * GAP;
    let cell_h = SHEET_THUMB + lines * LINE + GAP * 2;
    let w = title_w + GAP + cols * cell_w;
    let h = GAP + rows.len().max(1) as u32 * cell_h;
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let max_chars = CAPTION_CHARS as usize;
    for (r, (title, row)) in rows.iter().enumerate() {
        let y = GAP + r as u32 * cell_h;
        draw_text(
            &mut sheet,
            i64::from(GAP),
            i64::from(y + SHEET_THUMB / 2 - 4),
            &clip(title, 16),
            Rgb([0, 0, 0]),
            1,
        );
        for (c, item) in row.iter().enumerate() {
            let cx = title_w + GAP + c as u32 * cell_w;
            let x = cx + (cell_w - SHEET_THUMB) / 2;
            match &item.image {
                Some(img) => {
                    let t = fit_into(img, SHEET_THUMB);
                    let ox = (SHEET_THUMB - t.width()) / 2;
                    let oy = (SHEET_THUMB - t.height()) / 2;
                    imageops::replace(&mut sheet, &t, i64::from(x + ox), i64::from(y + oy));
                }
                None => cross(&mut sheet, x, y, SHEET_THUMB),
            }
            for (l, line) in item.caption.iter().enumerate() {
                draw_text(
                    &mut sheet,
                    i64::from(cx),
                    i64::from(y + SHEET_THUMB + GAP + l as u32 * LINE),
                    &if line.contains('/') {
                        clip_tail(line, max_chars)
                    } else {
                        clip(line, max_chars)
                    },
                    Rgb([30, 30, 30]),
                    1,
                );
            }
        }
    }
    sheet
        .save(out)
        .with_context(|| format!("{}: cannot write PNG", out.display()))
}

fn cross(img: &mut RgbImage, x: u32, y: u32, side: u32) {
    for i in 0..side {
        img.put_pixel(x + i, y + i, Rgb([220, 0, 0]));
        img.put_pixel(x + side - 1 - i, y + i, Rgb([220, 0, 0]));
    }
}

/// Scales an image to fit in `side × side`.
fn fit_into(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = f64::from(side) / f64::from(w.max(h).max(1));
    let (tw, th) = (
        ((f64::from(w) * s).round() as u32).clamp(1, side),
        ((f64::from(h) * s).round() as u32).clamp(1, side),
    );
    imageops::resize(img, tw, th, imageops::FilterType::Triangle)
}

/// Scales an image to fit in `THUMB × THUMB`.
pub(super) fn thumbnail(img: &RgbImage) -> RgbImage {
    fit_into(img, THUMB)
}

/// A confusion matrix as a heat map with the class names and counts: row = true class (named
/// on the left), column = predicted (numbered on top, the numbers of the row names), colour =
/// fraction of the row (white 0 → dark blue 1), the count in each cell, the diagonal outlined
/// in green.
pub(super) fn confusion_png(confusion: &[Vec<usize>], labels: &[String], out: &Path) -> Result<()> {
    let c = confusion.len().max(1) as u32;
    let max_count = confusion.iter().flatten().copied().max().unwrap_or(0);
    let digits = max_count.to_string().len() as u32;
    let cell = (digits * 8 + 10).max(28).max((480 / c).min(48));
    let names: Vec<String> = (0..c as usize)
        .map(|i| {
            format!(
                "{i}: {}",
                clip(labels.get(i).map_or("", String::as_str), 20)
            )
        })
        .collect();
    let left = names.iter().map(|n| text_width(n, 1)).max().unwrap_or(0) + 2 * GAP;
    let title_h = 2 * LINE + GAP;
    let top = title_h + LINE + GAP;
    let w = (left + c * cell + GAP).max(text_width("predicted class (columns) ->", 1) + left);
    let h = top + c * cell + GAP + LINE;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let black = Rgb([0, 0, 0]);
    draw_text(
        &mut img,
        i64::from(GAP),
        i64::from(GAP),
        "true class (rows)",
        black,
        1,
    );
    draw_text(
        &mut img,
        i64::from(left),
        i64::from(GAP + LINE),
        "predicted class (columns) ->",
        black,
        1,
    );
    for j in 0..c {
        let t = j.to_string();
        let x = left + j * cell + (cell - text_width(&t, 1)) / 2;
        draw_text(&mut img, i64::from(x), i64::from(title_h), &t, black, 1);
    }
    for (t, row) in confusion.iter().enumerate() {
        let y0 = top + t as u32 * cell;
        draw_text(
            &mut img,
            i64::from(GAP),
            i64::from(y0 + cell / 2 - 4),
            &names[t],
            black,
            1,
        );
        let total: usize = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let f = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            let shade = |full: f64| (255.0 - f * (255.0 - full)).round() as u8;
            let colour = Rgb([shade(8.0), shade(48.0), shade(107.0)]);
            let x0 = left + p as u32 * cell;
            for y in 0..cell {
                for x in 0..cell {
                    let edge = x == 0 || y == 0 || x == cell - 1 || y == cell - 1;
                    let px = if edge && t == p {
                        Rgb([0, 160, 0])
                    } else if edge {
                        Rgb([225, 225, 225])
                    } else {
                        colour
                    };
                    img.put_pixel(x0 + x, y0 + y, px);
                }
            }
            let label = n.to_string();
            let ink = if f > 0.5 { Rgb([255, 255, 255]) } else { black };
            draw_text(
                &mut img,
                i64::from(x0 + (cell - text_width(&label, 1)) / 2),
                i64::from(y0 + cell / 2 - 4),
                &label,
                ink,
                1,
            );
        }
    }
    img.save(out)
        .with_context(|| format!("{}: cannot write PNG", out.display()))
}

/// One line of a plot.
pub(super) struct Series<'a> {
    /// Its name in the legend.
    pub name: &'a str,
    /// Its colour.
    pub colour: Rgb<u8>,
    /// Points (x, y) with y in 0..=1.
    pub points: Vec<(f64, f64)>,
}

/// Line plots of fractions (y from 0 to 100 %) against a threshold (x from 0 to `x_max`), one
/// panel per `(title, x axis name, series)`, stacked, with axes, ticks and a legend; written as
/// PNG.
pub(super) fn curves_png(
    panels: &[(String, String, Vec<Series<'_>>)],
    x_max: f64,
    out: &Path,
) -> Result<()> {
    let (pw, ph) = (520u32, 260u32);
    let (left, right, top, bottom) = (48u32, 16u32, 2 * LINE + 2 * GAP, 3 * LINE);
    let panel_h = top + ph + bottom;
    let w = left + pw + right;
    let h = panels.len().max(1) as u32 * panel_h;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let black = Rgb([0, 0, 0]);
    let grid = Rgb([225, 225, 225]);
    for (k, (title, x_name, series)) in panels.iter().enumerate() {
        let y0 = k as u32 * panel_h;
        draw_text(
            &mut img,
            i64::from(GAP),
            i64::from(y0 + GAP),
            title,
            black,
            1,
        );
        let ox = left;
        let oy = y0 + top;
        let to_px = |x: f64, y: f64| -> (i64, i64) {
            (
                i64::from(ox) + (x.clamp(0.0, x_max) / x_max * f64::from(pw)).round() as i64,
                i64::from(oy + ph) - (y.clamp(0.0, 1.0) * f64::from(ph)).round() as i64,
            )
        };
        for i in 0..=10 {
            let (_, y) = to_px(0.0, f64::from(i) / 10.0);
            for x in 0..pw {
                img.put_pixel(ox + x, y as u32, grid);
            }
            if i % 2 == 0 {
                let t = format!("{}%", i * 10);
                draw_text(
                    &mut img,
                    i64::from(ox) - i64::from(text_width(&t, 1)) - 4,
                    y - 4,
                    &t,
                    black,
                    1,
                );
            }
            let (x, _) = to_px(x_max * f64::from(i) / 10.0, 0.0);
            for y in 0..ph {
                img.put_pixel(x as u32, oy + y, grid);
            }
            if i % 2 == 0 {
                let t = format!("{:.1}", x_max * f64::from(i) / 10.0);
                draw_text(
                    &mut img,
                    x - i64::from(text_width(&t, 1) / 2),
                    i64::from(oy + ph + 4),
                    &t,
                    black,
                    1,
                );
            }
        }
        for x in 0..=pw {
            img.put_pixel(ox + x.min(pw - 1), oy + ph, black);
        }
        for y in 0..ph {
            img.put_pixel(ox, oy + y, black);
        }
        draw_text(
            &mut img,
            i64::from(ox + pw / 2) - i64::from(text_width(x_name, 1) / 2),
            i64::from(oy + ph + 4 + LINE + 2),
            x_name,
            black,
            1,
        );
        let mut legend_x = i64::from(ox) + 8;
        for s in series {
            for pair in s.points.windows(2) {
                let (a, b) = (to_px(pair[0].0, pair[0].1), to_px(pair[1].0, pair[1].1));
                line(&mut img, a, b, s.colour);
            }
            let ly = i64::from(y0 + GAP + LINE + 2);
            for d in 0..16 {
                for t in 0..2 {
                    let (px, py) = (legend_x + d, ly + 3 + t);
                    if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                        img.put_pixel(px as u32, py as u32, s.colour);
                    }
                }
            }
            draw_text(&mut img, legend_x + 20, ly, s.name, black, 1);
            legend_x += 20 + i64::from(text_width(s.name, 1)) + 16;
        }
    }
    img.save(out)
        .with_context(|| format!("{}: cannot write PNG", out.display()))
}

/// A two-pixel line from `a` to `b` (clipped).
fn line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), colour: Rgb<u8>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).max(1);
    for i in 0..=steps {
        let x = a.0 + (b.0 - a.0) * i / steps;
        let y = a.1 + (b.1 - a.1) * i / steps;
        for (dx, dy) in [(0, 0), (0, 1), (1, 0)] {
            let (px, py) = (x + dx, y + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, colour);
            }
        }
    }
}
