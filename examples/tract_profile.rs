//! Where tract spends a frame: runs the backbone as the tract engine prepares it (same graph
//! passes) on one input, times every node over several runs with tract's own evaluation hook
//! (`SimpleState::run_plan_with_eval`), and prints the time per operator kind and the slowest
//! nodes. Single-threaded unless `--threads N`. The kernels are the build's: on x86-64 with the
//! feature `x86-kernels` (default), those of `crates/tract-x86-kernels` (its
//! `examples/side_by_side.rs` times each of them against tract's own); without it, tract's own.
//! There, `--matmul tract|table|KERNEL` picks the crate's matrix-product kernels instead: tract's
//! own choice, the crate's table, or one kernel wherever it fits (the crate's
//! `scripts/tune-mmm.py` makes its table from such runs).
//!
//! ```text
//! cargo run --release --example tract_profile -- models/efficientnet_lite0_fp32.onnx [--runs 30] [--top 15] [--threads 1] [--features-only] [--dump N] [--matmul KERNELS]
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let mut model_path = None;
    let (mut runs, mut top, mut threads) = (30usize, 15usize, 1usize);
    let mut dump = 0usize;
    let mut outputs = usize::MAX;
    let mut matmul: Option<String> = None;
    while let Some(arg) = args.next() {
        if arg == "--matmul" {
            matmul = Some(
                args.next()
                    .ok_or_else(|| anyhow::anyhow!("--matmul needs a value"))?,
            );
            continue;
        }
        let mut value = |name: &str| -> TractResult<usize> {
            let v = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            v.parse().map_err(|e| anyhow::anyhow!("{name} {v}: {e}"))
        };
        match arg.as_str() {
            "--runs" => runs = value("--runs")?.max(1),
            "--top" => top = value("--top")?,
            "--threads" => threads = value("--threads")?,
            "--dump" => dump = value("--dump")?,
            "--features-only" => outputs = 1,
            _ if model_path.is_none() => model_path = Some(arg),
            other => anyhow::bail!("unexpected argument {other}"),
        }
    }
    let model_path = model_path.ok_or_else(|| anyhow::anyhow!("usage: tract_profile MODEL.onnx [--runs N] [--top N] [--threads N] [--features-only] [--dump N]"))?;
    let bytes = std::fs::read(&model_path).map_err(|e| anyhow::anyhow!("{model_path}: {e}"))?;
    glance::set_threads(threads).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shape = [1, 3, 224, 224];
    let (model, kernels) = match matmul {
        None => (
            glance::tract_model(&bytes, shape, outputs)?,
            glance::tract_kernels(),
        ),
        Some(choice) => with_matmul(glance::tract_typed(&bytes, shape, outputs)?, choice)?,
    };
    let mut out = std::io::stdout().lock();
    for node in model.nodes.iter().take(dump) {
        writeln!(
            out,
            "{} {} {:?} <- {:?}",
            node.id,
            node,
            node.op().info()?,
            node.inputs
        )?;
    }
    let plan = model.into_runnable()?;
    let names: Vec<(String, String)> = plan
        .model()
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.op().name().to_string()))
        .collect();
    let infos: Vec<String> = plan
        .model()
        .nodes
        .iter()
        .map(|n| n.op().info().map(|i| i.join("; ")).unwrap_or_default())
        .collect();

    // A deterministic, image-like input, in the layout the graph takes.
    let input_shape: Vec<usize> = plan
        .model()
        .input_fact(0)?
        .shape
        .as_concrete()
        .ok_or_else(|| anyhow::anyhow!("input shape is not concrete"))?
        .to_vec();
    let len: usize = input_shape.iter().product();
    let input: Vec<f32> = (0..len)
        .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
        .collect();
    let input = Tensor::from_shape(&input_shape, &input)?;
    let mut per_node = vec![Duration::ZERO; names.len()];
    let mut totals = Vec::with_capacity(runs);
    let mut state = SimpleState::new(&plan)?;
    for run in 0..runs + 3 {
        let mut times: Vec<(usize, Duration)> = Vec::with_capacity(names.len());
        let start = Instant::now();
        state.run_plan_with_eval(
            tvec!(input.clone().into()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                times.push((node.id, t.elapsed()));
                out
            },
        )?;
        let total = start.elapsed();
        if run >= 3 {
            totals.push(total);
            for (id, d) in times {
                per_node[id] += d;
            }
        }
    }
    totals.sort();
    let median = totals[totals.len() / 2];
    let sum: Duration = per_node.iter().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / runs as f64;
    writeln!(
        out,
        "{model_path}: {} nodes, input {input_shape:?}, median run {:.2} ms, {:.2} ms in nodes (mean); {threads} thread(s), kernels: {}",
        names.len(),
        median.as_secs_f64() * 1e3,
        ms(sum),
        kernels
    )?;
    let mut by_kind: BTreeMap<&str, (Duration, usize)> = BTreeMap::new();
    for (i, (_, kind)) in names.iter().enumerate() {
        let e = by_kind.entry(kind.as_str()).or_default();
        e.0 += per_node[i];
        e.1 += 1;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1 .0));
    writeln!(
        out,
        "\n| operator | nodes | ms/run | share |\n|---|---:|---:|---:|"
    )?;
    for (kind, (d, n)) in kinds {
        writeln!(
            out,
            "| {kind} | {n} | {:.2} | {:.1}% |",
            ms(d),
            100.0 * d.as_secs_f64() / sum.as_secs_f64()
        )?;
    }
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(per_node[i]));
    writeln!(
        out,
        "\n| node | operator | ms/run | output | details |\n|---|---|---:|---|---|"
    )?;
    for &i in order.iter().take(top) {
        let fact = plan.model().nodes[i]
            .outputs
            .first()
            .map(|o| format!("{:?}", o.fact.shape))
            .unwrap_or_default();
        writeln!(
            out,
            "| {} | {} | {:.3} | {} | {} |",
            names[i].0,
            names[i].1,
            ms(per_node[i]),
            fact,
            infos[i]
        )?;
    }
    Ok(())
}

/// The graph optimised with every piece of the kernel crate but the matrix-product kernels,
/// which `choice` gives, and the kernels in words.
#[cfg(all(feature = "x86-kernels", target_arch = "x86_64"))]
fn with_matmul(model: TypedModel, choice: String) -> TractResult<(TypedModel, String)> {
    use tract_x86_kernels::{Matmul, Pieces};
    let matmul = match choice.as_str() {
        "tract" => Matmul::Tract,
        "table" => Matmul::Table,
        _ => Matmul::Force(Box::leak(choice.clone().into_boxed_str())),
    };
    let pieces = Pieces {
        matmul,
        ..Pieces::default()
    };
    let model = tract_x86_kernels::optimize(model, &pieces)?;
    Ok((
        model,
        format!("{}; matmul {choice}", tract_x86_kernels::describe()),
    ))
}

#[cfg(not(all(feature = "x86-kernels", target_arch = "x86_64")))]
fn with_matmul(_: TypedModel, _: String) -> TractResult<(TypedModel, String)> {
    anyhow::bail!("--matmul needs the x86-64 kernel crate (feature `x86-kernels`, x86-64 only)")
}
