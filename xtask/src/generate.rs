//! `cargo xtask gen`: seeded synthetic data sets with exact ground truth.
//!
//! `clustered` is a Gaussian mixture shaped like embedding data: many clusters of varied size and
//! spread, each spread over a low-dimensional random subspace (plus a little isotropic noise), so
//! neighbourhoods have the low intrinsic dimension of real embeddings. Uniform noise would be
//! unrealistically hard for graph indexes and hide bugs that real data shows.

use std::path::{Path, PathBuf};
use std::time::Instant;

use strata_quantize::Metric;

use crate::exact::ExactIndex;
use crate::rng::Rng;
use crate::vecs::{Vectors, write_fvecs, write_ivecs};

/// Neighbours stored per query in `groundtruth.ivecs`.
pub const GROUND_TRUTH_K: usize = 100;

/// Kinds of data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A Gaussian mixture: many clusters of varied spread over low-dimensional subspaces.
    Clustered,
}

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Kind of data set.
    #[arg(long, value_enum, default_value = "clustered")]
    pub kind: Kind,
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Query vectors (drawn from the same mixture, never copies of base rows).
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Metric of the ground truth: l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Clusters [default: n / 500, between 16 and 4096].
    #[arg(long)]
    pub clusters: Option<usize>,
    /// Seed; the same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threads for generation and ground truth [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output directory (created if missing): base.fvecs, query.fvecs, groundtruth.ivecs.
    #[arg(long)]
    pub out: PathBuf,
}

/// One mixture component.
struct Cluster {
    center: Vec<f32>,
    /// `dim x rank`, row-major: maps a latent point into the data space.
    basis: Vec<f32>,
    spread: f32,
}

struct Mixture {
    dim: usize,
    rank: usize,
    clusters: Vec<Cluster>,
    /// Cumulative cluster weights, ending at 1.
    cumulative: Vec<f64>,
}

/// Stream ids that keep the draws of base rows, query rows and clusters apart.
const BASE_STREAM: u64 = 0;
const QUERY_STREAM: u64 = 1 << 40;
const CLUSTER_STREAM: u64 = 2 << 40;

impl Mixture {
    fn new(dim: usize, clusters: usize, seed: u64) -> Self {
        let rank = (dim / 8).clamp(2.min(dim), 32);
        let mut weights = Vec::with_capacity(clusters);
        let clusters: Vec<Cluster> = (0..clusters)
            .map(|c| {
                let mut rng = Rng::new(seed, CLUSTER_STREAM + c as u64);
                // Exponential weights: some clusters several times larger than others.
                weights.push(-(1.0 - rng.uniform()).ln());
                // Spreads over a 6x range, log-uniform.
                let spread = (0.1f64.ln() + rng.uniform() * 6f64.ln()).exp() as f32;
                let center = (0..dim).map(|_| rng.normal() as f32).collect();
                let scale = 1.0 / (rank as f64).sqrt();
                let basis = (0..dim * rank).map(|_| (rng.normal() * scale) as f32).collect();
                Cluster { center, basis, spread }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        *cumulative.last_mut().expect("at least one cluster") = 1.0;
        Mixture { dim, rank, clusters, cumulative }
    }

    /// Draws the point of `stream` into `out`.
    fn sample(&self, seed: u64, stream: u64, latent: &mut [f32], out: &mut [f32]) {
        let mut rng = Rng::new(seed, stream);
        let u = rng.uniform();
        let cluster = &self.clusters
            [self.cumulative.partition_point(|&c| c < u).min(self.clusters.len() - 1)];
        for z in latent.iter_mut() {
            *z = rng.normal() as f32;
        }
        let noise = 0.1 * cluster.spread;
        for (d, x) in out.iter_mut().enumerate() {
            let row = &cluster.basis[d * self.rank..(d + 1) * self.rank];
            let along: f32 = row.iter().zip(latent.iter()).map(|(b, z)| b * z).sum();
            *x = cluster.center[d] + cluster.spread * along + noise * rng.normal() as f32;
        }
    }

    /// `rows` points of `stream_base + i`, generated on `threads` threads.
    fn sample_many(&self, seed: u64, stream_base: u64, rows: usize, threads: usize) -> Vec<f32> {
        let mut data = vec![0.0f32; rows * self.dim];
        let per_thread = rows.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (t, chunk) in data.chunks_mut(per_thread * self.dim).enumerate() {
                scope.spawn(move || {
                    let mut latent = vec![0.0f32; self.rank];
                    for (i, out) in chunk.chunks_exact_mut(self.dim).enumerate() {
                        let row = (t * per_thread + i) as u64;
                        self.sample(seed, stream_base + row, &mut latent, out);
                    }
                });
            }
        });
        data
    }
}

/// Exact top-`k` ids of every query, nearest first, on `threads` threads.
pub fn ground_truth(
    index: &ExactIndex,
    queries: &Vectors<f32>,
    k: usize,
    threads: usize,
) -> Vectors<i32> {
    let k = k.min(index.rows());
    let mut ids = vec![0i32; queries.rows() * k];
    let per_thread = queries.rows().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (t, chunk) in ids.chunks_mut(per_thread * k).enumerate() {
            scope.spawn(move || {
                let mut scratch = index.scratch();
                let mut found = Vec::with_capacity(k);
                for (i, out) in chunk.chunks_exact_mut(k).enumerate() {
                    index.search_direct(
                        queries.row(t * per_thread + i),
                        k,
                        &mut scratch,
                        &mut found,
                    );
                    for (slot, n) in out.iter_mut().zip(&found) {
                        *slot = i32::try_from(n.id).expect("row ids fit i32");
                    }
                }
            });
        }
    });
    Vectors { dim: k, data: ids }
}

