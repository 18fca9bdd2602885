//! Flat segments carrying quantized codes: round trips, the code search against a brute-force
//! oracle, and damage to the codebook or codes giving clear errors.

use proptest::prelude::*;
use strata_quantize::rng::SplitMix64;
use strata_quantize::{AdmitAll, AdmitIf};
use strata_quantize::{Codec, CodecKind, Metric, TopK, TrainOptions, normalize};
use strata_segment_flat::format::{
    SECTION_CODEBOOK, SECTION_CODES, SectionEntry, TRAILER_LEN, Trailer,
};
use strata_segment_flat::{
    CodeScratch, FileError, FlatSegment, FlatWriter, Problem, Rerank, SegmentError,
};
use strata_storage::framing::FOOTER_LEN;
use strata_storage::{MemoryStore, Storage};
use zerocopy::FromBytes;

fn rows(n: usize, dim: usize, metric: Metric, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed, 0);
    let mut data: Vec<f32> = (0..n * dim)
        // Clusters of 8 rows, so near neighbours exist and codes have ties to break.
        .map(|i| (rng.uniform() as f32 - 0.5) * 0.1 + ((i / dim / 8) % 5) as f32)
        .collect();
    if metric.needs_normalization() {
        data.chunks_exact_mut(dim).for_each(|v| normalize(v).unwrap());
    }
    data
}

fn id_of(row: usize) -> u64 {
    row as u64 * 5 + 1
}

fn write_with_codes(
    store: &dyn Storage,
    key: &str,
    kind: CodecKind,
    metric: Metric,
    dim: usize,
    data: &[f32],
) -> Codec {
    let options = TrainOptions::default().iterations(3).threads(1);
    let codec = Codec::train(kind, metric, dim, data, &options).unwrap();
    let n = data.len() / dim;
    let mut writer =
        FlatWriter::with_codec(store, key, dim, metric, n as u64, codec.clone()).unwrap();
    for (row, vector) in data.chunks_exact(dim).enumerate() {
        writer.push(id_of(row), vector).unwrap();
    }
    writer.finish().unwrap();
    codec
}

/// 1-bit RaBitQ codes are scanned through their FastScan copy, the others in place.
fn kinds(dim: usize) -> [CodecKind; 5] {
    [
        CodecKind::Sq8,
        CodecKind::Int4,
        CodecKind::Pq { subspaces: dim / 2 },
        CodecKind::RaBitQ { bits: 2 },
        CodecKind::RaBitQ { bits: 1 },
    ]
}

