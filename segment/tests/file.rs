//! The segment-file layer on its own: a file written through `SectionWriter` reads back
//! through `SegmentFile::parse`, and every rule of docs/format/segment-file.md is enforced:
//! bounds, alignment, duplicates, unknown required sections, checksums, the id column, the
//! codes pair and the manifest check. Damaged bytes give errors, never panics.

use proptest::prelude::*;
use strata_quantize::{Codec, CodecKind, Metric, TrainOptions};
use strata_segment::format::{
    CommonHeader, HEADER_LEN, SECTION_CODEBOOK, SECTION_CODES, SECTION_IDS, SECTION_REQUIRED,
    header_checksum,
};
use strata_segment::{
    Expected, FileError, FileSpec, Problem, SectionSpec, SectionWriter, SegmentFile,
};
use strata_storage::framing::FormatId;
use strata_storage::{MemoryStore, ObjectBytes, Storage};
use zerocopy::IntoBytes;

const FORMAT: FormatId = FormatId { magic: *b"STRATEST", major: 1, minor: 0, known_features: 0 };
const SECTION_BLOB: u32 = 1;

static SPEC: FileSpec = FileSpec {
    format: FORMAT,
    name: "test",
    sections: &[
        SectionSpec { kind: SECTION_BLOB, align: 64 },
        SectionSpec { kind: SECTION_IDS, align: 8 },
        SectionSpec { kind: SECTION_CODEBOOK, align: 8 },
        SectionSpec { kind: SECTION_CODES, align: 64 },
    ],
};

const DIM: usize = 4;

