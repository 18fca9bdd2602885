//! The codecs: SIMD code distances against their scalar references on every supported path,
//! reconstruction bounds, ranking recall with and without rerank, the codebook format and its
//! failure modes, and training errors.

mod common;

use common::{clustered, normalized, paths, quick, uniform_rows, varied_rows};
use proptest::prelude::*;
use strata_quantize::codec::reference::decoded_distance;
use strata_quantize::{
    Codec, CodecKind, Metric, QuantizeError, QueryScratch, TrainOptions, scalar,
};

fn kinds(dim: usize) -> Vec<CodecKind> {
    let subspaces = (dim / 4).max(1);
    vec![
        CodecKind::Sq8,
        CodecKind::Int4,
        CodecKind::Pq { subspaces },
        CodecKind::Rpq { subspaces },
        CodecKind::RaBitQ { bits: 3 },
    ]
}

/// The metric distance in f64 and the magnitude its rounding scales with.
fn oracle(metric: Metric, query: &[f32], decoded: &[f32]) -> (f64, f64) {
    let dot: f64 = query.iter().zip(decoded).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
    let l2: f64 = query.iter().zip(decoded).map(|(&a, &b)| f64::from(a - b).powi(2)).sum();
    let magnitude: f64 = query
        .iter()
        .zip(decoded)
        .map(|(&a, &b)| (f64::from(a).abs() + f64::from(b).abs()).powi(2))
        .sum();
    let exact = match metric {
        Metric::L2 => l2,
        Metric::InnerProduct => -dot,
        Metric::Cosine => 0.5 * l2,
    };
    (exact, magnitude + 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every path, batch and single, and the folded scalar reference equal the metric's
    /// distance to the decoded code, up to rounding.
    #[test]
    fn simd_paths_match_the_references(
        dim in 1usize..80,
        kind in 0usize..3,
        metric in prop::sample::select(Metric::ALL.to_vec()),
        seed in any::<u64>(),
    ) {
        let kind = kinds(dim)[kind];
        let n = 300;
        let rows = varied_rows(n, dim, metric, seed);
        let codec = Codec::train(kind, metric, dim, &rows, &quick()).unwrap();
        let code_len = codec.code_len();
        let mut codes = vec![0u8; n * code_len];
        codec.encode_batch(&rows, &mut codes);
        let mut scratch = QueryScratch::default();
        for q in [0, 7, 150] {
            let query = &rows[q * dim..(q + 1) * dim];
            let prepared = codec.prepare(query, &mut scratch);
            for kernels in paths() {
                let mut batch = vec![0.0; n];
                prepared.distances_on(&kernels, &codes, &mut batch);
                // The same rows gathered in reverse order, four at a time and then singly.
                let reversed: Vec<u32> = (0..n as u32).rev().collect();
                let mut gathered = vec![0.0; n];
                prepared.distances_of_rows_on(&kernels, &codes, &reversed, &mut gathered);
                gathered.reverse();
                for (row, &got) in batch.iter().enumerate().step_by(13) {
                    let code = &codes[row * code_len..(row + 1) * code_len];
                    let mut decoded = vec![0.0; dim];
                    codec.decode(code, &mut decoded);
                    let (exact, magnitude) = oracle(metric, query, &decoded);
                    let tolerance = 2e-5 * magnitude;
                    let single = prepared.distance_on(&kernels, code);
                    let folded = prepared.distance_reference(code);
                    let decoded_ref = decoded_distance(&codec, query, code);
                    for (what, value) in [
                        ("batch", got),
                        ("gathered", gathered[row]),
                        ("single", single),
                        ("folded", folded),
                        ("decoded", decoded_ref),
                    ]
                    {
                        prop_assert!(
                            (f64::from(value) - exact).abs() <= tolerance,
                            "{} {kind} {metric} dim {dim} row {row}: {what} {value} vs {exact} (tolerance {tolerance})",
                            kernels.isa(),
                        );
                    }
                }
            }
        }
    }

    /// Arbitrary bytes never panic the decoder; they decode or give an error.
    #[test]
    fn decoder_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Codec::from_bytes(&bytes);
    }

    /// A valid codebook with any one byte changed or any suffix cut is refused, never
    /// accepted as a different codebook, and never panics.
    #[test]
    fn damaged_codebooks_are_refused(kind in 0usize..5, at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let dim = 12;
        let rows = clustered(400, dim, 4, 3);
        let codec = Codec::train(kinds(dim)[kind], Metric::L2, dim, &rows, &quick()).unwrap();
        let bytes = codec.to_bytes();
        let i = at.index(bytes.len());
        let mut flipped = bytes.clone();
        flipped[i] ^= flip;
        prop_assert!(Codec::from_bytes(&flipped).is_err(), "flip at {i} accepted");
        prop_assert!(Codec::from_bytes(&bytes[..i]).is_err(), "truncation to {i} accepted");
    }
}