#[test]
fn codes_round_trip_and_match_the_codec() {
    let (dim, n) = (12, 300);
    for metric in Metric::ALL {
        let data = rows(n, dim, metric, 1);
        for kind in kinds(dim) {
            let store = MemoryStore::new();
            let codec = write_with_codes(&store, "s", kind, metric, dim, &data);
            let segment = FlatSegment::open(&store, "s").unwrap();
            assert_eq!(segment.codec(), Some(&codec));
            let codes = segment.codes().unwrap().unwrap();
            assert_eq!(codes.len(), n * codec.code_len());
            let mut expected = vec![0u8; codec.code_len()];
            for (row, code) in codes.chunks_exact(codec.code_len()).enumerate() {
                codec.encode(&data[row * dim..(row + 1) * dim], &mut expected);
                assert_eq!(code, &expected[..], "{kind} {metric} row {row}");
            }
            assert!(segment.code_bytes() >= codes.len());
            segment.verify().unwrap();
            // The vectors are still there for exact search.
            assert_eq!(segment.vector(7).unwrap(), &data[7 * dim..8 * dim]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Reranking every row is exact: the code search then equals brute force, with deletions.
    /// With a small rerank, every result is still a live row at its exact distance.
    #[test]
    fn code_search_with_full_rerank_is_exact(
        kind in 0usize..5,
        metric in prop::sample::select(Metric::ALL.to_vec()),
        k in 1usize..12,
        seed in any::<u64>(),
        skip_every in 2usize..7,
    ) {
        let (dim, n) = (8, 260);
        let data = rows(n, dim, metric, seed);
        let store = MemoryStore::new();
        write_with_codes(&store, "s", kinds(dim)[kind], metric, dim, &data);
        let segment = FlatSegment::open(&store, "s").unwrap();
        let query = rows(1, dim, metric, seed ^ 0xABCD);
        let skip = |row: u32| (row as usize).is_multiple_of(skip_every);

        let mut exact: Vec<(f32, u64)> = (0..n)
            .filter(|&row| !skip(row as u32))
            .map(|row| (metric.distance(&query, &data[row * dim..(row + 1) * dim]), id_of(row)))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

        let mut scratch = CodeScratch::default();
        let mut top = TopK::new(k);
        segment.search_codes(&query, Rerank::by(n).with_confidence(f32::INFINITY), &AdmitIf(|row| !skip(row)), &mut top, &mut scratch).unwrap();
        let got: Vec<(f32, u64)> = top.into_sorted_vec().iter().map(|n| (n.distance, n.id)).collect();
        prop_assert_eq!(got, exact[..k].to_vec());

        let mut top = TopK::new(k);
        segment.search_codes(&query, Rerank::by(2), &AdmitIf(|row| !skip(row)), &mut top, &mut scratch).unwrap();
        let found = top.into_sorted_vec();
        prop_assert_eq!(found.len(), k);
        for neighbor in found {
            let row = ((neighbor.id - 1) / 5) as usize;
            prop_assert!(!skip(row as u32));
            let distance = metric.distance(&query, &data[row * dim..(row + 1) * dim]);
            prop_assert_eq!(neighbor.distance, distance);
        }
    }
}

#[test]
fn code_search_needs_codes_and_the_right_dimension() {
    let store = MemoryStore::new();
    let data = rows(10, 4, Metric::L2, 3);
    let mut writer = FlatWriter::new(&store, "plain", 4, Metric::L2, 10).unwrap();
    for (row, v) in data.chunks_exact(4).enumerate() {
        writer.push(id_of(row), v).unwrap();
    }
    writer.finish().unwrap();
    let plain = FlatSegment::open(&store, "plain").unwrap();
    assert!(plain.codec().is_none() && plain.codes().unwrap().is_none());
    let err = plain
        .search_codes(
            &[0.0; 4],
            Rerank::by(4),
            &AdmitAll,
            &mut TopK::new(3),
            &mut CodeScratch::default(),
        )
        .unwrap_err();
    assert!(matches!(err, SegmentError::NoCodes { .. }), "{err}");

    let data = rows(300, 4, Metric::L2, 3);
    write_with_codes(&store, "coded", CodecKind::Sq8, Metric::L2, 4, &data);
    let coded = FlatSegment::open(&store, "coded").unwrap();
    let err = coded
        .search_codes(
            &[0.0; 5],
            Rerank::by(4),
            &AdmitAll,
            &mut TopK::new(3),
            &mut CodeScratch::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, SegmentError::File(FileError::DimensionMismatch { expected: 4, found: 5 })),
        "{err}"
    );
}

#[test]
fn writer_refuses_a_codec_for_another_shape() {
    let store = MemoryStore::new();
    let data = rows(300, 6, Metric::L2, 4);
    let options = TrainOptions::default().iterations(1);
    let codec = Codec::train(CodecKind::Sq8, Metric::L2, 6, &data, &options).unwrap();
    for (dim, metric) in [(5, Metric::L2), (6, Metric::InnerProduct)] {
        let err = FlatWriter::with_codec(&store, "s", dim, metric, 1, codec.clone()).unwrap_err();
        assert!(matches!(err, SegmentError::InvalidParameter(_)), "{err}");
    }
}

fn section(bytes: &[u8], kind: u32) -> std::ops::Range<usize> {
    let body_len = bytes.len() - FOOTER_LEN;
    let trailer = Trailer::read_from_bytes(&bytes[body_len - TRAILER_LEN..body_len]).unwrap();
    let dir = trailer.directory_offset.get() as usize;
    let entries = <[SectionEntry]>::ref_from_bytes(&bytes[dir..body_len - TRAILER_LEN]).unwrap();
    let entry = entries.iter().find(|e| e.kind.get() == kind).unwrap();
    entry.offset.get() as usize..(entry.offset.get() + entry.len.get()) as usize
}

/// Codebook damage is refused at open; codes damage at their first use; nothing panics.
#[test]
fn every_flipped_byte_of_the_codebook_or_codes_is_an_error() {
    let store = MemoryStore::new();
    let dim = 6;
    let data = rows(260, dim, Metric::L2, 5);
    write_with_codes(&store, "s", CodecKind::Pq { subspaces: 3 }, Metric::L2, dim, &data);
    let original = store.get("s").unwrap().to_vec();
    let (codebook, codes) =
        (section(&original, SECTION_CODEBOOK), section(&original, SECTION_CODES));
    assert_eq!(codebook.start % 8, 0);
    assert_eq!(codes.start % 64, 0, "codes are 64-byte aligned");
    // Every codebook byte, and a spread of code bytes.
    for at in codebook.clone().chain(codes.clone().step_by(37)) {
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        store.put("s", &bytes).unwrap();
        match FlatSegment::open(&store, "s") {
            Err(err) => assert!(codebook.contains(&at), "byte {at}: {err}"),
            Ok(segment) => {
                assert!(codes.contains(&at), "codebook byte {at} flipped unnoticed");
                let err = segment
                    .search_codes(
                        &[0.0; 6],
                        Rerank::by(2),
                        &AdmitAll,
                        &mut TopK::new(3),
                        &mut CodeScratch::default(),
                    )
                    .unwrap_err();
                assert!(
                    matches!(
                        &err,
                        SegmentError::File(FileError::Corrupt {
                            problem: Problem::SectionChecksum { kind: 4 },
                            ..
                        })
                    ),
                    "byte {at}: {err}"
                );
                assert!(segment.verify().is_err());
            }
        }
    }
}

/// RaBitQ's bound skips most of a large rerank pool and keeps nearly every result a full rerank
/// of that pool finds; with an infinite confidence it reranks the whole pool. 1-bit codes go
/// through the FastScan copy, whose bounds carry its tables' rounding.
#[test]
fn error_bounds_prune_the_rerank() {
    let (dim, n, k) = (32, 3000, 10);
    let data = rows(n, dim, Metric::L2, 8);
    for (bits, pool, most_reranked) in [(4, 20, 0.25), (1, 40, 0.5)] {
        let store = MemoryStore::new();
        write_with_codes(&store, "s", CodecKind::RaBitQ { bits }, Metric::L2, dim, &data);
        let segment = FlatSegment::open(&store, "s").unwrap();
        let mut scratch = CodeScratch::default();
        let (mut found, mut kept, mut reranked) = (0, 0, 0);
        for q in 0..50 {
            let query = rows(1, dim, Metric::L2, 1000 + q);
            let search = |rerank: Rerank, scratch: &mut CodeScratch| {
                let mut top = TopK::new(k);
                segment.search_codes(&query, rerank, &AdmitAll, &mut top, scratch).unwrap();
                top.into_sorted_vec().iter().map(|n| n.id).collect::<Vec<_>>()
            };
            let full = search(Rerank::by(pool).with_confidence(f32::INFINITY), &mut scratch);
            assert_eq!(scratch.reranked(), pool * k, "an infinite confidence reranks the pool");
            let pruned = search(Rerank::by(pool).with_confidence(3.0), &mut scratch);
            reranked += scratch.reranked();
            found += full.len();
            kept += pruned.iter().filter(|id| full.contains(id)).count();
        }
        let (kept, reranked) =
            (kept as f64 / found as f64, reranked as f64 / (50 * pool * k) as f64);
        println!(
            "{bits} bits, confidence 3: {kept:.3} of the full rerank's results, {reranked:.3} of the pool reranked"
        );
        assert!(kept >= 0.99, "{bits} bits: kept {kept}");
        assert!(reranked <= most_reranked, "{bits} bits: reranked {reranked} of the pool");
    }
}
