//! Text tables and the HTML report of an evaluation.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::draw;
use super::metrics::Evaluation;
use super::workbench::Case;
use glance::preprocess::DecodeLimits;

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// The evaluation as text for a terminal.
pub fn text(e: &Evaluation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "examples        {} ({} unreadable)",
        e.examples, e.unreadable
    );
    let _ = writeln!(s, "accuracy        {}", pct(e.accuracy));
    let _ = writeln!(
        s,
        "macro P / R / F1 {:.4} / {:.4} / {:.4}",
        e.macro_precision, e.macro_recall, e.macro_f1
    );
    let _ = writeln!(s, "log-loss        {:.4}", e.log_loss);
    let _ = writeln!(s, "top-{} accuracy  {}", e.top_k, pct(e.top_k_accuracy));
    if let Some(k) = e.knn_accuracy {
        let _ = writeln!(s, "1-NN accuracy   {}", pct(k));
    }
    if let Some(a) = e.head_knn_agreement {
        let _ = writeln!(s, "head = 1-NN     {}", pct(a));
    }
    let _ = writeln!(s, "unknown         {}", pct(e.unknown_rate));
    let w = e
        .labels
        .iter()
        .map(|l| l.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 24);
    let _ = writeln!(
        s,
        "\nper class:\n{:<w$}  support  precision  recall     F1",
        "class"
    );
    for r in &e.per_class {
        let _ = writeln!(
            s,
            "{:<w$}  {:>7}  {:>9.4}  {:>6.4}  {:>6.4}",
            r.label, r.support, r.precision, r.recall, r.f1
        );
    }
    let _ = writeln!(
        s,
        "\nconfusion (rows = true class, columns = predicted, in label order):"
    );
    for (label, row) in e.labels.iter().zip(&e.confusion) {
        let cells: Vec<String> = row.iter().map(|n| format!("{n:>5}")).collect();
        let _ = writeln!(s, "{label:<w$} {}", cells.join(""));
    }
    if !e.retrieval.is_empty() {
        let _ = writeln!(
            s,
            "\ncategory-specific retrieval: mean distance from each class's test images to the \
             nearest stored example of every class; `own` = fraction whose own class is nearest"
        );
        let head: Vec<String> = (0..e.labels.len())
            .map(|j| format!("{:>7}", format!("→{j}")))
            .collect();
        let _ = writeln!(s, "{:<w$} {}     own", "", head.join(""));
        for (i, r) in e.retrieval.iter().enumerate() {
            let cells: Vec<String> = r
                .mean_distance
                .iter()
                .map(|d| d.map_or("      -".into(), |d| format!("{d:>7.3}")))
                .collect();
            let _ = writeln!(
                s,
                "{:<w$} {} {:>7}",
                format!("{i}:{}", r.label),
                cells.join(""),
                pct(r.own_class_nearest)
            );
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `DIR/index.html` with the confusion heat map and galleries of confidently-wrong and
/// hesitant test images.
pub fn html(e: &Evaluation, cases: &[Case], bundle_name: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("img"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    draw::confusion_png(&e.confusion, &dir.join("confusion.png"))?;
    let mut wrong: Vec<&Case> = cases.iter().filter(|c| c.truth != c.predicted).collect();
    wrong.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut hesitant: Vec<&Case> = cases.iter().collect();
    hesitant.sort_by(|a, b| a.margin.total_cmp(&b.margin));
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><meta charset=utf-8><title>glance eval: {b}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}\
         figure{{display:inline-block;margin:4px;font-size:11px;width:120px;vertical-align:top}}\
         figure img{{width:96px;height:96px;object-fit:contain;image-rendering:pixelated}}</style>\
         <h1>glance eval: {b}</h1><table>",
        b = esc(bundle_name)
    );
    let mut row = |k: &str, v: String| {
        let _ = write!(page, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    };
    row("examples", e.examples.to_string());
    row("accuracy", pct(e.accuracy));
    row("macro F1", format!("{:.4}", e.macro_f1));
    row("log-loss", format!("{:.4}", e.log_loss));
    row(&format!("top-{} accuracy", e.top_k), pct(e.top_k_accuracy));
    if let Some(k) = e.knn_accuracy {
        row("1-NN accuracy", pct(k));
    }
    if let Some(a) = e.head_knn_agreement {
        row("head = 1-NN", pct(a));
    }
    row("unknown rate", pct(e.unknown_rate));
    page.push_str("</table><h2>Confusion (rows = true, columns = predicted)</h2><img src=confusion.png><table><tr><th></th>");
    for (j, _) in e.labels.iter().enumerate() {
        let _ = write!(page, "<th>{j}</th>");
    }
    page.push_str("</tr>");
    for (i, r) in e.confusion.iter().enumerate() {
        let _ = write!(page, "<tr><th>{i}: {}</th>", esc(&e.labels[i]));
        for n in r {
            let _ = write!(page, "<td>{n}</td>");
        }
        page.push_str("</tr>");
    }
    page.push_str("</table><h2>Per class</h2><table><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>");
    for r in &e.per_class {
        let _ = write!(
            page,
            "<tr><th>{}</th><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            esc(&r.label),
            r.support,
            r.precision,
            r.recall,
            r.f1
        );
    }
    page.push_str("</table>");
    if !e.retrieval.is_empty() {
        page.push_str("<h2>Category-specific retrieval</h2><p>Mean distance from each class's test images to the nearest stored example of every class; own = fraction whose own class is nearest.</p><table><tr><th></th>");
        for l in &e.labels {
            let _ = write!(page, "<th>→ {}</th>", esc(l));
        }
        page.push_str("<th>own</th></tr>");
        for r in &e.retrieval {
            let _ = write!(page, "<tr><th>{}</th>", esc(&r.label));
            for d in &r.mean_distance {
                let _ = write!(
                    page,
                    "<td>{}</td>",
                    d.map_or("-".into(), |d| format!("{d:.3}"))
                );
            }
            let _ = write!(page, "<td>{}</td></tr>", pct(r.own_class_nearest));
        }
        page.push_str("</table>");
    }
    let mut n = 0usize;
    for (title, list) in [
        ("Confidently wrong", &wrong),
        ("Hesitant (smallest margin)", &hesitant),
    ] {
        let _ = write!(page, "<h2>{title}</h2>");
        for c in list.iter().take(24) {
            let file = format!("img/{n:03}.png");
            n += 1;
            let thumb = c
                .source
                .load(DecodeLimits::default())
                .ok()
                .map(|img| draw::thumbnail(&img));
            if let Some(t) = thumb {
                t.save(dir.join(&file))
                    .with_context(|| format!("{}: cannot write", file))?;
            }
            let _ = write!(
                page,
                "<figure><img src=\"{file}\" alt=\"\"><figcaption>true {}<br>said {} {:.0}%<br>{}</figcaption></figure>",
                esc(&e.labels[c.truth]),
                esc(&e.labels[c.predicted]),
                c.score * 100.0,
                esc(Path::new(&c.source.name()).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default().as_str())
            );
        }
    }
    std::fs::write(dir.join("index.html"), page)
        .with_context(|| format!("{}: cannot write index.html", dir.display()))?;
    Ok(())
}
