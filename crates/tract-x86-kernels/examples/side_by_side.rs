//! Each piece of this crate against tract's own, in one process: the backbone optimised once per
//! configuration (all pieces, each piece left out in turn, none), then run round-robin, one run
//! of each configuration per round, so that a noisy neighbour slows them all alike. Two passes;
//! prints a Markdown table of medians (ms per frame, one thread) and what leaving each piece out
//! costs, as a share of the frame without it.
//!
//! ```text
//! cargo run -p tract-x86-kernels --example side_by_side -- [--model FILE] [--runs 100] [--warmup 10] [--outputs 1]
//! ```
//!
//! `--outputs 1` (the default) computes the pooled features only, as glance does for a bundle;
//! `2` adds the ImageNet logits (`glance classify` without a bundle).

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
    use tract_x86_kernels::{Matmul, Pieces};

    /// One way of running the backbone.
    struct Config {
        name: &'static str,
        pieces: Pieces,
    }

    fn configs() -> Vec<Config> {
        let all = Pieces::default();
        vec![
            Config {
                name: "all pieces (glance's default)",
                pieces: all,
            },
            Config {
                name: "without the matrix-product table and kernels",
                pieces: Pieces {
                    matmul: Matmul::Tract,
                    ..all
                },
            },
            Config {
                name: "without the depthwise kernel (tract's NCHW layout and kernels)",
                pieces: Pieces {
                    depthwise: false,
                    ..all
                },
            },
            Config {
                name: "none: tract alone",
                pieces: Pieces::NONE,
            },
        ]
    }

    pub fn main() -> TractResult<()> {
        let mut args = std::env::args().skip(1);
        let mut model_path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/efficientnet_lite0_int8w.onnx"
        )
        .to_string();
        let (mut runs, mut warmup, mut outputs) = (100usize, 10usize, 1usize);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))
            };
            match arg.as_str() {
                "--model" => model_path = value("--model")?,
                "--runs" => runs = value("--runs")?.parse()?,
                "--warmup" => warmup = value("--warmup")?.parse()?,
                "--outputs" => outputs = value("--outputs")?.parse()?,
                other => anyhow::bail!("unexpected argument {other}"),
            }
        }
        let runs = runs.max(1);
        let shape = [1usize, 3, 224, 224];
        let typed = || -> TractResult<TypedModel> {
            let mut model = tract_onnx::onnx()
                .with_ignore_value_info(true)
                .model_for_path(&model_path)?
                .with_input_fact(0, f32::fact(shape).into())?
                .into_typed()?;
            model.outputs.truncate(outputs);
            Ok(model)
        };
        let configs = configs();
        let plans = configs
            .iter()
            .map(|c| tract_x86_kernels::optimize(typed()?, &c.pieces)?.into_runnable())
            .collect::<TractResult<Vec<_>>>()?;
        let input: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919 % 255) as f32 / 127.5) - 1.0)
            .collect();
        let input: TValue = Tensor::from_shape(&shape, &input)?.into();

        let passes = 2;
        // medians[config][pass], spreads[config][pass] = (p10, p90)
        let mut medians = vec![vec![0f64; passes]; configs.len()];
        let mut spreads = vec![vec![(0f64, 0f64); passes]; configs.len()];
        for pass in 0..passes {
            let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); configs.len()];
            for round in 0..warmup + runs {
                for (i, plan) in plans.iter().enumerate() {
                    let start = Instant::now();
                    plan.run(tvec!(input.clone()))?;
                    let took = start.elapsed();
                    if round >= warmup {
                        times[i].push(took);
                    }
                }
            }
            for (i, t) in times.iter_mut().enumerate() {
                t.sort();
                let ms = |q: usize| t[(t.len() * q / 100).min(t.len() - 1)].as_secs_f64() * 1e3;
                medians[i][pass] = ms(50);
                spreads[i][pass] = (ms(10), ms(90));
            }
        }

        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let file = std::path::Path::new(&model_path)
            .file_name()
            .map_or(model_path.clone(), |f| f.to_string_lossy().into_owned());
        println!(
            "{file}, {outputs} output(s), 1 thread, {cpu}; {runs} runs per configuration and pass \
             after {warmup} warm-up rounds, configurations interleaved; {}\n",
            tract_x86_kernels::describe()
        );
        println!("| configuration | median ms, pass 1 / 2 | p10–p90 ms, pass 1 / 2 | cost of leaving it out |");
        println!("|---|---|---|---|");
        let all: Vec<f64> = medians[0].clone();
        for (i, config) in configs.iter().enumerate() {
            let m = &medians[i];
            let s = &spreads[i];
            // What the frame loses without the piece, per pass, as a share of the frame without it.
            let cost = match i {
                0 => "–".to_string(),
                _ => (0..passes)
                    .map(|p| {
                        format!(
                            "{:+.2} ms ({:+.1}%)",
                            m[p] - all[p],
                            100.0 * (m[p] - all[p]) / m[p]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" / "),
            };
            println!(
                "| {} | {:.2} / {:.2} | {:.2}–{:.2} / {:.2}–{:.2} | {cost} |",
                config.name, m[0], m[1], s[0].0, s[0].1, s[1].0, s[1].1
            );
        }
        Ok(())
    }
}
