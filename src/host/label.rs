//! `glance-host label DIR`: a `glance run --capture` folder made ready for labelling: a contact
//! sheet of the captures (numbered, with the board's suggestion and why each was kept) and a
//! CSV to fill in, `path,label,split,suggested,score,reasons`. Once labels are filled in, DIR
//! is a dataset (`fit DATA --add DIR` refits with it; any command reads it).
//!
//! Running it again after more captures keeps every label already filled in (rows are matched
//! by path) and adds rows for the new captures; rows of captures the board has since removed
//! are kept too, the replaced file stays as `labels.csv.prev`, and a file with a quote left
//! open is refused rather than rewritten: no label written is ever lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::host::draw::{captioned_sheet, Captioned};
use crate::preprocess::DecodeLimits;

/// The CSV `label` writes in the capture folder, and that makes the folder a dataset.
pub const LABELS_CSV: &str = "labels.csv";

const HEADER: [&str; 6] = ["path", "label", "split", "suggested", "score", "reasons"];

/// Whether `dir` holds a `labels.csv` that `label` wrote (its header says so): only then is the
/// folder read as that CSV, so a class-folders dataset with a file of that name stays one.
pub(crate) fn has_labels(dir: &Path) -> bool {
    use std::io::BufRead;
    std::fs::File::open(dir.join(LABELS_CSV)).is_ok_and(|f| {
        let mut first = String::new();
        std::io::BufReader::new(f).read_line(&mut first).is_ok()
            && first.trim_end() == HEADER.join(",")
    })
}

/// Whether `dir` holds captures.
pub(crate) fn is_capture_folder(dir: &Path) -> bool {
    capture_stems(dir).is_ok_and(|stems| !stems.is_empty())
}

/// The stems of the captures in `dir` (a `<ms>-<frame>.json` sidecar beside its `.jpg`), oldest
/// first.
fn capture_stems(dir: &Path) -> Result<Vec<String>> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".json")?.to_owned();
            (crate::capture::is_capture(&stem) && dir.join(format!("{stem}.jpg")).is_file())
                .then_some(stem)
        })
        .collect();
    stems.sort();
    Ok(stems)
}

/// One capture as its sidecar describes it.
#[derive(Debug, Clone)]
struct Capture {
    /// The picture's file name (relative to the folder, as the CSV records it).
    file: String,
    suggested: String,
    score: f32,
    reasons: Vec<String>,
}