#[test]
fn codebooks_round_trip_for_every_kind_and_metric() {
    let dim = 20;
    for metric in Metric::ALL {
        let mut rows = clustered(600, dim, 8, 11);
        if metric == Metric::Cosine {
            rows = normalized(rows, dim);
        }
        for kind in [
            CodecKind::Sq8,
            CodecKind::Int4,
            CodecKind::Pq { subspaces: 6 },
            CodecKind::Rpq { subspaces: 6 },
            CodecKind::RaBitQ { bits: 1 },
            CodecKind::RaBitQ { bits: 5 },
            CodecKind::RaBitQ { bits: 8 },
        ] {
            let codec = Codec::train(kind, metric, dim, &rows, &quick()).unwrap();
            let decoded = Codec::from_bytes(&codec.to_bytes()).unwrap();
            assert_eq!(decoded, codec, "{kind} {metric}");
            assert_eq!(decoded.kind(), kind);
            assert_eq!(decoded.metric(), metric);
        }
    }
}

/// Byte offsets of `docs/format/codebook.md`, so the spec and the code cannot drift apart.
#[test]
fn codebook_layout_matches_the_spec() {
    let dim = 10;
    let rows = clustered(300, dim, 4, 5);
    let codec =
        Codec::train(CodecKind::Pq { subspaces: 3 }, Metric::InnerProduct, dim, &rows, &quick())
            .unwrap();
    let bytes = codec.to_bytes();
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(&bytes[0..8], b"STRACODE");
    assert_eq!(u16_at(8), 1, "major");
    assert_eq!(u16_at(10), 2, "minor");
    assert_eq!(u32_at(12), 64, "header_len");
    assert_eq!(bytes[16], 3, "kind: PQ");
    assert_eq!(bytes[17], Metric::InnerProduct.code(), "metric");
    assert_eq!(bytes[18], 8, "bits");
    assert_eq!(u32_at(20), 10, "dim");
    assert_eq!(u32_at(24), 3, "code_len");
    assert_eq!(u32_at(28), 3, "subspaces");
    assert_eq!(u32_at(32), 256, "centroids");
    assert_eq!(u64_at(36), 256 * 10 * 4, "body_len");
    assert_eq!(u32_at(44), crc32fast::hash(&bytes[64..]), "body_crc32");
    assert_eq!(u32_at(60), crc32fast::hash(&bytes[..60]), "header_crc32");
    assert_eq!(bytes.len(), 64 + 256 * 10 * 4);
    // Sub-space 1 covers dimensions 3..6; its centroid 2 starts at 256 * 3 + 2 * 3 floats.
    let Codec::Pq(pq) = &codec else { panic!("trained PQ") };
    let at = 64 + 4 * (256 * 3 + 2 * 3);
    let first = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(first, pq.centroid(1, 2)[0]);

    let sq = Codec::train(CodecKind::Int4, Metric::L2, dim, &rows, &quick()).unwrap();
    let bytes = sq.to_bytes();
    assert_eq!((bytes[16], bytes[18]), (2, 4), "INT4: kind 2, 4-bit codes");
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 5, "INT4 code_len");
    let Codec::Int4(int4) = &sq else { panic!("trained INT4") };
    let step0 = f32::from_le_bytes(bytes[64 + 4 * dim..64 + 4 * dim + 4].try_into().unwrap());
    assert_eq!(step0, int4.step()[0], "steps follow the dim lower bounds");

    // RaBitQ: bits per coordinate, 64-multiple centroids, rounds at 48, the centroids and
    // then the rotation's sign bits in the body.
    let rows = clustered(500, 100, 4, 2);
    let options = quick().coarse_centroids(128);
    let codec =
        Codec::train(CodecKind::RaBitQ { bits: 3 }, Metric::L2, 100, &rows, &options).unwrap();
    let bytes = codec.to_bytes();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((bytes[16], bytes[18]), (5, 3), "RaBitQ: kind 5, 3 bits");
    assert_eq!(u32_at(24), 16 + 128 * 3 / 8, "code_len: prefix and 128 padded coordinates");
    assert_eq!((u32_at(28), u32_at(32), u32_at(48)), (0, 128, 3), "subspaces, centroids, rounds");
    let Codec::RaBitQ(rabitq) = &codec else { panic!("trained RaBitQ") };
    let signs = 3 * 128 / 8; // 128 coordinates: one power-of-two block per round
    assert_eq!(bytes.len(), 64 + 128 * 100 * 4 + signs);
    let centroid1 = f32::from_le_bytes(bytes[64 + 400..64 + 404].try_into().unwrap());
    assert_eq!(centroid1, rabitq.centroids()[100]);
    assert_eq!(&bytes[64 + 128 * 400..], rabitq.rotation().signs());
}

