//! Times kNN search (int8 and f32 stores) on synthetic feature-like vectors, one query at a
//! time, and writes them for faiss (scripts/bench/knn.sh compares the two):
//! `cargo run --release --example knn_bench -- --rows 10000 --write DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Parser, Debug)]
/// Times kNN search on synthetic feature-like vectors (one JSON object).
#[command(name = "knn_bench")]
struct KnnBenchArgs {
    /// Stored examples.
    #[arg(long, default_value_t = 10_000)]
    rows: usize,
    /// Vector length.
    #[arg(long, default_value_t = 1280)]
    dim: usize,
    /// Timed queries (each searched alone, as a frame is).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Write the store and the queries here as raw little-endian f32 (`store.f32`,
    /// `queries.f32`), and each store's nearest rows (`top1_f32.u32`, `top1_i8.u32`).
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

/// Vectors like pooled ReLU6 features: about half exactly 0, the rest a heavy positive tail;
/// queries are stored rows plus noise, so that each has a clear nearest neighbour (xorshift,
/// fixed seed: every run and faiss see the same numbers).
fn feature_like(rows: usize, dim: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.max(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f64::from(x) / f64::from(u32::MAX)
    };
    (0..rows * dim)
        .map(|_| {
            let u = next() * 2.0 - 1.0;
            if u <= 0.0 {
                0.0
            } else {
                (u * u * 6.0) as f32
            }
        })
        .collect()
}

fn knn_bench(args: KnnBenchArgs) -> anyhow::Result<ExitCode> {
    use glance::{KnnStore, Precision};
    if args.rows == 0 || args.dim == 0 || args.queries == 0 {
        bail!("--rows, --dim and --queries must be positive");
    }
    let store = feature_like(args.rows, args.dim, 1);
    let noise = feature_like(args.queries, args.dim, 2);
    let queries: Vec<f32> = (0..args.queries)
        .flat_map(|q| {
            let row = (q * 7919) % args.rows;
            let base = &store[row * args.dim..(row + 1) * args.dim];
            let n = &noise[q * args.dim..(q + 1) * args.dim];
            base.iter()
                .zip(n)
                .map(|(b, e)| b + 0.5 * e)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut report = serde_json::Map::new();
    let mut tops = Vec::new();
    for (name, precision) in [("f32", Precision::F32), ("i8", Precision::I8)] {
        let mut knn = KnnStore::new(args.dim, precision);
        for (r, v) in store.chunks_exact(args.dim).enumerate() {
            knn.push(v, 0, r as u32, String::new())?;
        }
        let mut times = Vec::with_capacity(args.queries);
        let mut top = Vec::with_capacity(args.queries);
        for (i, q) in queries.chunks_exact(args.dim).enumerate() {
            let t = std::time::Instant::now();
            let hit = knn.search(q, 1, None);
            let took = t.elapsed().as_secs_f64() * 1e3;
            if i >= 5.min(args.queries - 1) {
                times.push(took);
            }
            top.push(hit.first().map_or(u32::MAX, |n| n.row as u32));
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        report.insert(
            name.to_owned(),
            serde_json::json!({"median_ms": pct(0.5), "p10_ms": pct(0.1), "p90_ms": pct(0.9),
                               "store_bytes": args.rows * args.dim * if name == "f32" { 4 } else { 1 }}),
        );
        tops.push((name, top));
    }
    let agree = tops[0]
        .1
        .iter()
        .zip(&tops[1].1)
        .filter(|(a, b)| a == b)
        .count();
    report.insert(
        "i8_top1_agrees_with_f32".into(),
        serde_json::json!(agree as f64 / args.queries as f64),
    );
    report.insert(
        "shape".into(),
        serde_json::json!({"rows": args.rows, "dim": args.dim, "queries": args.queries}),
    );
    report.insert(
        "build_target".into(),
        serde_json::json!(glance::BUILD_TARGET),
    );
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let u32_bytes = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (file, bytes) in [
            ("store.f32", f32_bytes(&store)),
            ("queries.f32", f32_bytes(&queries)),
            ("top1_f32.u32", u32_bytes(&tops[0].1)),
            ("top1_i8.u32", u32_bytes(&tops[1].1)),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        }
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match knn_bench(<KnnBenchArgs as clap::Parser>::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("knn_bench: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