fn header(rows: u64) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    let common = CommonHeader::new(&FORMAT, DIM as u32, Metric::L2.code(), [0; 3], rows);
    bytes[..32].copy_from_slice(common.as_bytes());
    let crc = header_checksum(&bytes);
    bytes[60..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Writes a file of `rows` rows: the header, a blob section, the ids, `extra` sections
/// (kind, flags, align, bytes) and, if `codec`, a codebook and codes.
fn write(
    store: &MemoryStore,
    key: &str,
    rows: u64,
    extra: &[(u32, u32, u64, Vec<u8>)],
    codec: Option<&Codec>,
) -> strata_segment::WrittenSegment {
    let mut out = SectionWriter::new(store, key, FORMAT).unwrap();
    out.write(&header(rows)).unwrap();
    let mut blob = out.begin(64).unwrap();
    out.append(&mut blob, b"hello, ").unwrap();
    out.append(&mut blob, b"segment").unwrap();
    out.end(blob, SECTION_BLOB, SECTION_REQUIRED);
    let ids: Vec<u8> = (0..rows).flat_map(|row| (row * 10 + 1).to_le_bytes()).collect();
    out.section(SECTION_IDS, SECTION_REQUIRED, 64, &ids).unwrap();
    for (kind, flags, align, bytes) in extra {
        out.section(*kind, *flags, *align, bytes).unwrap();
    }
    if let Some(codec) = codec {
        out.section(SECTION_CODEBOOK, 0, 8, &codec.to_bytes()).unwrap();
        let vector = [0.5f32; DIM];
        let mut codes = vec![0u8; codec.code_len() * rows as usize];
        for code in codes.chunks_exact_mut(codec.code_len()) {
            codec.encode(&vector, code);
        }
        out.section(SECTION_CODES, 0, 64, &codes).unwrap();
    }
    out.finish(rows).unwrap()
}

fn parse(store: &MemoryStore, key: &str) -> Result<SegmentFile, FileError> {
    SegmentFile::parse(&SPEC, key, store.map(key).unwrap())
}

fn sq8() -> Codec {
    let data: Vec<f32> = (0..64 * DIM).map(|i| (i % 7) as f32).collect();
    Codec::train(CodecKind::Sq8, Metric::L2, DIM, &data, &TrainOptions::default()).unwrap()
}

#[test]
fn a_written_file_reads_back() {
    let store = MemoryStore::new();
    let written = write(&store, "f", 5, &[], Some(&sq8()));
    let file = parse(&store, "f").unwrap();
    assert_eq!((file.dim(), file.metric(), file.rows()), (DIM, Metric::L2, 5));
    assert_eq!(file.size(), written.size);
    assert_eq!(file.ids().collect::<Vec<_>>(), [1, 11, 21, 31, 41]);
    assert_eq!(file.id(3), 31);
    let blob = file.require(SECTION_BLOB).unwrap();
    assert_eq!(blob.range.start % 64, 0);
    assert_eq!(file.bytes_of(blob), b"hello, segment");
    file.check_crc(blob).unwrap();
    let (codec, codes) = file.codes().unwrap().expect("codes");
    assert_eq!(codec.kind(), CodecKind::Sq8);
    assert_eq!(codes.range.len(), 5 * codec.code_len());
    file.verify_body().unwrap();
    let expected = Expected {
        dim: DIM,
        metric: Metric::L2,
        rows: 5,
        size: written.size,
        crc32: written.crc32,
    };
    file.check(&expected).unwrap();
    let wrong = Expected { rows: 6, ..expected };
    assert!(matches!(file.check(&wrong), Err(FileError::Mismatch { field: "row count", .. })));
    // No codes: `None`, not an error.
    write(&store, "plain", 2, &[], None);
    assert!(parse(&store, "plain").unwrap().codes().unwrap().is_none());
}

#[test]
fn unknown_sections_are_skipped_unless_required() {
    let store = MemoryStore::new();
    write(&store, "optional", 1, &[(99, 0, 8, vec![1, 2, 3])], None);
    let file = parse(&store, "optional").unwrap();
    assert!(file.section(99).is_none());
    write(&store, "required", 1, &[(99, SECTION_REQUIRED, 8, vec![1])], None);
    let err = parse(&store, "required").unwrap_err();
    assert!(matches!(err, FileError::UnknownSection { kind: 99, format: "test", .. }), "{err}");
}

#[test]
fn broken_sections_are_reported_by_kind() {
    let store = MemoryStore::new();
    let corrupt = |key: &str| match parse(&store, key) {
        Err(FileError::Corrupt { problem, .. }) => problem,
        other => panic!("{key}: {other:?}"),
    };
    // A known kind twice.
    write(&store, "twice", 1, &[(SECTION_BLOB, 0, 64, vec![0])], None);
    assert_eq!(corrupt("twice"), Problem::SectionCount { kind: SECTION_BLOB });
    // A known kind misaligned (the blob wants 64).
    let mut out = SectionWriter::new(&store, "misaligned", FORMAT).unwrap();
    out.write(&header(0)).unwrap();
    out.section(SECTION_IDS, SECTION_REQUIRED, 8, &[]).unwrap();
    out.write(&[0; 8]).unwrap();
    out.section(SECTION_BLOB, SECTION_REQUIRED, 8, b"x").unwrap();
    out.finish(0).unwrap();
    assert!(matches!(corrupt("misaligned"), Problem::SectionBounds { kind: SECTION_BLOB, .. }));
    // Ids that do not match the row count; a codebook without codes.
    let mut out = SectionWriter::new(&store, "short-ids", FORMAT).unwrap();
    out.write(&header(3)).unwrap();
    out.section(SECTION_IDS, SECTION_REQUIRED, 8, &[0; 16]).unwrap();
    out.finish(3).unwrap();
    assert_eq!(
        corrupt("short-ids"),
        Problem::SectionLength { kind: SECTION_IDS, expected: 24, found: 16 }
    );
    write(&store, "half-codes", 1, &[(SECTION_CODEBOOK, 0, 8, sq8().to_bytes())], None);
    let file = parse(&store, "half-codes").unwrap();
    assert!(matches!(
        file.codes(),
        Err(FileError::Corrupt { problem: Problem::SectionCount { kind: SECTION_CODES }, .. })
    ));
}

/// Every truncation of a valid file is an error at open; every single flipped byte is an
/// error at open or (in a section checked lazily, or padding) caught by `verify_body`: never
/// a panic, never unnoticed.
#[test]
fn damaged_files_never_panic() {
    let store = MemoryStore::new();
    write(&store, "f", 3, &[], Some(&sq8()));
    let original = store.get("f").unwrap().to_vec();
    for len in 0..original.len() {
        let bytes = ObjectBytes::copy_from_slice(&original[..len]);
        assert!(SegmentFile::parse(&SPEC, "t", bytes).is_err(), "truncated to {len}");
    }
    for at in 0..original.len() {
        let mut bytes = original.clone();
        bytes[at] ^= 0x5A;
        match SegmentFile::parse(&SPEC, "t", ObjectBytes::copy_from_slice(&bytes)) {
            Err(_) => {}
            Ok(file) => assert!(file.verify_body().is_err(), "byte {at} went unnoticed"),
        }
    }
}

proptest! {
    /// Arbitrary bytes inside a valid frame (the footer re-computed, so the body checksum
    /// passes) never panic the parser.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let store = MemoryStore::new();
        let framed = strata_storage::framing::frame(&FORMAT, 0, &body);
        store.put("f", &framed).unwrap();
        let _ = parse(&store, "f").map(|file| file.codes().map(drop));
    }
}