#[test]
fn newer_major_versions_are_refused_by_name() {
    let rows = clustered(300, 8, 4, 1);
    let codec = Codec::train(CodecKind::Sq8, Metric::L2, 8, &rows, &quick()).unwrap();
    let mut bytes = codec.to_bytes();
    bytes[8] = 2;
    let crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        Codec::from_bytes(&bytes),
        Err(QuantizeError::UnsupportedCodebookVersion { found: 2, supported: 1 })
    );
}

#[test]
fn training_errors_are_clear() {
    let rows = clustered(300, 8, 4, 1);
    let train = |kind, rows: &[f32], dim| Codec::train(kind, Metric::L2, dim, rows, &quick());
    assert!(matches!(
        train(CodecKind::Pq { subspaces: 2 }, &rows[..255 * 8], 8),
        Err(QuantizeError::TooFewRows { codec: "pq", needed: 256, found: 255 })
    ));
    assert!(matches!(
        train(CodecKind::Sq8, &[], 8),
        Err(QuantizeError::TooFewRows { needed: 1, found: 0, .. })
    ));
    let mut with_nan = rows.clone();
    with_nan[8 * 17 + 3] = f32::NAN;
    assert!(matches!(
        train(CodecKind::Int4, &with_nan, 8),
        Err(QuantizeError::NonFiniteTrainingValue { row: 17, index: 3, .. })
    ));
    with_nan[8 * 17 + 3] = f32::INFINITY;
    assert!(train(CodecKind::Pq { subspaces: 2 }, &with_nan, 8).is_err());
    for subspaces in [0, 9] {
        assert!(matches!(
            train(CodecKind::Pq { subspaces }, &rows, 8),
            Err(QuantizeError::InvalidParameter { name: "subspaces", .. })
        ));
    }
    assert!(matches!(
        train(CodecKind::Sq8, &rows[..7], 8),
        Err(QuantizeError::InvalidParameter { .. })
    ));
    assert!(matches!(train(CodecKind::Sq8, &rows, 0), Err(QuantizeError::InvalidParameter { .. })));
    // A range wider than f32::MAX still has a finite step.
    for metric in [Metric::L2, Metric::InnerProduct] {
        let codec = Codec::train(CodecKind::Sq8, metric, 1, &[-3e38, 3e38], &quick()).unwrap();
        let mut decoded = [0.0];
        codec.decode(&[255], &mut decoded);
        assert!(decoded[0] > 2.9e38, "{metric}: {}", decoded[0]);
    }
}

#[test]
fn codec_names_parse_and_print() {
    for (name, kind) in [
        ("sq8", CodecKind::Sq8),
        ("INT4", CodecKind::Int4),
        ("pq32", CodecKind::Pq { subspaces: 32 }),
        ("rpq32", CodecKind::Rpq { subspaces: 32 }),
        ("rabitq4", CodecKind::RaBitQ { bits: 4 }),
    ] {
        let parsed: CodecKind = name.parse().unwrap();
        assert_eq!(parsed, kind);
        assert_eq!(parsed.to_string(), name.to_ascii_lowercase());
    }
    for bad in ["sq4", "pq", "pqx", "rabitq", "rabitqx", ""] {
        assert!(bad.parse::<CodecKind>().is_err(), "{bad:?}");
    }
}

