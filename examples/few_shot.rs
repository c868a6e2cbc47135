//! Few-shot enrolment with the on-device store: how well `enroll LABEL N` alone tells apart
//! classes a bundle never saw, as on a board (the same `glance::Store`, int8 by default, the
//! same nearest-example rule as `glance run`'s decision).
//!
//! It reads features that `glance-host extract --export DIR` wrote (train_features.npy,
//! train_labels.npy, test_features.npy, test_labels.npy, classes.txt), and for each number of
//! shots enrols that many randomly drawn training images of each chosen class into a fresh
//! store, then decides every test image of those classes by its nearest enrolled example.
//! Each figure is the mean over `--draws` seeded draws, with the spread (standard deviation).
//!
//! ```sh
//! cargo run --release --example few_shot -- DIR --classes 5,6,7,8,9 --shots 1,5,10
//! ```
//! Prints one JSON line per number of shots.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use glance::{Precision, Store};

struct Args {
    dir: PathBuf,
    classes: Option<Vec<usize>>,
    shots: Vec<usize>,
    draws: usize,
    seed: u64,
    precision: Precision,
}

fn parse() -> Result<Args> {
    let mut args = Args {
        dir: PathBuf::new(),
        classes: None,
        shots: vec![1, 5, 10],
        draws: 20,
        seed: 1,
        precision: Precision::I8,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: String| -> Result<Vec<usize>> {
        s.split(',')
            .map(|x| x.trim().parse::<usize>().with_context(|| format!("`{x}`")))
            .collect()
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--classes" => args.classes = Some(list(it.next().context("--classes LIST")?)?),
            "--shots" => args.shots = list(it.next().context("--shots LIST")?)?,
            "--draws" => args.draws = it.next().context("--draws N")?.parse()?,
            "--seed" => args.seed = it.next().context("--seed N")?.parse()?,
            "--f32" => args.precision = Precision::F32,
            "-h" | "--help" => {
                println!(
                    "few_shot DIR [--classes 5,6,7] [--shots 1,5,10] [--draws 20] [--seed 1] \
                     [--f32]"
                );
                std::process::exit(0);
            }
            _ if args.dir.as_os_str().is_empty() => args.dir = PathBuf::from(a),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    if args.dir.as_os_str().is_empty() {
        bail!("usage: few_shot DIR (a glance-host extract --export folder)");
    }
    Ok(args)
}

/// A little-endian `<f4` (2-D) or `<i8`/`<i4`/`<u2`/`<u1` (1-D) array from a .npy file.
fn npy(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let b = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        bail!("{}: not a .npy file", path.display());
    }
    let (header_len, start) = match b[6] {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
        _ => {
            if b.len() < 12 {
                bail!("{}: short header", path.display());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
    };
    let header = std::str::from_utf8(b.get(start..start + header_len).context("short header")?)?;
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|s| s.split('\'').nth(1))
        .context("no descr")?;
    let shape: Vec<usize> = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .context("no shape")?
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()?;
    let data = &b[start + header_len..];
    let n: usize = shape.iter().product();
    let values: Vec<f64> = match descr {
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "<i8" => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        "<i4" => data
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "<u2" => data
            .chunks_exact(2)
            .map(|c| f64::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "|u1" | "<u1" => data.iter().map(|&v| f64::from(v)).collect(),
        other => bail!("{}: dtype {other} not read here", path.display()),
    };
    if values.len() != n {
        bail!(
            "{}: {} values for shape {shape:?}",
            path.display(),
            values.len()
        );
    }
    Ok((shape, values))
}

struct Split {
    dim: usize,
    features: Vec<f32>,
    labels: Vec<usize>,
}

fn split(dir: &Path, name: &str) -> Result<Split> {
    let (shape, f) = npy(&dir.join(format!("{name}_features.npy")))?;
    let (_, l) = npy(&dir.join(format!("{name}_labels.npy")))?;
    if shape.len() != 2 || shape[0] != l.len() {
        bail!("{name}: features {shape:?} and {} labels", l.len());
    }
    Ok(Split {
        dim: shape[1],
        features: f.into_iter().map(|v| v as f32).collect(),
        labels: l.into_iter().map(|v| v as usize).collect(),
    })
}

/// SplitMix64, so every machine draws the same shots.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() -> Result<()> {
    let a = parse()?;
    let train = split(&a.dir, "train")?;
    let test = split(&a.dir, "test")?;
    let names: Vec<String> = std::fs::read_to_string(a.dir.join("classes.txt"))
        .context("classes.txt")?
        .lines()
        .map(str::to_owned)
        .collect();
    let classes = a
        .classes
        .clone()
        .unwrap_or_else(|| (0..names.len()).collect());
    if classes.iter().any(|&c| c >= names.len()) {
        bail!("a class index is not below {}", names.len());
    }
    let row = |s: &Split, i: usize| s.features[i * s.dim..(i + 1) * s.dim].to_vec();
    let of_class = |s: &Split, c: usize| -> Vec<usize> {
        (0..s.labels.len()).filter(|&i| s.labels[i] == c).collect()
    };
    let pools: Vec<Vec<usize>> = classes.iter().map(|&c| of_class(&train, c)).collect();
    let tests: Vec<(usize, usize)> = classes
        .iter()
        .enumerate()
        .flat_map(|(k, &c)| of_class(&test, c).into_iter().map(move |i| (i, k)))
        .collect();
    for &shots in &a.shots {
        if pools.iter().any(|p| p.len() < shots) {
            bail!("a class has fewer than {shots} training images");
        }
        let mut rng = Rng(a.seed ^ (shots as u64) << 32);
        let mut accuracies = Vec::with_capacity(a.draws);
        for _ in 0..a.draws {
            let mut store = Store::new("few-shot", train.dim, 100_000, a.precision);
            for (k, pool) in pools.iter().enumerate() {
                // A partial Fisher-Yates shuffle: `shots` distinct images.
                let mut p = pool.clone();
                for j in 0..shots {
                    let pick = j + rng.below(p.len() - j);
                    p.swap(j, pick);
                    store.add(&names[classes[k]], &row(&train, p[j]), String::new())?;
                }
            }
            let labels: Vec<String> = store.counts().into_iter().map(|(l, _)| l).collect();
            let mut right = 0usize;
            for &(i, k) in &tests {
                let per_label = store.nearest_per_label(&row(&test, i));
                let best = per_label
                    .iter()
                    .enumerate()
                    .filter_map(|(l, d)| d.map(|d| (l, d)))
                    .min_by(|x, y| x.1.total_cmp(&y.1))
                    .map(|(l, _)| l);
                if best.and_then(|l| labels.get(l)) == Some(&names[classes[k]]) {
                    right += 1;
                }
            }
            accuracies.push(right as f64 / tests.len().max(1) as f64);
        }
        let mean = accuracies.iter().sum::<f64>() / accuracies.len().max(1) as f64;
        let sd = (accuracies.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
            / accuracies.len().saturating_sub(1).max(1) as f64)
            .sqrt();
        println!(
            "{}",
            serde_json::json!({
                "shots": shots,
                "ways": classes.len(),
                "classes": classes.iter().map(|&c| &names[c]).collect::<Vec<_>>(),
                "test_images": tests.len(),
                "draws": a.draws,
                "accuracy_mean": mean,
                "accuracy_sd": sd,
                "precision": format!("{:?}", a.precision),
            })
        );
    }
    Ok(())
}
