//! Time per node of the backbone with one choice of matrix-product kernel, for
//! `scripts/tune-mmm.py` (which makes the table in `src/mmm.rs` from it). The graph is optimised
//! with every piece of this crate but the kernel choice, which `--matmul` gives: `tract` (tract's
//! own), `table` (the crate's table) or a kernel name (that kernel for every f32 product it can
//! run). Features only (one output), one thread.
//!
//! ```text
//! cargo run --release -p tract-x86-kernels --example profile -- MODEL.onnx [--runs 40] [--matmul tract|table|KERNEL]
//! ```
//!
//! Prints one line with the median run, then `| node | operator | ms/run | output | details |`
//! for every node, slowest first.

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("tract-x86-kernels is for x86-64 only");
}

#[cfg(target_arch = "x86_64")]
fn main() -> tract_onnx::prelude::TractResult<()> {
    x86::main()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::time::{Duration, Instant};

    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::plan::SimpleState;
    use tract_x86_kernels::{Matmul, Pieces};

    pub fn main() -> TractResult<()> {
        let mut args = std::env::args().skip(1);
        let (mut model_path, mut runs, mut matmul) = (None, 40usize, Matmul::Table);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--runs" => {
                    runs = args
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("--runs needs a value"))?
                        .parse()?
                }
                "--matmul" => {
                    matmul = match args.next().as_deref() {
                        Some("tract") => Matmul::Tract,
                        Some("table") => Matmul::Table,
                        Some(kernel) => {
                            Matmul::Force(Box::leak(kernel.to_owned().into_boxed_str()))
                        }
                        None => anyhow::bail!("--matmul needs a value"),
                    }
                }
                _ if model_path.is_none() => model_path = Some(arg),
                other => anyhow::bail!("unexpected argument {other}"),
            }
        }
        let model_path = model_path.ok_or_else(|| {
            anyhow::anyhow!("usage: profile MODEL.onnx [--runs N] [--matmul tract|table|KERNEL]")
        })?;
        let runs = runs.max(1);
        let mut model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(&model_path)?
            .with_input_fact(0, f32::fact([1, 3, 224, 224]).into())?
            .into_typed()?;
        model.outputs.truncate(1);
        let pieces = Pieces {
            matmul,
            ..Pieces::default()
        };
        let plan = tract_x86_kernels::optimize(model, &pieces)?.into_runnable()?;
        let nodes = &plan.model().nodes;
        let input: Vec<f32> = (0..3 * 224 * 224)
            .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
            .collect();
        let input = Tensor::from_shape(&[1, 3, 224, 224], &input)?;
        let mut per_node = vec![Duration::ZERO; nodes.len()];
        let mut totals = Vec::with_capacity(runs);
        let mut state = SimpleState::new(&plan)?;
        for run in 0..runs + 3 {
            let mut times: Vec<(usize, Duration)> = Vec::with_capacity(nodes.len());
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
        println!(
            "{model_path}: {} nodes, median run {:.2} ms, matmul {matmul:?}; {}",
            nodes.len(),
            totals[totals.len() / 2].as_secs_f64() * 1e3,
            tract_x86_kernels::describe()
        );
        println!("\n| node | operator | ms/run | output | details |\n|---|---|---:|---|---|");
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(per_node[i]));
        for i in order {
            let node = &nodes[i];
            println!(
                "| {} | {} | {:.3} | {} | {} |",
                node.name,
                node.op().name(),
                per_node[i].as_secs_f64() * 1e3 / runs as f64,
                node.outputs
                    .first()
                    .map(|o| format!("{:?}", o.fact.shape))
                    .unwrap_or_default(),
                node.op().info().map(|i| i.join("; ")).unwrap_or_default()
            );
        }
        Ok(())
    }
}