/// Scalar codecs: every component within half a step of its value, plus how far clipping moved
/// it; a constant dimension reconstructs exactly.
#[test]
fn scalar_reconstruction_is_within_half_a_step() {
    let dim = 33;
    for (name, mut rows) in
        [("uniform", uniform_rows(5000, dim, 2)), ("clustered", clustered(5000, dim, 10, 3))]
    {
        rows.iter_mut().skip(5).step_by(dim).for_each(|x| *x = 2.5); // dimension 5 constant
        for (kind, metric) in [
            (CodecKind::Sq8, Metric::L2),
            (CodecKind::Int4, Metric::L2),
            (CodecKind::Sq8, Metric::InnerProduct),
            (CodecKind::Int4, Metric::InnerProduct),
        ] {
            let codec = Codec::train(kind, metric, dim, &rows, &quick()).unwrap();
            let (Codec::Sq8(sq) | Codec::Int4(sq)) = &codec else { unreachable!() };
            let mut code = vec![0; codec.code_len()];
            let mut decoded = vec![0.0; dim];
            for row in rows.chunks_exact(dim) {
                codec.encode(row, &mut code);
                codec.decode(&code, &mut decoded);
                for d in 0..dim {
                    let (lower, step) = (sq.lower()[d], sq.step()[d]);
                    let upper = lower + f32::from(sq.max_code()) * step;
                    let clipped = row[d].clamp(lower, upper);
                    let bound = step / 2.0 * 1.001 + (row[d] - clipped).abs() + 1e-5 * upper.abs();
                    assert!(
                        (decoded[d] - row[d]).abs() <= bound,
                        "{name} {kind} dim {d}: {} decoded as {} (bound {bound})",
                        row[d],
                        decoded[d]
                    );
                }
                assert_eq!(decoded[5], 2.5, "{name} {kind}: a constant dimension is exact");
            }
        }
    }
}

/// PQ: each sub-vector decodes to its nearest centroid (checked by brute force), and the
/// reconstruction error is a small fraction of the data's variance.
#[test]
fn pq_encodes_to_the_nearest_centroid_and_reduces_error() {
    let dim = 24;
    for (name, rows) in
        [("uniform", uniform_rows(4000, dim, 4)), ("clustered", clustered(4000, dim, 16, 5))]
    {
        let codec =
            Codec::train(CodecKind::Pq { subspaces: 6 }, Metric::L2, dim, &rows, &quick()).unwrap();
        let Codec::Pq(pq) = &codec else { unreachable!() };
        let mut code = vec![0; 6];
        let mut decoded = vec![0.0; dim];
        let (mut error, mut variance) = (0.0f64, 0.0f64);
        let mean: Vec<f64> = (0..dim)
            .map(|d| rows.iter().skip(d).step_by(dim).map(|&x| f64::from(x)).sum::<f64>() / 4000.0)
            .collect();
        for row in rows.chunks_exact(dim).take(500) {
            codec.encode(row, &mut code);
            codec.decode(&code, &mut decoded);
            for (j, &c) in code.iter().enumerate() {
                let span = pq.subspace(j);
                let best = (0..=255u8)
                    .map(|c| scalar::l2_squared(&row[span.clone()], pq.centroid(j, c)))
                    .fold(f32::INFINITY, f32::min);
                let chosen = scalar::l2_squared(&row[span.clone()], pq.centroid(j, c));
                assert!(chosen <= best * (1.0 + 1e-5) + 1e-6, "{name}: sub-space {j} not nearest");
            }
            error += f64::from(scalar::l2_squared(row, &decoded));
            variance +=
                row.iter().zip(&mean).map(|(&x, &m)| (f64::from(x) - m).powi(2)).sum::<f64>();
        }
        let relative = error / variance;
        println!("pq6 on {name} 24-d: reconstruction error {relative:.4} of the variance");
        assert!(relative < 0.25, "{name}: relative error {relative}");
    }
}

