//! `cargo xtask bench-kernels`: the dispatched L2 and dot kernels against a plain scalar loop,
//! timed in the same run, at d = 128, 768 and 1536.
//!
//! The inputs stay in L1, so this measures the arithmetic, not memory: the figure the kernel bars
//! in docs/BENCHMARKS.md speak of. Each figure is the median of several timed batches.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;

use strata_quantize::{Isa, Kernels};

use crate::rng::Rng;

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchKernelsArgs {
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Force one instruction-set path (avx512, avx2-fma, neon, scalar) instead of the one
    /// dispatch picks, e.g. to measure the AVX2 path on an AVX-512 machine.
    #[arg(long)]
    pub isa: Option<String>,
}

/// The plain-loop baseline of a kernel.
type Plain = fn(&[f32], &[f32]) -> f32;
/// A kernel under test, bound to the chosen instruction set.
type Fast<'a> = &'a dyn Fn(&[f32], &[f32]) -> f32;

const DIMS: [usize; 3] = [128, 768, 1536];
const BATCHES: usize = 15;

/// The scalar baseline of the bar: the loop a user writes first.
fn plain_l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn plain_dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Median nanoseconds per call of `f` over `BATCHES` batches of about 20 ms each.
fn median_ns(a: &[f32], b: &[f32], f: impl Fn(&[f32], &[f32]) -> f32) -> f64 {
    let calibrate = Instant::now();
    let mut calls = 0u64;
    while calibrate.elapsed().as_millis() < 5 {
        black_box(f(black_box(a), black_box(b)));
        calls += 1;
    }
    let per_batch = (calls * 4).max(1);
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                black_box(f(black_box(a), black_box(b)));
            }
            start.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[BATCHES / 2]
}

/// Runs `cargo xtask bench-kernels`.
pub fn run(args: &BenchKernelsArgs) -> Result<(), Box<dyn std::error::Error>> {
    let kernels = match &args.isa {
        None => *Kernels::detected(),
        Some(name) => {
            let isa = Isa::ALL.into_iter().find(|isa| isa.name() == name).ok_or_else(|| {
                format!("unknown --isa {name:?}; one of avx512, avx2-fma, neon, scalar")
            })?;
            Kernels::for_isa(isa).ok_or_else(|| format!("this CPU or build has no {name} path"))?
        }
    };
    let isa = kernels.isa().name();
    if !args.json {
        println!("{} build, dispatched kernels: {isa}", crate::PROFILE);
        println!(
            "{:<6} {:>6} {:>15} {:>11} {:>8}",
            "kernel", "dim", "dispatched ns", "scalar ns", "speedup"
        );
    }
    for dim in DIMS {
        let mut rng = Rng::new(5, dim as u64);
        let a: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let pairs: [(&str, Fast<'_>, Plain); 2] = [
            ("l2", &|a, b| kernels.l2_squared(a, b), plain_l2),
            ("dot", &|a, b| kernels.dot(a, b), plain_dot),
        ];
        for (name, dispatched, plain) in pairs {
            let dispatched_ns = median_ns(&a, &b, dispatched);
            let scalar_ns = median_ns(&a, &b, plain);
            if args.json {
                let row = json!({
                    "kernel": name,
                    "dim": dim,
                    "isa": isa,
                    "dispatched_ns": (dispatched_ns * 100.0).round() / 100.0,
                    "scalar_ns": (scalar_ns * 100.0).round() / 100.0,
                    "profile": crate::PROFILE,
                });
                println!("{row}");
            } else {
                println!(
                    "{name:<6} {dim:>6} {dispatched_ns:>15.2} {scalar_ns:>11.2} {:>7.1}x",
                    scalar_ns / dispatched_ns
                );
            }
        }
    }
    Ok(())
}
