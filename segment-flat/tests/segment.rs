//! Flat segments: round trips, exact search against a brute-force oracle, and every kind of
//! damage to the object giving a clear error instead of a panic or a wrong answer.

use proptest::prelude::*;
use strata_quantize::rng::SplitMix64;
use strata_quantize::{Admission, AdmitAll, AdmitIf};
use strata_quantize::{Metric, TopK, normalize};
use strata_segment_flat::format::{
    FORMAT, SECTION_ENTRY_LEN, SECTION_REQUIRED, SectionEntry, TRAILER_LEN, Trailer,
};
use strata_segment_flat::{
    AttributeSections, Expected, FileError, FlatSegment, FlatWriter, Problem, SegmentError,
    encode_payloads,
};
use strata_storage::framing::{FOOTER_LEN, frame};
use strata_storage::{Error as StorageError, MemoryStore, Storage};
use zerocopy::{FromBytes, IntoBytes};

/// Admits the rows it lists.
struct Listed(Vec<u32>);

impl Admission for Listed {
    fn admits(&self, row: u32) -> bool {
        self.0.binary_search(&row).is_ok()
    }

    fn rows(&self) -> Option<&[u32]> {
        Some(&self.0)
    }
}

struct Rows {
    ids: Vec<u64>,
    vectors: Vec<Vec<f32>>,
}

fn rows(n: usize, dim: usize, metric: Metric, seed: u64) -> Rows {
    let mut rng = SplitMix64::new(seed, 0);
    let mut next = move || rng.uniform() as f32 - 0.5;
    let vectors = (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
            if metric.needs_normalization() {
                normalize(&mut v).unwrap();
            }
            v
        })
        .collect();
    Rows { ids: (0..n as u64).map(|i| i * 7 + 3).collect(), vectors }
}

fn write(store: &dyn Storage, key: &str, metric: Metric, data: &Rows) -> Expected {
    write_dim(store, key, metric, data, data.vectors.first().map_or(4, Vec::len))
}

fn write_dim(store: &dyn Storage, key: &str, metric: Metric, data: &Rows, dim: usize) -> Expected {
    let mut writer = FlatWriter::new(store, key, dim, metric, data.ids.len() as u64).unwrap();
    for (id, v) in data.ids.iter().zip(&data.vectors) {
        writer.push(*id, v).unwrap();
    }
    let written = writer.finish().unwrap();
    assert_eq!(written.size, store.size(key).unwrap());
    Expected { dim, metric, rows: written.rows, size: written.size, crc32: written.crc32 }
}

fn brute_force(data: &Rows, metric: Metric, query: &[f32], k: usize, skip: &[bool]) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .ids
        .iter()
        .zip(&data.vectors)
        .enumerate()
        .filter(|(row, _)| !skip[*row])
        .map(|(_, (&id, v))| (metric.distance(query, v), id))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

