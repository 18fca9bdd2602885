//! Distance-kernel benchmarks: dispatched SIMD path vs the scalar reference, plus every other
//! SIMD path this CPU supports, at typical embedding dimensions.
//!
//! Run before and after any kernel change and compare:
//!
//! ```text
//! cargo bench -p strata-quantize --bench kernels
//! cargo bench -p strata-quantize --bench kernels --features x86-v4   # adds the AVX-512 path
//! ```
//!
//! For a quicker, noisier pass append `-- --warm-up-time 1 --measurement-time 2`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_quantize::{Isa, Kernels, scalar};

const DIMS: [usize; 4] = [128, 384, 768, 1536];
const BATCH_ROWS: usize = 1000;

/// Cache-line aligned storage, as the engine's segments lay vectors out; `Vec<f32>` alone is
/// only 16-byte aligned, which makes most 32/64-byte loads straddle cache lines.
struct Aligned {
    storage: Vec<f32>,
    offset: usize,
    len: usize,
}

impl Aligned {
    fn as_slice(&self) -> &[f32] {
        &self.storage[self.offset..self.offset + self.len]
    }
}

/// Deterministic pseudo-random data in [-1, 1), from the crate's own seeded generator.
fn data(len: usize, seed: u64) -> Aligned {
    const FLOATS_PER_LINE: usize = 16;
    let mut rng = strata_quantize::rng::SplitMix64::new(seed, 0);
    let storage: Vec<f32> =
        (0..len + FLOATS_PER_LINE).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
    let offset = storage.as_ptr().align_offset(64);
    assert!(offset < FLOATS_PER_LINE);
    Aligned { storage, offset, len }
}

/// The dispatched path first, then the other supported SIMD paths, labelled by name.
fn simd_paths() -> Vec<(String, Kernels)> {
    let detected = *Kernels::detected();
    let mut paths = vec![(format!("dispatched-{}", detected.isa()), detected)];
    paths.extend(
        Isa::supported()
            .filter(|&isa| isa != detected.isa())
            .filter_map(Kernels::for_isa)
            .map(|kernels| (kernels.isa().to_string(), kernels)),
    );
    paths
}

fn pairwise(c: &mut Criterion) {
    for (name, kernel, reference) in [
        (
            "dot",
            Kernels::dot as fn(&Kernels, &[f32], &[f32]) -> f32,
            scalar::dot as fn(&[f32], &[f32]) -> f32,
        ),
        ("l2_squared", Kernels::l2_squared, scalar::l2_squared),
    ] {
        let mut group = c.benchmark_group(name);
        for dim in DIMS {
            let a = data(dim, 1);
            let a = a.as_slice();
            let b = data(dim, 2);
            let b = b.as_slice();
            group.throughput(Throughput::Elements(dim as u64));
            for (label, kernels) in simd_paths() {
                group.bench_with_input(BenchmarkId::new(label, dim), &dim, |bench, _| {
                    bench.iter(|| kernel(&kernels, black_box(a), black_box(b)));
                });
            }
            group.bench_with_input(BenchmarkId::new("scalar-reference", dim), &dim, |bench, _| {
                bench.iter(|| reference(black_box(a), black_box(b)));
            });
        }
        group.finish();
    }
}

fn batch_l2(c: &mut Criterion) {
    let mut group = c.benchmark_group("l2_squared_batch_1000");
    for dim in DIMS {
        let query = data(dim, 3);
        let query = query.as_slice();
        let rows = data(dim * BATCH_ROWS, 4);
        let rows = rows.as_slice();
        let mut out = vec![0.0f32; BATCH_ROWS];
        group.throughput(Throughput::Elements((dim * BATCH_ROWS) as u64));
        for (label, kernels) in simd_paths() {
            group.bench_with_input(BenchmarkId::new(label, dim), &dim, |bench, _| {
                bench
                    .iter(|| kernels.l2_squared_batch(black_box(query), black_box(rows), &mut out));
            });
        }
        group.bench_with_input(BenchmarkId::new("scalar-reference", dim), &dim, |bench, _| {
            bench.iter(|| scalar::l2_squared_batch(black_box(query), black_box(rows), &mut out));
        });
    }
    group.finish();
}

criterion_group!(benches, pairwise, batch_l2);
criterion_main!(benches);
