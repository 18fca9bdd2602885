//! Damaged Vamana segments: every flipped byte and every cut is a clear error at open, at the
//! first read of the damaged sector, or from `verify`; never a panic, never a wrong answer.

mod common;

use common::clustered;
use proptest::prelude::*;
use strata_quantize::AdmitAll;
use strata_quantize::{Metric, TopK};
use strata_segment_diskann::{
    BuildOptions, FileError, Problem, SearchParams, SearchScratch, VamanaBuilder, VamanaError,
    VamanaSegment,
};
use strata_storage::{MemoryStore, ObjectBytes, Storage};

const DIM: usize = 8;

fn segment_bytes() -> Vec<u8> {
    let store = MemoryStore::new();
    let vectors = clustered(300, DIM, 4, Metric::L2, 1);
    let mut builder =
        VamanaBuilder::new(DIM, Metric::L2, BuildOptions::default().max_degree(16)).unwrap();
    for (row, vector) in vectors.chunks_exact(DIM).enumerate() {
        builder.push(row as u64, vector).unwrap();
    }
    builder.finish(&store, "s").unwrap();
    store.get("s").unwrap().to_vec()
}

fn open(bytes: &[u8]) -> Result<VamanaSegment, VamanaError> {
    VamanaSegment::from_bytes("s", ObjectBytes::copy_from_slice(bytes))
}

/// Searches every row's sector (through a full-length list) and verifies.
fn read_everything(segment: &VamanaSegment) -> Result<(), VamanaError> {
    let mut top = TopK::new(5);
    let mut scratch = SearchScratch::default();
    let params = SearchParams {
        search_list: segment.rows() as usize,
        beam_width: 1,
        ..SearchParams::default()
    };
    segment.search(&[0.0; DIM], &params, &AdmitAll, &mut top, &mut scratch)?;
    segment.verify()
}

#[test]
fn every_flipped_byte_is_caught() {
    let bytes = segment_bytes();
    assert!(read_everything(&open(&bytes).unwrap()).is_ok());
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5A;
        let outcome = open(&damaged).and_then(|segment| read_everything(&segment));
        assert!(outcome.is_err(), "a flip at byte {at} of {} went unnoticed", bytes.len());
    }
}

#[test]
fn a_damaged_sector_is_reported_by_the_search_that_reads_it() {
    let bytes = segment_bytes();
    // The first node sector starts at 4096: damage row 0's vector.
    let mut damaged = bytes.clone();
    damaged[4096] ^= 0xFF;
    let segment = open(&damaged).expect("opening does not read node sectors");
    let err = read_everything(&segment).unwrap_err();
    assert!(
        matches!(
            err,
            VamanaError::File(FileError::Corrupt {
                problem: Problem::SectorChecksum { sector: 0 },
                ..
            })
        ),
        "{err}"
    );
    assert!(segment.vector(0).is_err(), "and every later read of it");
}

#[test]
fn every_cut_is_refused_at_open() {
    let bytes = segment_bytes();
    for len in (0..bytes.len()).step_by(7).chain(bytes.len() - 40..bytes.len()) {
        assert!(open(&bytes[..len]).is_err(), "a cut to {len} bytes opened");
    }
}

#[test]
fn a_newer_major_version_is_refused_by_name() {
    let mut bytes = segment_bytes();
    let footer = bytes.len() - 32;
    // Rewrite the footer as major 2, with a valid footer checksum.
    bytes[footer + 8..footer + 10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32fast::hash(&bytes[footer..footer + 28]);
    bytes[footer + 28..].copy_from_slice(&crc.to_le_bytes());
    let err = open(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            VamanaError::File(FileError::Storage(strata_storage::Error::UnsupportedVersion {
                found_major: 2,
                ..
            }))
        ),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, and arbitrary bytes behind a valid footer shape, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let _ = open(&data).and_then(|segment| read_everything(&segment));
    }
}