#[test]
fn round_trip_reads_back_every_row_and_checks_the_manifest_facts() {
    let store = MemoryStore::new();
    let data = rows(300, 19, Metric::L2, 1);
    let expected = write(&store, "seg/1.flat", Metric::L2, &data);
    let segment = FlatSegment::open_expected(&store, "seg/1.flat", &expected).unwrap();
    assert_eq!((segment.rows(), segment.dim(), segment.metric()), (300, 19, Metric::L2));
    assert_eq!(segment.ids().collect::<Vec<_>>(), data.ids);
    for (row, v) in data.vectors.iter().enumerate() {
        assert_eq!(segment.vector(row as u32).unwrap(), &v[..]);
        assert_eq!(segment.id(row as u32), data.ids[row]);
    }
    segment.verify().unwrap();

    for (field, wrong) in [
        ("size", Expected { size: expected.size + 1, ..expected }),
        ("checksum", Expected { crc32: expected.crc32 ^ 1, ..expected }),
        ("dimension", Expected { dim: 18, ..expected }),
        ("metric", Expected { metric: Metric::Cosine, ..expected }),
        ("row count", Expected { rows: 299, ..expected }),
    ] {
        match segment.check(&wrong) {
            Err(SegmentError::File(FileError::Mismatch { field: got, object, .. })) => {
                assert_eq!((got, object.as_str()), (field, "seg/1.flat"));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn empty_segments_are_valid() {
    let store = MemoryStore::new();
    let data = Rows { ids: vec![], vectors: vec![] };
    let expected = write(&store, "e", Metric::Cosine, &data);
    let segment = FlatSegment::open_expected(&store, "e", &expected).unwrap();
    let mut top = TopK::new(3);
    segment.search(&[1.0, 0.0, 0.0, 0.0], &AdmitAll, &mut top, &mut Vec::new()).unwrap();
    assert!(top.is_empty());
}

#[test]
fn writer_refuses_wrong_row_counts_and_dimensions() {
    let store = MemoryStore::new();
    let mut writer = FlatWriter::new(&store, "w", 3, Metric::L2, 1).unwrap();
    assert!(matches!(
        writer.push(1, &[1.0, 2.0]),
        Err(SegmentError::File(FileError::DimensionMismatch { expected: 3, found: 2 }))
    ));
    writer.push(1, &[1.0, 2.0, 3.0]).unwrap();
    assert!(matches!(writer.push(2, &[1.0, 2.0, 3.0]), Err(SegmentError::RowCount { .. })));

    let short = FlatWriter::new(&store, "short", 3, Metric::L2, 2).unwrap();
    assert!(matches!(short.finish(), Err(SegmentError::RowCount { announced: 2, written: 0, .. })));
    assert!(store.size("short").unwrap_err().is_not_found(), "nothing published");
    assert!(matches!(
        FlatWriter::new(&store, "zero", 0, Metric::L2, 0),
        Err(SegmentError::InvalidParameter(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The scan returns exactly the brute-force top k over the rows not skipped.
    #[test]
    fn search_matches_brute_force(
        n in 0usize..700,
        dim in 1usize..40,
        k in 1usize..20,
        metric_index in 0usize..3,
        seed in any::<u64>(),
        skip_every in 1usize..6,
    ) {
        let metric = Metric::ALL[metric_index];
        let store = MemoryStore::new();
        let data = rows(n, dim, metric, seed);
        let expected = write_dim(&store, "s", metric, &data, dim);
        let segment = FlatSegment::open_expected(&store, "s", &expected).unwrap();
        let skip: Vec<bool> = (0..n).map(|row| row % skip_every == 1).collect();
        let query = rows(1, dim, metric, seed ^ 0xABCD).vectors.remove(0);

        let mut top = TopK::new(k);
        let mut scratch = Vec::new();
        segment.search(&query, &AdmitIf(|row| !skip[row as usize]), &mut top, &mut scratch).unwrap();
        let got: Vec<u64> = top.into_sorted_vec().iter().map(|n| n.id).collect();
        prop_assert_eq!(&got, &brute_force(&data, metric, &query, k, &skip));

        // The same rows listed: the scan reads only those.
        let listed = Listed((0..n as u32).filter(|&row| !skip[row as usize]).collect());
        let mut top = TopK::new(k);
        segment.search(&query, &listed, &mut top, &mut scratch).unwrap();
        let listed_got: Vec<u64> = top.into_sorted_vec().iter().map(|n| n.id).collect();
        prop_assert_eq!(listed_got, got);
    }
}

fn sample_object() -> (MemoryStore, Vec<u8>, Expected) {
    let store = MemoryStore::new();
    let data = rows(40, 5, Metric::InnerProduct, 9);
    let expected = write(&store, "s", Metric::InnerProduct, &data);
    let bytes = store.get("s").unwrap().to_vec();
    (store, bytes, expected)
}

/// The vector block's byte range, read from the directory of a valid object.
fn vector_block(bytes: &[u8]) -> std::ops::Range<usize> {
    let body_len = bytes.len() - FOOTER_LEN;
    let trailer = Trailer::read_from_bytes(&bytes[body_len - TRAILER_LEN..body_len]).unwrap();
    let dir = trailer.directory_offset.get() as usize;
    let entries = <[SectionEntry]>::ref_from_bytes(&bytes[dir..body_len - TRAILER_LEN]).unwrap();
    let vectors = entries.iter().find(|e| e.kind.get() == 1).unwrap();
    vectors.offset.get() as usize..(vectors.offset.get() + vectors.len.get()) as usize
}

#[test]
fn every_flipped_bit_is_an_error_at_open_first_use_or_scrub() {
    let (store, original, expected) = sample_object();
    let vectors = vector_block(&original);
    for at in 0..original.len() {
        let mut bytes = original.clone();
        bytes[at] ^= 1 << (at % 8);
        store.put("s", &bytes).unwrap();
        let opened = FlatSegment::open_expected(&store, "s", &expected);
        if vectors.contains(&at) {
            // Opening does not read vectors; the first use does, and refuses.
            let segment = opened.unwrap_or_else(|e| panic!("byte {at}: {e}"));
            let mut top = TopK::new(3);
            let err = segment.search(&[0.1; 5], &AdmitAll, &mut top, &mut Vec::new()).unwrap_err();
            assert!(
                matches!(
                    &err,
                    SegmentError::File(FileError::Corrupt {
                        problem: Problem::SectionChecksum { kind: 1 },
                        ..
                    })
                ),
                "byte {at}: {err}"
            );
            assert!(segment.vector(0).is_err() && segment.verify().is_err());
        } else {
            // Everything else is checked at open (padding at the latest by a scrub).
            let caught = match opened {
                Err(e) => {
                    assert!(
                        e.to_string().contains("\"s\""),
                        "byte {at}: error names the object: {e}"
                    );
                    true
                }
                Ok(segment) => segment.verify().is_err(),
            };
            assert!(caught, "byte {at} flipped unnoticed");
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let (store, original, expected) = sample_object();
    for len in 0..original.len() {
        store.put("s", &original[..len]).unwrap();
        assert!(FlatSegment::open(&store, "s").is_err(), "truncated to {len}");
        assert!(FlatSegment::open_expected(&store, "s", &expected).is_err());
    }
}

/// Rebuilds `original` with one more section of `kind`/`flags` before the directory.
fn with_extra_section(original: &[u8], kind: u32, flags: u32) -> Vec<u8> {
    let body_len = original.len() - FOOTER_LEN;
    let trailer = Trailer::read_from_bytes(&original[body_len - TRAILER_LEN..body_len]).unwrap();
    let dir = trailer.directory_offset.get() as usize;
    let mut entries =
        <[SectionEntry]>::ref_from_bytes(&original[dir..body_len - TRAILER_LEN]).unwrap().to_vec();
    let payload = [0xEEu8; 24];
    let mut body = original[..dir].to_vec();
    entries.push(SectionEntry {
        kind: kind.into(),
        flags: flags.into(),
        offset: (body.len() as u64).into(),
        len: (payload.len() as u64).into(),
        crc32: crc32fast::hash(&payload).into(),
        reserved: 0.into(),
    });
    body.extend_from_slice(&payload);
    let dir_offset = body.len() as u64;
    body.extend_from_slice(entries.as_bytes());
    let trailer = Trailer {
        directory_offset: dir_offset.into(),
        section_count: (entries.len() as u32).into(),
        directory_crc32: crc32fast::hash(entries.as_bytes()).into(),
    };
    assert_eq!(entries.as_bytes().len(), entries.len() * SECTION_ENTRY_LEN);
    body.extend_from_slice(trailer.as_bytes());
    frame(&FORMAT, 0, &body)
}

#[test]
fn unknown_optional_sections_are_skipped_and_required_ones_refused() {
    let (store, original, _) = sample_object();
    store.put("optional", &with_extra_section(&original, 77, 0)).unwrap();
    let segment = FlatSegment::open(&store, "optional").unwrap();
    assert_eq!(segment.rows(), 40);
    segment.verify().unwrap();

    store.put("required", &with_extra_section(&original, 77, SECTION_REQUIRED)).unwrap();
    assert!(matches!(
        FlatSegment::open(&store, "required"),
        Err(SegmentError::File(FileError::UnknownSection { kind: 77, .. }))
    ));
}

#[test]
fn other_major_versions_are_refused() {
    let (store, original, _) = sample_object();
    let body = &original[..original.len() - FOOTER_LEN];
    let newer = strata_storage::framing::FormatId { major: FORMAT.major + 1, ..FORMAT };
    store.put("s", &frame(&newer, 0, body)).unwrap();
    assert!(matches!(
        FlatSegment::open(&store, "s"),
        Err(SegmentError::File(FileError::Storage(StorageError::UnsupportedVersion {
            found_major: 2,
            ..
        })))
    ));
}

#[test]
fn local_segments_are_mapped_and_vector_blocks_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let store = strata_storage::LocalDir::open(dir.path()).unwrap();
    let data = rows(100, 16, Metric::L2, 3);
    let expected = write(&store, "seg/x.flat", Metric::L2, &data);
    let segment = FlatSegment::open_expected(&store, "seg/x.flat", &expected).unwrap();
    assert!(segment.is_mapped());
    assert_eq!(segment.vectors().unwrap().as_ptr() as usize % 64, 0);
}

/// Holds docs/format/segment-flat.md to the code: offsets written out by hand.
#[test]
fn layout_matches_the_spec() {
    let store = MemoryStore::new();
    let mut writer = FlatWriter::new(&store, "s", 3, Metric::Cosine, 2).unwrap();
    writer.push(5, &[1.0, 0.0, 0.0]).unwrap();
    writer.push(9, &[0.0, 1.0, 0.0]).unwrap();
    writer.finish().unwrap();
    let b = store.get("s").unwrap().to_vec();
    let le = strata_test_support::LeBytes(&b);
    let (u16_at, u32_at, u64_at) = (|at| le.u16(at), |at| le.u32(at), |at| le.u64(at));
    assert_eq!(&b[0..8], b"STRAFLAT");
    assert_eq!((u16_at(8), u16_at(10), u32_at(12)), (1, 1, 64));
    assert_eq!((u32_at(16), b[20], u64_at(24)), (3, 3, 2));
    assert_eq!(u32_at(60), crc32fast::hash(&b[..60]));
    // Vectors at 64 (24 bytes), ids at the next multiple of 64.
    assert_eq!(f32::from_le_bytes(b[64 + 16..64 + 20].try_into().unwrap()), 1.0);
    assert_eq!((u64_at(128), u64_at(136)), (5, 9));
    // Directory at 144: vectors then ids, both required.
    assert_eq!((u32_at(144), u32_at(148), u64_at(152), u64_at(160)), (1, 1, 64, 24));
    assert_eq!(u32_at(168), crc32fast::hash(&b[64..88]));
    assert_eq!((u32_at(176), u32_at(180), u64_at(184), u64_at(192)), (2, 1, 128, 16));
    // Trailer, then the 32-byte footer.
    assert_eq!((u64_at(208), u32_at(216), u32_at(220)), (144, 2, crc32fast::hash(&b[144..208])));
    assert_eq!(&b[224..232], b"STRAFLAT");
    assert_eq!(b.len(), 256);
}

/// The attribute and payload sections read back as written, and every flipped bit in them is
/// caught when they are read (the attribute section's checksum, the payloads' on first read
/// or by their offsets' bounds), never handed out as data.
#[test]
fn attribute_sections_round_trip_and_every_flip_is_caught() {
    let store = MemoryStore::new();
    let data = rows(30, 4, Metric::L2, 3);
    let payloads: Vec<Option<Vec<u8>>> =
        (0..30u8).map(|r| (r % 3 != 0).then(|| vec![r; usize::from(r % 5)])).collect();
    let columns = b"opaque to this layer: the attributes crate encodes it".to_vec();
    let write = |store: &MemoryStore| {
        let mut writer = FlatWriter::new(store, "s", 4, Metric::L2, 30).unwrap();
        for (id, vector) in data.ids.iter().zip(&data.vectors) {
            writer.push(*id, vector).unwrap();
        }
        let payload_section = encode_payloads(payloads.iter().map(|p| p.as_deref()));
        writer.set_attributes(AttributeSections {
            columns: Some(columns.clone()),
            payloads: payload_section,
        });
        writer.finish().unwrap()
    };
    let written = write(&store);
    let segment = FlatSegment::open(&store, "s").unwrap();
    assert_eq!(segment.attribute_bytes().unwrap(), Some(&columns[..]));
    for (row, payload) in payloads.iter().enumerate() {
        let want = payload.as_deref().filter(|p| !p.is_empty());
        assert_eq!(segment.payload(row as u32).unwrap(), want, "row {row}");
    }
    assert_eq!(segment.payload(30).unwrap(), None, "past the last row");

    let original = store.get("s").unwrap().to_vec();
    let body_len = original.len() - FOOTER_LEN;
    let trailer = Trailer::read_from_bytes(&original[body_len - TRAILER_LEN..body_len]).unwrap();
    let dir = trailer.directory_offset.get() as usize;
    let entries = <[SectionEntry]>::ref_from_bytes(&original[dir..body_len - TRAILER_LEN]).unwrap();
    for kind in [16u32, 17] {
        let entry = entries.iter().find(|e| e.kind.get() == kind).unwrap();
        assert_eq!(entry.flags.get() & 1, 1, "kind {kind} is required");
        let start = entry.offset.get() as usize;
        for at in start..start + entry.len.get() as usize {
            let mut bytes = original.clone();
            bytes[at] ^= 1 << (at % 8);
            store.put("s", &bytes).unwrap();
            let segment = FlatSegment::open(&store, "s").unwrap();
            if kind == 16 {
                assert!(segment.attribute_bytes().is_err(), "byte {at}");
            } else {
                let reads: Vec<_> = (0..30).map(|row| segment.payload(row)).collect();
                assert!(reads.iter().any(Result::is_err), "byte {at} flipped unnoticed");
            }
            assert!(segment.verify().is_err());
        }
    }
    assert_eq!(written.rows, 30);
}
