//! Softmax regression (multinomial logistic regression) with an L2 penalty, fitted by argmin's
//! L-BFGS with early stopping on a validation split; and the temperature for held-out logits
//! (the workbench fits it once, on whichever held-out predictions calibrate the bundle).

use std::sync::Mutex;

use anyhow::{anyhow, Result};
use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use crate::head::{FeatureNorm, LinearHead};

/// A dense row-major matrix of conditioned features with labels.
#[derive(Clone)]
pub(super) struct Matrix {
    /// Row-major `rows × dim`.
    pub data: Vec<f32>,
    /// Columns.
    pub dim: usize,
    /// Class of each row.
    pub labels: Vec<usize>,
}

impl Matrix {
    /// Rows.
    pub(super) fn rows(&self) -> usize {
        self.labels.len()
    }

    /// One row.
    pub(super) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Fitting settings.
#[derive(Debug, Clone)]
pub(super) struct FitOptions {
    /// L2 penalty on the weights (λ/2·‖W‖²) added to the mean loss.
    pub l2: f64,
    /// Weight classes inversely to their frequency.
    pub balanced: bool,
    /// Most L-BFGS iterations in total.
    pub max_iters: u64,
    /// Iterations between validation checks.
    pub check_every: u64,
    /// Stop after this many checks without a better validation loss.
    pub patience: u32,
    /// Threads for the loss and gradient.
    pub threads: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            l2: 1e-6,
            balanced: false,
            max_iters: 1000,
            check_every: 25,
            patience: 2,
            threads: 2,
        }
    }
}

/// What fitting reports.
#[derive(Debug, Clone)]
pub(super) struct FitReport {
    /// L-BFGS iterations run.
    pub iterations: u64,
    /// Best validation log-loss (or training loss with no validation data).
    pub val_loss: f64,
    /// Validation accuracy of the kept weights.
    pub val_accuracy: f64,
    /// Why it stopped.
    pub stopped: String,
}

/// Parameters with their loss and gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

struct Problem<'a> {
    x: &'a Matrix,
    classes: usize,
    sample_weight: Vec<f64>,
    weight_sum: f64,
    l2: f64,
    threads: usize,
    last: Mutex<Option<Evaluated>>,
}