/// Validated sizes, or why they are unusable.
fn check(args: &GenArgs) -> Result<(), String> {
    if args.n == 0 || args.queries == 0 || args.dim == 0 {
        return Err("--n, --queries and --dim must be positive".into());
    }
    if args.n > i32::MAX as usize {
        return Err("--n must fit the i32 ids of groundtruth.ivecs".into());
    }
    if args.clusters == Some(0) {
        return Err("--clusters must be positive".into());
    }
    Ok(())
}

/// Runs `cargo xtask gen`.
pub fn run(args: &GenArgs) -> Result<(), Box<dyn std::error::Error>> {
    check(args)?;
    let threads = args.threads.unwrap_or_else(crate::all_cores);
    let clusters = args.clusters.unwrap_or((args.n / 500).clamp(16, 4096));
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let started = Instant::now();
    let mixture = Mixture::new(args.dim, clusters, args.seed);
    let base = Vectors {
        dim: args.dim,
        data: mixture.sample_many(args.seed, BASE_STREAM, args.n, threads),
    };
    let queries = Vectors {
        dim: args.dim,
        data: mixture.sample_many(args.seed, QUERY_STREAM, args.queries, threads),
    };
    write_fvecs(&args.out.join("base.fvecs"), &base)?;
    write_fvecs(&args.out.join("query.fvecs"), &queries)?;
    let generated = started.elapsed();
    let index = ExactIndex::new(args.metric, args.dim, base.data)?;
    let truth = ground_truth(&index, &queries, GROUND_TRUTH_K, threads);
    write_ivecs(&args.out.join("groundtruth.ivecs"), &truth)?;
    eprintln!(
        "wrote {} base and {} query vectors ({} clusters, dim {}) and top-{} {} ground truth to {} \
         in {:.1?} (+{:.1?} for ground truth on {threads} threads)",
        args.n,
        args.queries,
        clusters,
        args.dim,
        truth.dim,
        args.metric,
        display(&args.out),
        generated,
        started.elapsed() - generated,
    );
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, threads: usize) -> GenArgs {
        GenArgs {
            kind: Kind::Clustered,
            n: 3000,
            dim: 24,
            queries: 50,
            metric: Metric::L2,
            clusters: Some(20),
            seed: 9,
            threads: Some(threads),
            out: dir.to_owned(),
        }
    }

    #[test]
    fn deterministic_whatever_the_thread_count() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(&args(a.path(), 1)).unwrap();
        run(&args(b.path(), 3)).unwrap();
        for file in ["base.fvecs", "query.fvecs", "groundtruth.ivecs"] {
            let (x, y) = (
                std::fs::read(a.path().join(file)).unwrap(),
                std::fs::read(b.path().join(file)).unwrap(),
            );
            assert!(x == y && !x.is_empty(), "{file} differs between thread counts");
        }
    }

    #[test]
    fn clustered_data_has_clusters() {
        let mixture = Mixture::new(32, 10, 1);
        let data = mixture.sample_many(1, BASE_STREAM, 2000, 2);
        let rows: Vec<&[f32]> = data.chunks_exact(32).collect();
        // Nearest-neighbour distances are far below typical pairwise ones, unlike uniform noise.
        let dist =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let mut nn = Vec::new();
        let mut typical = Vec::new();
        for i in 0..200 {
            let others = (0..rows.len()).filter(|&j| j != i).map(|j| dist(rows[i], rows[j]));
            nn.push(others.clone().fold(f32::INFINITY, f32::min));
            typical.push(dist(rows[i], rows[(i * 7 + 13) % rows.len()]));
        }
        nn.sort_by(f32::total_cmp);
        typical.sort_by(f32::total_cmp);
        assert!(
            nn[100] * 10.0 < typical[100],
            "median nn {} vs median pair {}",
            nn[100],
            typical[100]
        );
    }

    #[test]
    fn ground_truth_is_exact_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        run(&args(dir.path(), 2)).unwrap();
        let base = crate::input::read_vectors(&dir.path().join("base.fvecs")).unwrap();
        let queries = crate::input::read_vectors(&dir.path().join("query.fvecs")).unwrap();
        let truth = crate::vecs::read_ivecs(&dir.path().join("groundtruth.ivecs")).unwrap();
        assert_eq!((base.rows(), queries.rows(), truth.rows(), truth.dim), (3000, 50, 50, 100));
        for q in [0, 17, 49] {
            let mut all: Vec<(f32, i32)> = (0..base.rows())
                .map(|r| {
                    (strata_quantize::scalar::l2_squared(queries.row(q), base.row(r)), r as i32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let expected: Vec<i32> = all[..100].iter().map(|p| p.1).collect();
            // The SIMD and scalar sums may round differently; compare as sets of the top 10
            // and check the order by exact distances.
            let got = truth.row(q);
            assert_eq!(
                got[..10].iter().collect::<std::collections::BTreeSet<_>>(),
                expected[..10].iter().collect()
            );
            let d: Vec<f32> = got
                .iter()
                .map(|&r| strata_quantize::scalar::l2_squared(queries.row(q), base.row(r as usize)))
                .collect();
            assert!(d.windows(2).all(|w| w[0] <= w[1] * (1.0 + 1e-5)), "query {q} not sorted");
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(dir.path(), 1);
        a.n = 0;
        assert!(run(&a).is_err());
    }
}
