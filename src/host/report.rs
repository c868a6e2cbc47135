//! Text tables and the HTML report of an evaluation.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::draw;
use super::metrics::Evaluation;
use super::openset::{OpenSet, SweepRow};
use super::workbench::Case;
use crate::preprocess::DecodeLimits;

fn opt4(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// The evaluation as text for a terminal.
pub(super) fn text(e: &Evaluation) -> String {
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
    let _ = writeln!(
        s,
        "calibration     ECE {:.4} (mean gap between confidence and accuracy)",
        e.expected_calibration_error
    );
    if let Some(o) = &e.open_set {
        let _ = writeln!(
            s,
            "\nopen set: {} images of no class ({} unreadable)",
            o.unknown_examples, o.unknown_unreadable
        );
        let _ = writeln!(
            s,
            "  AUROC           {} (the bundle's rule; confidence alone {}{})",
            opt4(o.auroc),
            opt4(o.auroc_score),
            o.auroc_distance
                .map_or(String::new(), |d| format!(", distance alone {d:.4}"))
        );
        let _ = writeln!(
            s,
            "  at the bundle's thresholds: unknowns rejected {}, known images rejected {}, \
             known accepted and right {}",
            pct(o.unknown_rejected),
            pct(o.known_rejected),
            pct(o.known_accepted_correct)
        );
    }
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

fn file_caption(c: &Case) -> String {
    draw::short_name(&c.source.name())
}

/// Writes `DIR/index.html` with the confusion heat map (each cell links to a gallery of its
/// images), the open-set curve and galleries of confidently-wrong, hesitant and accepted
/// unknown images.
pub(super) fn html(
    e: &Evaluation,
    cases: &[Case],
    unknown: &[Case],
    bundle_name: &str,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir.join("img"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    draw::confusion_png(&e.confusion, &e.labels, &dir.join("confusion.png"))?;
    let label = |i: usize| e.labels.get(i).map_or("(none)", String::as_str);
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
         td a{{display:block;text-decoration:none}}\
         figure{{display:inline-block;margin:4px;font-size:11px;width:120px;vertical-align:top}}\
         figure img{{width:96px;height:96px;object-fit:contain;image-rendering:pixelated}}\
         section.cell{{display:none}}section.cell:target{{display:block}}</style>\
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
    row(
        "expected calibration error",
        format!("{:.4}", e.expected_calibration_error),
    );
    page.push_str("</table><h2>Confusion (rows = true, columns = predicted)</h2><p>Click a count to see its images.</p><img src=confusion.png alt=\"confusion heat map\"><table><tr><th></th>");
    for (j, _) in e.labels.iter().enumerate() {
        let _ = write!(page, "<th>{j}</th>");
    }
    page.push_str("</tr>");
    for (i, r) in e.confusion.iter().enumerate() {
        let _ = write!(page, "<tr><th>{i}: {}</th>", esc(label(i)));
        for (j, n) in r.iter().enumerate() {
            if *n > 0 {
                let _ = write!(page, "<td><a href=\"#cell-{i}-{j}\">{n}</a></td>");
            } else {
                page.push_str("<td>0</td>");
            }
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
    let mut n = 0usize;
    let mut figure = |page: &mut String, c: &Case, lines: &[String]| -> Result<()> {
        let file = format!("img/{n:04}.png");
        n += 1;
        let thumb = c
            .source
            .load(DecodeLimits::default())
            .ok()
            .map(|img| draw::thumbnail(&img));
        if let Some(t) = thumb {
            t.save(dir.join(&file))
                .with_context(|| format!("{file}: cannot write"))?;
        }
        let caption: Vec<String> = lines.iter().map(|l| esc(l)).collect();
        let _ = write!(
            page,
            "<figure><img src=\"{file}\" alt=\"\"><figcaption>{}</figcaption></figure>",
            caption.join("<br>")
        );
        Ok(())
    };
    // One gallery per non-empty confusion cell, shown when its count is clicked.
    for (i, r) in e.confusion.iter().enumerate() {
        for (j, &count) in r.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let _ = write!(
                page,
                "<section class=cell id=\"cell-{i}-{j}\"><h3>true {} → predicted {} ({count}{})</h3>",
                esc(label(i)),
                esc(label(j)),
                if count > 48 { ", first 48" } else { "" }
            );
            for c in cases
                .iter()
                .filter(|c| c.truth == i && c.predicted == j)
                .take(48)
            {
                let status = match c.rejection {
                    Some(r) => format!("unknown: {}", r.code()),
                    None => "accepted".into(),
                };
                figure(
                    &mut page,
                    c,
                    &[format!("{:.0}% {status}", c.score * 100.0), file_caption(c)],
                )?;
            }
            page.push_str("</section>");
        }
    }
    page.push_str("<h2>Per class</h2><table><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>");
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
    if let Some(o) = &e.open_set {
        open_set_section(&mut page, o, dir)?;
    }
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
    let mut accepted_unknown: Vec<&Case> =
        unknown.iter().filter(|c| c.rejection.is_none()).collect();
    accepted_unknown.sort_by(|a, b| b.score.total_cmp(&a.score));
    let galleries: [(&str, &Vec<&Case>); 3] = [
        ("Confidently wrong", &wrong),
        ("Hesitant (smallest margin)", &hesitant),
        ("Images of no class that were accepted", &accepted_unknown),
    ];
    for (title, list) in galleries {
        if list.is_empty() {
            continue;
        }
        let _ = write!(page, "<h2>{title}</h2>");
        for c in list.iter().take(24) {
            let truth = if c.truth == usize::MAX {
                "no class".to_string()
            } else {
                format!("true {}", label(c.truth))
            };
            figure(
                &mut page,
                c,
                &[
                    truth,
                    format!("said {} {:.0}%", label(c.predicted), c.score * 100.0),
                    file_caption(c),
                ],
            )?;
        }
    }
    std::fs::write(dir.join("index.html"), page)
        .with_context(|| format!("{}: cannot write index.html", dir.display()))?;
    Ok(())
}

/// The open-set figures, their curve (`open-set.png`) and the sweep tables.
fn open_set_section(page: &mut String, o: &OpenSet, dir: &Path) -> Result<()> {
    let series = |rows: &[SweepRow]| {
        vec![
            draw::Series {
                name: "known accepted",
                colour: image::Rgb([31, 119, 180]),
                points: rows
                    .iter()
                    .map(|r| (r.threshold, r.known_accepted))
                    .collect(),
            },
            draw::Series {
                name: "known accepted and right",
                colour: image::Rgb([44, 160, 44]),
                points: rows
                    .iter()
                    .map(|r| (r.threshold, r.known_accepted_correct))
                    .collect(),
            },
            draw::Series {
                name: "unknown rejected",
                colour: image::Rgb([214, 39, 40]),
                points: rows
                    .iter()
                    .map(|r| (r.threshold, r.unknown_rejected))
                    .collect(),
            },
        ]
    };
    let mut panels = Vec::new();
    if !o.distance_sweep.is_empty() {
        panels.push((
            "One distance threshold for all classes (scores as in the bundle)".into(),
            "largest distance to the nearest example".into(),
            series(&o.distance_sweep),
        ));
    }
    panels.push((
        "One score threshold for all classes (distances as in the bundle)".into(),
        "least head probability".into(),
        series(&o.score_sweep),
    ));
    draw::curves_png(&panels, 1.0, &dir.join("open-set.png"))?;
    let _ = write!(
        page,
        "<h2>Open set: {} images of no class</h2><table>\
         <tr><th>AUROC (the bundle's rule)</th><td>{}</td></tr>\
         <tr><th>AUROC (confidence alone)</th><td>{}</td></tr>{}\
         <tr><th>unknowns rejected at the bundle's thresholds</th><td>{}</td></tr>\
         <tr><th>known images rejected</th><td>{}</td></tr>\
         <tr><th>known accepted and right</th><td>{}</td></tr></table>\
         <p><img src=open-set.png alt=\"open-set curves\"></p>",
        o.unknown_examples,
        opt4(o.auroc),
        opt4(o.auroc_score),
        o.auroc_distance.map_or(String::new(), |d| format!(
            "<tr><th>AUROC (distance alone)</th><td>{d:.4}</td></tr>"
        )),
        pct(o.unknown_rejected),
        pct(o.known_rejected),
        pct(o.known_accepted_correct)
    );
    for (title, rows) in [
        ("distance threshold", &o.distance_sweep),
        ("score threshold", &o.score_sweep),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            page,
            "<h3>Sweep of one {title} (pass it as --max-distance or --min-score)</h3><table>\
             <tr><th>{title}</th><th>known accepted</th><th>known accepted and right</th>\
             <th>unknown rejected</th></tr>"
        );
        for r in rows.iter().step_by(2) {
            let _ = write!(
                page,
                "<tr><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.threshold,
                pct(r.known_accepted),
                pct(r.known_accepted_correct),
                pct(r.unknown_rejected)
            );
        }
        page.push_str("</table>");
    }
    Ok(())
}
/// One CSV row per evaluated image: `path, true_label, predicted_label, score, nn_label,
/// nn_distance, unknown, reject_reason` (`predicted_label` is the head's class; `unknown` says
/// whether the thresholds rejected it).
/// Images of no class (`eval --unknown`) have an empty true label.
pub(super) fn predictions_csv(labels: &[String], cases: &[&Case], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    let name = |i: usize| labels.get(i).cloned().unwrap_or_default();
    w.write_record([
        "path",
        "true_label",
        "predicted_label",
        "score",
        "nn_label",
        "nn_distance",
        "unknown",
        "reject_reason",
    ])?;
    for c in cases {
        let (nn_label, nn_distance) = c.knn.map_or((String::new(), String::new()), |(k, d)| {
            (name(k), format!("{d:.6}"))
        });
        w.write_record([
            c.source.name(),
            name(c.truth),
            name(c.predicted),
            format!("{:.6}", c.score),
            nn_label,
            nn_distance,
            c.rejection.is_some().to_string(),
            c.rejection.map_or(String::new(), |r| r.code().to_string()),
        ])?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}