#[test]
fn training_is_deterministic_whatever_the_thread_count() {
    let dim = 16;
    let rows = clustered(3000, dim, 8, 9);
    for kind in kinds(dim) {
        let one = Codec::train(kind, Metric::L2, dim, &rows, &quick().threads(1)).unwrap();
        let two = Codec::train(kind, Metric::L2, dim, &rows, &quick().threads(2)).unwrap();
        assert_eq!(one, two, "{kind}");
        let other_seed = Codec::train(kind, Metric::L2, dim, &rows, &quick().seed(1)).unwrap();
        if !matches!(kind, CodecKind::Sq8 | CodecKind::Int4) {
            assert_ne!(one, other_seed, "{kind}: the seed drives k-means++");
        }
    }
}

/// Recall@10 of ranking by codes alone, and after reranking the best `10 * rerank` by exact
/// distance, on clustered 128-d data.
fn recall(codec: &Codec, rows: &[f32], queries: &[f32], rerank: usize) -> f64 {
    let (dim, k) = (codec.dim(), 10);
    let metric = codec.metric();
    let n = rows.len() / dim;
    let mut codes = vec![0u8; n * codec.code_len()];
    codec.encode_batch(rows, &mut codes);
    let mut scratch = QueryScratch::default();
    let mut distances = vec![0.0; n];
    let mut hits = 0;
    let queries: Vec<&[f32]> = queries.chunks_exact(dim).collect();
    for query in &queries {
        let mut exact: Vec<(f32, usize)> = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, row)| (metric.distance(query, row), i))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: Vec<usize> = exact[..k].iter().map(|e| e.1).collect();

        codec.prepare(query, &mut scratch).distances(&codes, &mut distances);
        let mut by_code: Vec<(f32, usize)> = distances.iter().copied().zip(0..).collect();
        by_code.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut found: Vec<(f32, usize)> = by_code[..k * rerank]
            .iter()
            .map(|&(d, i)| {
                if rerank > 1 {
                    (metric.distance(query, &rows[i * dim..(i + 1) * dim]), i)
                } else {
                    (d, i)
                }
            })
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        hits += found[..k].iter().filter(|f| truth.contains(&f.1)).count();
    }
    hits as f64 / (queries.len() * k) as f64
}

#[test]
fn ranking_recall_with_and_without_rerank() {
    let dim = 128;
    let all = clustered(20_100, dim, 100, 21);
    let (rows, queries) = all.split_at(20_000 * dim);
    let queries = &queries[..100 * dim];
    for (kind, code_only_floor, rerank) in [
        (CodecKind::Sq8, 0.90, 2),
        (CodecKind::Int4, 0.45, 4),
        (CodecKind::Pq { subspaces: 32 }, 0.30, 16),
        (CodecKind::Rpq { subspaces: 32 }, 0.50, 8),
    ] {
        let codec = Codec::train(kind, Metric::L2, dim, rows, &TrainOptions::default()).unwrap();
        let alone = recall(&codec, rows, queries, 1);
        let reranked = recall(&codec, rows, queries, rerank);
        println!("{kind}: recall@10 by codes {alone:.4}, with rerank x{rerank} {reranked:.4}");
        assert!(alone >= code_only_floor, "{kind}: code-only recall {alone}");
        assert!(reranked >= 0.99, "{kind}: recall {reranked} after rerank x{rerank}");
    }
}

/// The same for inner product and cosine, smaller, so every metric is held to the bar.
#[test]
fn rerank_reaches_the_bar_for_every_metric() {
    let dim = 64;
    for metric in [Metric::InnerProduct, Metric::Cosine] {
        let mut all = clustered(8_050, dim, 40, 33);
        if metric == Metric::Cosine {
            all = normalized(all, dim);
        }
        let (rows, queries) = all.split_at(8_000 * dim);
        for (kind, rerank) in [
            (CodecKind::Sq8, 4),
            (CodecKind::Int4, 64),
            (CodecKind::Pq { subspaces: 16 }, 20),
            (CodecKind::Rpq { subspaces: 16 }, 20),
        ] {
            let codec = Codec::train(kind, metric, dim, rows, &TrainOptions::default()).unwrap();
            let reranked = recall(&codec, rows, queries, rerank);
            println!("{kind} {metric}: recall@10 with rerank x{rerank} {reranked:.4}");
            assert!(reranked >= 0.99, "{kind} {metric}: recall {reranked}");
        }
    }
}
