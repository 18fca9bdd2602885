//! FastScan blocks of 1-bit RaBitQ codes: every SIMD path gives the same estimates as the
//! scalar one, each within the tables' worst-case rounding of the codec's own estimate, and the
//! widened bound still covers the true distances.

mod common;

use common::{clustered, normalized, paths, quick, varied_rows};
use proptest::prelude::*;
use strata_quantize::{
    Codec, CodecKind, FASTSCAN_BLOCK, FastScanCodes, FastScanQuery, Isa, Kernels, Metric,
    QueryScratch,
};

fn encode_all(codec: &Codec, rows: &[f32]) -> Vec<u8> {
    let mut codes = vec![0u8; rows.len() / codec.dim() * codec.code_len()];
    codec.encode_batch(rows, &mut codes);
    codes
}

/// Estimates of every row on one path, block-aligned runs of uneven length.
fn scan(
    fast: &FastScanCodes,
    kernels: &Kernels,
    prepared: &strata_quantize::PreparedQuery<'_>,
    query: &FastScanQuery,
) -> Vec<f32> {
    let mut out = vec![0.0; fast.rows()];
    let mut first = 0;
    for (i, len) in
        [FASTSCAN_BLOCK * 3, FASTSCAN_BLOCK, 7 * FASTSCAN_BLOCK].iter().cycle().enumerate()
    {
        if first >= fast.rows() || i > 1_000 {
            break;
        }
        let end = (first + len).min(fast.rows());
        fast.distances_on(kernels, prepared, query, first, &mut out[first..end]);
        first = end;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every path equals the scalar path exactly (the table sums are integers), and each
    /// estimate lies within the tables' worst-case rounding (half a step per group) of the
    /// codec's own estimate of the same code.
    #[test]
    fn every_path_matches_the_codec_estimate(
        dim in 1usize..300,
        rows in 1usize..150,
        metric in prop::sample::select(Metric::ALL.to_vec()),
        seed in any::<u64>(),
    ) {
        check_paths(dim, rows, metric, seed)?;
    }
}

fn check_paths(dim: usize, n: usize, metric: Metric, seed: u64) -> Result<(), TestCaseError> {
    let rows = varied_rows(n.max(2), dim, metric, seed);
    let codec = Codec::train(CodecKind::RaBitQ { bits: 1 }, metric, dim, &rows, &quick()).unwrap();
    let codes = encode_all(&codec, &rows);
    let fast = FastScanCodes::build(&codec, &codes).expect("1-bit RaBitQ");
    prop_assert_eq!(fast.rows(), n.max(2));
    let groups = strata_quantize::codec::padded_dim(dim) / 4;
    let mut scratch = QueryScratch::default();
    let mut query = FastScanQuery::default();
    for q in [0, n.max(2) - 1] {
        let vector = &rows[q * dim..(q + 1) * dim];
        let prepared = codec.prepare(vector, &mut scratch);
        fast.prepare(&prepared, &mut query);
        let scalar = scan(&fast, &Kernels::for_isa(Isa::Scalar).unwrap(), &prepared, &query);
        for kernels in paths() {
            let got = scan(&fast, &kernels, &prepared, &query);
            prop_assert_eq!(&got, &scalar, "{} differs from scalar", kernels.isa());
        }
        for (row, code) in codes.chunks_exact(codec.code_len()).enumerate() {
            let exact = prepared.distance(code);
            let bound = prepared.error_bound(code).unwrap();
            let widened = fast.error_bound(&prepared, &query, row);
            prop_assert!(widened >= bound);
            // The widened bound's extra term is the rounding's standard deviation,
            // step·sqrt(groups/12); the worst case is half a step per group.
            let sigma = widened - bound;
            let worst = sigma * (3.0 * groups as f32).sqrt();
            let slack = 1e-4 * (exact.abs() + 1.0);
            prop_assert!(
                (scalar[row] - exact).abs() <= worst + slack,
                "dim {dim} row {row}: fastscan {} vs codec {exact} (worst rounding {worst})",
                scalar[row]
            );
        }
    }
    Ok(())
}

/// Dimensions whose table sums overflow 16 bits before the kernels flush them (more than 256
/// groups a lane: 2,048 coordinates on AVX2, 4,096 on AVX-512).
#[test]
fn wide_codes_flush_their_sums() {
    for dim in [2_100, 4_200] {
        check_paths(dim, 40, Metric::L2, 7).unwrap();
    }
}

/// Only 1-bit RaBitQ codes have a FastScan form.
#[test]
fn other_codecs_have_no_blocks() {
    let rows = clustered(300, 16, 4, 1);
    for kind in [CodecKind::Sq8, CodecKind::RaBitQ { bits: 2 }, CodecKind::Pq { subspaces: 4 }] {
        let codec = Codec::train(kind, Metric::L2, 16, &rows, &quick()).unwrap();
        assert!(FastScanCodes::build(&codec, &encode_all(&codec, &rows)).is_none(), "{kind}");
    }
}

/// The widened bound covers the truth as the codec's does (as many true distances within three
/// bounds, and at least 98%), and the ranking by estimate keeps the codec's code-only recall.
#[test]
fn widened_bounds_cover_true_distances() {
    for (dim, metric) in [(128, Metric::L2), (384, Metric::Cosine), (96, Metric::InnerProduct)] {
        let mut all = clustered(3_030, dim, 20, dim as u64);
        if metric == Metric::Cosine {
            all = normalized(all, dim);
        }
        let (rows, queries) = all.split_at(3_000 * dim);
        let codec =
            Codec::train(CodecKind::RaBitQ { bits: 1 }, metric, dim, rows, &quick()).unwrap();
        let codes = encode_all(&codec, rows);
        let fast = FastScanCodes::build(&codec, &codes).unwrap();
        let mut scratch = QueryScratch::default();
        let mut query = FastScanQuery::default();
        let (mut within, mut count, mut agree, mut total) = (0usize, 0usize, 0usize, 0usize);
        let mut codec_within = 0usize;
        let mut estimates = vec![0.0; fast.rows()];
        let mut codec_estimates = vec![0.0; fast.rows()];
        for vector in queries.chunks_exact(dim) {
            let prepared = codec.prepare(vector, &mut scratch);
            fast.prepare(&prepared, &mut query);
            fast.distances(&prepared, &query, 0, &mut estimates);
            prepared.distances(&codes, &mut codec_estimates);
            for (row, truth) in
                rows.chunks_exact(dim).map(|r| metric.distance(vector, r)).enumerate()
            {
                let bound = fast.error_bound(&prepared, &query, row);
                within += usize::from((estimates[row] - truth).abs() <= 3.0 * bound);
                let code = &codes[row * codec.code_len()..(row + 1) * codec.code_len()];
                let codec_bound = prepared.error_bound(code).unwrap();
                codec_within +=
                    usize::from((codec_estimates[row] - truth).abs() <= 3.0 * codec_bound);
                count += 1;
            }
            let top = |scores: &[f32]| {
                let mut order: Vec<usize> = (0..scores.len()).collect();
                order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
                order.truncate(10);
                order
            };
            let (ours, codec_top) = (top(&estimates), top(&codec_estimates));
            agree += ours.iter().filter(|row| codec_top.contains(row)).count();
            total += 10;
        }
        let coverage = within as f64 / count as f64;
        let codec_coverage = codec_within as f64 / count as f64;
        assert!(
            coverage >= 0.98 && coverage >= codec_coverage - 0.001,
            "{dim} {metric}: {coverage:.4} within three bounds, the codec's {codec_coverage:.4}"
        );
        let overlap = agree as f64 / total as f64;
        assert!(
            overlap >= 0.8,
            "{dim} {metric}: top-10 overlap with the codec's ranking {overlap:.3}"
        );
    }
}