/// Reads the captures of `dir`, oldest first. A sidecar that cannot be read is reported and
/// left out; it never stops the others.
fn captures(dir: &Path) -> Result<(Vec<Capture>, Vec<String>)> {
    let stems = capture_stems(dir)?;
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for stem in stems {
        let path = dir.join(format!("{stem}.json"));
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
            });
        let v = match parsed {
            Ok(v) => v,
            Err(e) => {
                bad.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        // The board's label, or for an unknown frame its best guess: the head's top class,
        // else the nearest stored example's.
        let label = v["label"].as_str().unwrap_or_default();
        let suggested = if !label.is_empty() && label != "unknown" {
            label.to_owned()
        } else {
            v["top_k"][0]["label"]
                .as_str()
                .or_else(|| v["knn"]["label"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let reasons = v["capture"]["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Capture {
            file: format!("{stem}.jpg"),
            suggested,
            score: v["score"].as_f64().unwrap_or(0.0) as f32,
            reasons,
        });
    }
    Ok((out, bad))
}

/// The labels already in `csv`, by path: `(label, split)`.
fn existing_labels(csv: &Path) -> Result<BTreeMap<String, (String, String)>> {
    let mut out = BTreeMap::new();
    if !csv.exists() {
        return Ok(out);
    }
    // A quote left open swallows every row after it into one field, which the CSV reader
    // accepts: refused (quotes come in pairs, `""` included), so that the rewrite never drops
    // what the labeller typed.
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("{}: cannot read", csv.display()))?;
    if text.matches('"').count() % 2 == 1 {
        let line = text
            .lines()
            .scan(0usize, |quotes, l| {
                *quotes += l.matches('"').count();
                Some(*quotes)
            })
            .position(|q| q % 2 == 1)
            .map_or(0, |i| i + 1);
        bail!(
            "{}: line {line}: a quote is not closed; fix the row and run `glance-host label` \
             again",
            csv.display()
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", csv.display(), n + 2))?;
        let Some(path) = rec.get(0).filter(|p| !p.is_empty()) else {
            continue;
        };
        out.insert(
            path.to_owned(),
            (
                rec.get(1).unwrap_or_default().to_owned(),
                rec.get(2).unwrap_or_default().to_owned(),
            ),
        );
    }
    Ok(out)
}

/// What `label` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSummary {
    /// The CSV.
    pub csv: PathBuf,
    /// The contact sheet, when there were captures to draw.
    pub sheet: Option<PathBuf>,
    /// Captures in the folder.
    pub captures: usize,
    /// Rows that already had a label.
    pub labelled: usize,
    /// Sidecars that could not be read (with why).
    pub unreadable: Vec<String>,
}

/// Writes `DIR/labels.csv` (keeping labels already filled in) and the contact sheet `sheet`
/// (default `DIR/labels.png`, `columns` pictures a row).
pub fn label(dir: &Path, sheet: Option<&Path>, columns: usize) -> Result<LabelSummary> {
    if !dir.is_dir() {
        bail!("{}: no such folder", dir.display());
    }
    let (caps, unreadable) = captures(dir)?;
    if caps.is_empty() && unreadable.is_empty() {
        bail!(
            "{}: no captures (a `glance run --capture {}` folder holds NNN-NNN.jpg pictures \
             with .json sidecars)",
            dir.display(),
            dir.display()
        );
    }
    let csv_path = dir.join(LABELS_CSV);
    let mut known = existing_labels(&csv_path)?;
    let mut labelled = 0;
    let mut rows: Vec<[String; 6]> = Vec::new();
    for c in &caps {
        let (label, split) = known.remove(&c.file).unwrap_or_default();
        if !label.is_empty() {
            labelled += 1;
        }
        rows.push([
            c.file.clone(),
            label,
            if split.is_empty() {
                "train".into()
            } else {
                split
            },
            c.suggested.clone(),
            format!("{:.3}", c.score),
            c.reasons.join(" "),
        ]);
    }
    // Labelled rows of captures no longer in the folder stay (the board prunes the oldest;
    // the labeller may have copied the files elsewhere): a label written is never dropped.
    for (file, (label, split)) in known.into_iter().filter(|(_, (l, _))| !l.is_empty()) {
        labelled += 1;
        rows.push([
            file,
            label,
            split,
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let mut bytes = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut bytes);
        w.write_record(HEADER)?;
        for r in &rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    // The labeller's last version stays beside it, as labels.csv.prev.
    crate::fsutil::write_atomic_keep_previous(
        &csv_path,
        &bytes,
        &dir.join(format!("{LABELS_CSV}.prev")),
    )?;

    let sheet_path = sheet
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("labels.png"));
    let sheet = if caps.is_empty() {
        None
    } else {
        let columns = columns.max(1);
        let sheet_rows: Vec<(String, Vec<Captioned>)> = caps
            .chunks(columns)
            .enumerate()
            .map(|(r, chunk)| {
                let first = r * columns + 1;
                let pictures = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Captioned {
                        image: crate::preprocess::decode_file(
                            &dir.join(&c.file),
                            DecodeLimits::default(),
                        )
                        .ok(),
                        caption: vec![
                            format!("#{} {}", first + i, c.suggested),
                            format!("{:.2} {}", c.score, c.reasons.join(",")),
                        ],
                    })
                    .collect();
                (format!("{first}-{}", first + chunk.len() - 1), pictures)
            })
            .collect();
        captioned_sheet(&sheet_rows, &sheet_path)?;
        Some(sheet_path)
    };
    Ok(LabelSummary {
        csv: csv_path,
        sheet,
        captures: caps.len(),
        labelled,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capture `stem` in `dir`: a small JPEG and `sidecar` as its JSON.
    fn capture(dir: &Path, stem: &str, sidecar: &[u8]) {
        image::RgbImage::from_pixel(8, 8, image::Rgb([90, 120, 200]))
            .save(dir.join(format!("{stem}.jpg")))
            .unwrap();
        std::fs::write(dir.join(format!("{stem}.json")), sidecar).unwrap();
    }

    #[test]
    fn a_broken_sidecar_is_named_and_left_out_and_the_others_are_labelled() {
        let dir = tempfile::tempdir().unwrap();
        capture(
            dir.path(),
            "1700000000000-00000001",
            br#"{"label":"unknown","score":0.4,"top_k":[{"label":"mug","score":0.4}],
                "capture":{"reasons":["unknown"]}}"#,
        );
        capture(dir.path(), "1700000000001-00000002", b"{\"label\": \"cut");
        let s = label(dir.path(), None, 4).unwrap();
        assert_eq!(s.captures, 1);
        assert_eq!(s.unreadable.len(), 1);
        assert!(
            s.unreadable[0].contains("1700000000001-00000002.json"),
            "{s:?}"
        );
        let csv = std::fs::read_to_string(&s.csv).unwrap();
        assert!(
            csv.contains("1700000000000-00000001.jpg,,train,mug,0.400,unknown"),
            "{csv}"
        );
        // Run again: the CSV it replaces stays beside it.
        label(dir.path(), None, 4).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(format!("{LABELS_CSV}.prev"))).unwrap(),
            csv
        );
    }

    #[test]
    fn a_broken_labels_csv_is_refused_by_name_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        capture(
            dir.path(),
            "1700000000000-00000001",
            br#"{"label":"mug","score":0.9}"#,
        );
        // A row with an unterminated quote: the user's edit, not to be overwritten.
        let broken = format!("{}\n\"1700000000000-00000001.jpg,mug\n", HEADER.join(","));
        std::fs::write(dir.path().join(LABELS_CSV), &broken).unwrap();
        let err = label(dir.path(), None, 4).unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains(LABELS_CSV) && err.contains("line 2"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LABELS_CSV)).unwrap(),
            broken
        );
    }
}
