//! `inspect` and `extract`: what is in a dataset, and its deep features.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{report_failures, report_unsupported, ExtractJob, InspectJob};
use crate::host::dataset::Split;
use crate::preprocess::DecodeLimits;

/// An example index with its decoded size or the reason it could not be read.
type Probe = (usize, Result<(u32, u32), String>);

/// Counts per class and split, image sizes, unreadable files; optionally a contact sheet.
pub fn inspect(args: InspectJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let out = &mut io::stdout().lock();
    writeln!(
        out,
        "{}: {} ({} classes, {} images)",
        ds.root.display(),
        ds.kind,
        ds.classes.len(),
        ds.items.len()
    )?;
    if ds.split_generated {
        writeln!(
            out,
            "no test split in the data: {:.0}% held out with seed {}",
            ds.opened_with.test_fraction * 100.0,
            ds.opened_with.seed
        )?;
    }
    report_unsupported(out, &ds)?;
    let train = ds.counts(Split::Train);
    let test = ds.counts(Split::Test);
    let w = ds.classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    writeln!(out, "{:<w$}  {:>7}  {:>7}", "class", "train", "test")?;
    for (i, c) in ds.classes.iter().enumerate() {
        writeln!(out, "{c:<w$}  {:>7}  {:>7}", train[i], test[i])?;
    }
    writeln!(
        out,
        "{:<w$}  {:>7}  {:>7}",
        "total",
        train.iter().sum::<usize>(),
        test.iter().sum::<usize>()
    )?;
    // Decode everything (on all cores) to find unreadable files and the sizes.
    let n = ds.items.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Probe> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
            .map(|_| {
                s.spawn(|| {
                    let mut local = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let r = ds.items[i]
                            .source
                            .load(DecodeLimits::default())
                            .map(|img| img.dimensions());
                        local.push((i, r.map_err(|e| e.report())));
                    }
                    local
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    let sizes = crate::host::dataset::size_histogram(
        results.iter().filter_map(|(_, r)| r.as_ref().ok().copied()),
    );
    let mut by_count: Vec<_> = sizes.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = by_count
        .iter()
        .take(5)
        .map(|((w, h), n)| format!("{w}×{h} ({n})"))
        .collect();
    writeln!(
        out,
        "image sizes: {} distinct; most common: {}",
        sizes.len(),
        shown.join(", ")
    )?;
    let mut bad: Vec<&Probe> = results.iter().filter(|r| r.1.is_err()).collect();
    bad.sort_by_key(|r| r.0);
    writeln!(out, "unreadable: {}", bad.len())?;
    for (_, r) in &bad {
        if let Err(reason) = r {
            writeln!(out, "  {reason}")?;
        }
    }
    if let Some(sheet) = &args.sheet {
        let rows: Vec<(String, Vec<crate::host::draw::Captioned>)> = (0..ds.classes.len())
            .map(|c| {
                let of_class: Vec<_> = ds.items.iter().filter(|i| i.label == c).collect();
                let pictures = of_class
                    .iter()
                    .take(args.sheet_columns)
                    .map(|i| crate::host::draw::Captioned {
                        image: i.source.load(DecodeLimits::default()).ok(),
                        caption: vec![
                            i.split.name().to_string(),
                            crate::host::draw::short_name(&i.source.name()),
                        ],
                    })
                    .collect();
                (format!("{} ({})", ds.classes[c], of_class.len()), pictures)
            })
            .collect();
        crate::host::draw::captioned_sheet(&rows, sheet)?;
        writeln!(
            out,
            "contact sheet: {} (row i = class i in the order above)",
            sheet.display()
        )?;
    }
    Ok(if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Extracts (and caches) deep features for every image of the data.
pub fn extract(args: ExtractJob) -> anyhow::Result<ExitCode> {
    let ds = args.data.open()?;
    let run = args.run.clone();
    let backbone = crate::host::workbench::load_backbone(&run)?;
    let t = std::time::Instant::now();
    let extractor = crate::host::extract::Extractor::Deep(&backbone);
    let mut rows = 0;
    let mut dim = 0;
    let mut failures = Vec::new();
    for split in [Split::Train, Split::Test] {
        let items = ds.split(split);
        let (m, kept, f, _) = crate::host::workbench::feature_matrix(&items, &extractor, &run)?;
        rows += m.rows();
        dim = m.dim;
        failures.extend(f);
        if let Some(dir) = &args.export {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            let name = split.name();
            crate::host::npy::write_f32(
                &dir.join(format!("{name}_features.npy")),
                m.rows(),
                m.dim,
                &m.data,
            )?;
            crate::host::npy::write_labels(&dir.join(format!("{name}_labels.npy")), &m.labels)?;
            // One line per feature row, in row order (unreadable images have no row).
            let paths: String = kept
                .iter()
                .map(|&i| items[i].source.name() + "\n")
                .collect();
            std::fs::write(dir.join(format!("{name}_paths.txt")), paths)
                .with_context(|| format!("{}: cannot write {name}_paths.txt", dir.display()))?;
            std::fs::write(dir.join("classes.txt"), ds.classes.join("\n") + "\n")
                .with_context(|| format!("{}: cannot write classes.txt", dir.display()))?;
        }
        // The views `fit --augment` fits, of the training images: cached for it, and exported
        // row for row beside the plain features (an image with no plain row has none here).
        let views = crate::host::workbench::views_of(&args.augment);
        if split == Split::Train && !views.is_empty() {
            let kept_items: Vec<_> = kept.iter().map(|&i| items[i]).collect();
            for view in views {
                let (v, _, f, _) =
                    crate::host::workbench::feature_matrix_of(&kept_items, &extractor, &run, view)?;
                rows += v.rows();
                failures.extend(f);
                if let Some(dir) = &args.export {
                    let name = format!("train_{}", view.name());
                    crate::host::npy::write_f32(
                        &dir.join(format!("{name}_features.npy")),
                        v.rows(),
                        v.dim,
                        &v.data,
                    )?;
                    crate::host::npy::write_labels(
                        &dir.join(format!("{name}_labels.npy")),
                        &v.labels,
                    )?;
                }
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} feature vectors of {} in {:.1} s ({:.1} images/s){}",
        rows,
        dim,
        secs,
        rows as f64 / secs.max(1e-9),
        run.cache_dir
            .as_ref()
            .map(|d| format!("; cache in {}", d.display()))
            .unwrap_or_default()
    );
    report_failures(&failures);
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