impl Problem<'_> {
    /// Loss and gradient in one pass over the data, split across threads.
    fn evaluate(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let (c, d) = (self.classes, self.x.dim);
        let n = self.x.rows();
        let w: Vec<f32> = p[..c * d].iter().map(|&v| v as f32).collect();
        let b = &p[c * d..];
        let chunk = n.div_ceil(self.threads.max(1)).max(1);
        let partials: Vec<(f64, Vec<f64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|start| {
                    let w = &w;
                    s.spawn(move || {
                        let end = (start + chunk).min(n);
                        let mut grad = vec![0f64; c * d + c];
                        let mut loss = 0f64;
                        let mut z = vec![0f64; c];
                        for i in start..end {
                            let xi = self.x.row(i);
                            for k in 0..c {
                                let wk = &w[k * d..(k + 1) * d];
                                z[k] = f64::from(crate::vector::dot(wk, xi)) + b[k];
                            }
                            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
                            let lse = m + sum.ln();
                            let y = self.x.labels[i];
                            let sw = self.sample_weight[y] / self.weight_sum;
                            loss += sw * (lse - z[y]);
                            for k in 0..c {
                                let g = sw * ((z[k] - lse).exp() - if k == y { 1.0 } else { 0.0 });
                                if g != 0.0 {
                                    let gk = &mut grad[k * d..(k + 1) * d];
                                    for (gv, &xv) in gk.iter_mut().zip(xi) {
                                        *gv += g * f64::from(xv);
                                    }
                                    grad[c * d + k] += g;
                                }
                            }
                        }
                        (loss, grad)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut loss = 0f64;
        let mut grad = vec![0f64; c * d + c];
        for (l, g) in partials {
            loss += l;
            grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        for (i, &wv) in p[..c * d].iter().enumerate() {
            loss += 0.5 * self.l2 * wv * wv;
            grad[i] += self.l2 * wv;
        }
        (loss, grad)
    }

    fn cached(&self, p: &[f64]) -> (f64, Vec<f64>) {
        if let Ok(guard) = self.last.lock() {
            if let Some((lp, l, g)) = guard.as_ref() {
                if lp.as_slice() == p {
                    return (*l, g.clone());
                }
            }
        }
        let (l, g) = self.evaluate(p);
        if let Ok(mut guard) = self.last.lock() {
            *guard = Some((p.to_vec(), l, g.clone()));
        }
        (l, g)
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.cached(p).0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.cached(p).1)
    }
}

fn head_from(p: &[f64], classes: usize, dim: usize, norm: FeatureNorm) -> LinearHead {
    LinearHead {
        classes,
        dim,
        weights: p[..classes * dim].iter().map(|&v| v as f32).collect(),
        bias: p[classes * dim..].iter().map(|&v| v as f32).collect(),
        norm,
        temperature: 1.0,
    }
}

/// Mean log-loss and accuracy of `head` on conditioned rows, at temperature `t`.
pub(super) fn loss_and_accuracy(head: &LinearHead, x: &Matrix, t: f32) -> (f64, f64) {
    if x.rows() == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut loss = 0f64;
    let mut correct = 0usize;
    for i in 0..x.rows() {
        let z = head.logits_prepared(x.row(i));
        let p = crate::head::softmax(&z, t);
        let y = x.labels[i];
        loss -= f64::from(p[y].max(1e-12)).ln();
        correct += usize::from(crate::head::argmax(&p) == y);
    }
    (loss / x.rows() as f64, correct as f64 / x.rows() as f64)
}

/// Width of the prior on ln T in [`temperature_from_logits`]: T is a priori within e^±1.
const LN_T_PRIOR_SIGMA: f64 = 1.0;

/// The temperature that minimises the held-out log-loss of `logits` (rows, with their true
/// classes `labels`) plus a Gaussian prior on ln T centred on T = 1 (a MAP estimate; golden
/// section on ln T in [1/20, 20]). Without the prior, a few held-out rows that are all right
/// drive T to its lower bound and the head to near-certainty on anything, including images of
/// no class; with many rows the prior's weight vanishes. No rows: 1.
pub(super) fn temperature_from_logits(logits: &[Vec<f32>], labels: &[usize]) -> f64 {
    let n = logits.len().min(labels.len());
    if n == 0 {
        return 1.0;
    }
    let f = |lt: f64| {
        let t = lt.exp() as f32;
        let nll: f64 = logits
            .iter()
            .zip(labels)
            .map(|(z, &y)| {
                let p = crate::head::softmax(z, t);
                -f64::from(p.get(y).copied().unwrap_or(0.0).max(1e-12)).ln()
            })
            .sum();
        nll + lt * lt / (2.0 * LN_T_PRIOR_SIGMA * LN_T_PRIOR_SIGMA)
    };
    let (mut a, mut b) = ((0.05f64).ln(), (20f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..40 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// Fits the head on `train`, stopping early on `val`'s log-loss; its temperature is 1.
pub(super) fn fit(
    train: &Matrix,
    val: &Matrix,
    classes: usize,
    norm: FeatureNorm,
    opts: &FitOptions,
) -> Result<(LinearHead, FitReport)> {
    let dim = train.dim;
    let mut counts = vec![0f64; classes];
    for &y in &train.labels {
        counts[y] += 1.0;
    }
    let sample_weight: Vec<f64> = if opts.balanced {
        let n = train.rows() as f64;
        counts
            .iter()
            .map(|&c| {
                if c > 0.0 {
                    n / (classes as f64 * c)
                } else {
                    0.0
                }
            })
            .collect()
    } else {
        vec![1.0; classes]
    };
    let weight_sum: f64 = train.labels.iter().map(|&y| sample_weight[y]).sum();
    let problem = Problem {
        x: train,
        classes,
        sample_weight,
        weight_sum,
        l2: opts.l2,
        threads: opts.threads,
        last: Mutex::new(None),
    };
    let mut param = vec![0f64; classes * dim + classes];
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut since_best = 0;
    let mut iterations = 0u64;
    let mut stopped = "max iterations".to_string();
    while iterations < opts.max_iters {
        let chunk = opts.check_every.min(opts.max_iters - iterations);
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(1e-6)
            .map_err(|e| anyhow!("L-BFGS setup: {e}"))?
            .with_tolerance_cost(1e-10)
            .map_err(|e| anyhow!("L-BFGS setup: {e}"))?;
        let problem_ref = &problem;
        let res = Executor::new(ProblemRef(problem_ref), solver)
            .configure(|s| s.param(param.clone()).max_iters(chunk))
            .run()
            .map_err(|e| anyhow!("L-BFGS failed: {e}"))?;
        let state = res.state();
        iterations += state.get_iter();
        if let Some(p) = state.get_best_param() {
            param = p.clone();
        }
        let head = head_from(&param, classes, dim, norm.clone());
        let (val_loss, _) = if val.rows() > 0 {
            loss_and_accuracy(&head, val, 1.0)
        } else {
            (state.get_best_cost(), 0.0)
        };
        log::info!("fit: iteration {iterations}, validation loss {val_loss:.5}");
        if best.as_ref().is_none_or(|(b, _)| val_loss < *b - 1e-6) {
            best = Some((val_loss, param.clone()));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= opts.patience {
                stopped = format!("early stop: validation loss flat for {since_best} checks");
                break;
            }
        }
        let converged = matches!(
            state.get_termination_status(),
            TerminationStatus::Terminated(r) if *r != TerminationReason::MaxItersReached
        );
        if converged || state.get_iter() == 0 {
            stopped = format!("converged ({})", state.get_termination_status());
            break;
        }
    }
    let (val_loss, p) = best.ok_or_else(|| anyhow!("fitting produced no parameters"))?;
    let head = head_from(&p, classes, dim, norm);
    let (_, val_accuracy) = if val.rows() > 0 {
        loss_and_accuracy(&head, val, 1.0)
    } else {
        (0.0, 0.0)
    };
    Ok((
        head,
        FitReport {
            iterations,
            val_loss,
            val_accuracy,
            stopped,
        },
    ))
}

/// argmin takes its problem by value; this lends it ours.
struct ProblemRef<'a, 'b>(&'a Problem<'b>);

impl CostFunction for ProblemRef<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        self.0.cost(p)
    }
}

impl Gradient for ProblemRef<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Vec<f64>, argmin::core::Error> {
        self.0.gradient(p)
    }
}
