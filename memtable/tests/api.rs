//! Records, errors, freezing and the filter hook.

mod common;

use common::{brute_force, clustered};
use strata_memtable::{Memtable, MemtableError, Params};
use strata_quantize::{AdmitIf, Metric};

#[test]
fn bad_input_is_a_clear_error() {
    let memtable = Memtable::new(4, Metric::Cosine, Params::default()).unwrap();
    assert_eq!(
        memtable.upsert(1, &[1.0, 2.0]),
        Err(MemtableError::DimensionMismatch { expected: 4, found: 2 })
    );
    assert!(matches!(
        memtable.upsert(1, &[1.0, f32::NAN, 0.0, 0.0]),
        Err(MemtableError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        memtable.upsert(1, &[1.0, 0.0, f32::INFINITY, 0.0]),
        Err(MemtableError::NonFinite { index: 2, .. })
    ));
    assert_eq!(memtable.upsert(1, &[0.0; 4]), Err(MemtableError::ZeroVector));
    assert!(memtable.search(&[1.0; 3], 1, 10).is_err());
    assert!(memtable.search(&[0.0; 4], 1, 10).is_err(), "zero query under cosine");
    assert!(memtable.is_empty(), "nothing was half applied");
    assert_eq!(memtable.rows(), 0);
    assert!(Memtable::new(0, Metric::L2, Params::default()).is_err());
    assert!(Memtable::new(4, Metric::L2, Params::default().m(1)).is_err());
    assert!(Memtable::new(4, Metric::L2, Params::default().ef_construction(0)).is_err());
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let memtable = Memtable::new(2, Metric::L2, Params::default()).unwrap();
    assert!(memtable.search(&[0.0, 0.0], 5, 10).unwrap().is_empty(), "empty memtable");
    memtable.upsert(7, &[1.0, 1.0]).unwrap();
    memtable.upsert(8, &[5.0, 5.0]).unwrap();
    memtable.upsert(7, &[9.0, 9.0]).unwrap();
    assert_eq!(memtable.len(), 2);
    assert_eq!(memtable.rows(), 3, "the superseded row stays in the graph");
    assert_eq!(memtable.get(7), Some(&[9.0, 9.0][..]));
    let found = memtable.search(&[1.0, 1.0], 5, 50).unwrap();
    assert_eq!(
        found.iter().map(|n| n.id).collect::<Vec<_>>(),
        [8, 7],
        "old version never returned"
    );
    assert_eq!(found[1].distance, 128.0);
    assert_eq!(memtable.delete(8), Ok(true));
    assert_eq!(memtable.delete(8), Ok(false));
    assert_eq!(memtable.get(8), None);
    let found = memtable.search(&[5.0, 5.0], 5, 50).unwrap();
    assert_eq!(found.iter().map(|n| n.id).collect::<Vec<_>>(), [7]);
    assert_eq!(memtable.len(), 1);
}

#[test]
fn k_live_results_are_returned_when_k_exist_despite_tombstones() {
    let data = clustered(2000, 8, 5, 9);
    let memtable = Memtable::new(8, Metric::L2, Params::default()).unwrap();
    for (id, v) in data.iter().enumerate() {
        memtable.upsert(id as u64, v).unwrap();
    }
    // Delete 95% of the rows: the search must walk through tombstones to find the rest.
    for id in 0..2000u64 {
        if id % 20 != 0 {
            assert_eq!(memtable.delete(id), Ok(true));
        }
    }
    let live: Vec<(u64, Vec<f32>)> =
        (0..2000).step_by(20).map(|i| (i as u64, data[i].clone())).collect();
    for query in clustered(20, 8, 5, 10) {
        let found = memtable.search(&query, 10, 10).unwrap();
        assert_eq!(found.len(), 10, "k live results exist, so k come back");
        assert!(found.iter().all(|n| n.id % 20 == 0), "no deleted row returned");
        let truth = brute_force(Metric::L2, &live, &query, 10);
        let hits = found.iter().filter(|n| truth.iter().any(|t| t.0 == n.id)).count();
        assert!(hits >= 8, "recall among the living: {hits}/10");
    }
}

#[test]
fn the_filter_hook_restricts_results() {
    let data = clustered(500, 8, 5, 11);
    let memtable = Memtable::new(8, Metric::L2, Params::default()).unwrap();
    for (id, v) in data.iter().enumerate() {
        memtable.upsert(id as u64, v).unwrap();
    }
    let mut out = Vec::new();
    // Rows are inserted in id order here, so a row filter is an id filter.
    memtable.search_filtered(&data[3], 10, 64, &AdmitIf(|row| row % 3 == 0), &mut out).unwrap();
    assert_eq!(out.len(), 10);
    assert!(out.iter().all(|n| n.id % 3 == 0));
    assert_eq!(out[0].id, 3, "its own vector is the nearest that passes");
}

#[test]
fn frozen_memtables_refuse_writes_and_iterate_live_records() {
    let memtable = Memtable::new(2, Metric::L2, Params::default()).unwrap();
    for id in 0..100u64 {
        memtable.upsert(id, &[id as f32, 0.0]).unwrap();
    }
    memtable.upsert(5, &[-5.0, 1.0]).unwrap();
    memtable.delete(6).unwrap();
    let frozen = memtable.freeze();
    assert_eq!(memtable.upsert(200, &[1.0, 1.0]), Err(MemtableError::Frozen));
    assert_eq!(memtable.delete(1), Err(MemtableError::Frozen));
    let records: Vec<(u64, Vec<f32>)> = frozen.iter().map(|(id, v)| (id, v.to_vec())).collect();
    assert_eq!(records.len(), 99);
    assert!(records.iter().all(|(id, _)| *id != 6));
    assert_eq!(records.iter().filter(|(id, _)| *id == 5).count(), 1);
    assert_eq!(records.last().unwrap(), &(5, vec![-5.0, 1.0]), "row order: the upsert came last");
    let again: Vec<u64> = frozen.iter().map(|(id, _)| id).collect();
    assert_eq!(again, records.iter().map(|r| r.0).collect::<Vec<_>>(), "stable order");
    assert_eq!(frozen.search(&[50.0, 0.0], 1, 10).unwrap()[0].id, 50, "still searchable");
}

#[test]
fn memory_is_reported_and_an_empty_memtable_is_small() {
    let memtable = Memtable::new(128, Metric::L2, Params::default()).unwrap();
    let empty = memtable.memory_bytes();
    assert!(empty < 256 * 1024, "empty memtable: {empty} bytes");
    let n = 20_000;
    let data = clustered(n, 128, 10, 12);
    for (id, v) in data.iter().enumerate() {
        memtable.upsert(id as u64, v).unwrap();
    }
    let full = memtable.memory_bytes();
    let per_vector = (full - empty) as f64 / n as f64;
    // The bar of issue 4: raw vector bytes + 2*M*4 + 64, with the id map and search buffers.
    assert!((512.0..=512.0 + 128.0 + 64.0).contains(&per_vector), "{per_vector} bytes per vector");
}

#[test]
fn superseded_versions_never_come_back_through_the_graph() {
    let data = clustered(3000, 16, 10, 13);
    let replacements = clustered(3000, 16, 10, 14);
    let memtable = Memtable::new(16, Metric::L2, Params::default()).unwrap();
    for (id, v) in data.iter().enumerate() {
        memtable.upsert(id as u64, v).unwrap();
    }
    for id in (0..3000).step_by(3) {
        memtable.upsert(id as u64, &replacements[id]).unwrap();
    }
    for id in (0..3000).step_by(3).take(200) {
        // ef 32 < rows: the graph path. The old vector's own row is a tombstone now.
        for n in memtable.search(&data[id], 10, 32).unwrap() {
            let current =
                if n.id % 3 == 0 { &replacements[n.id as usize] } else { &data[n.id as usize] };
            let d = Metric::L2.distance(&data[id], current);
            assert!(
                (n.distance - d).abs() <= 1e-3 * d.max(1.0),
                "id {} came back with a stale vector",
                n.id
            );
        }
    }
}

#[test]
fn vectors_whose_distances_could_overflow_are_refused() {
    let memtable = Memtable::new(2, Metric::InnerProduct, Params::default()).unwrap();
    assert!(matches!(memtable.upsert(1, &[1e20, 1e20]), Err(MemtableError::TooLarge { .. })));
    assert!(matches!(memtable.search(&[1e20, -1e20], 1, 10), Err(MemtableError::TooLarge { .. })));
    memtable.upsert(2, &[1e18, -1e18]).unwrap();
    memtable.upsert(3, &[-1e18, -1e18]).unwrap();
    let found = memtable.search(&[1e18, 1e18], 2, 10).unwrap();
    assert!(found.iter().all(|n| n.distance.is_finite()), "{found:?}");
}

#[test]
fn a_huge_k_is_clamped_to_the_rows() {
    let memtable = Memtable::new(2, Metric::L2, Params::default()).unwrap();
    memtable.upsert(1, &[1.0, 0.0]).unwrap();
    assert_eq!(memtable.search(&[0.0, 0.0], usize::MAX, usize::MAX).unwrap().len(), 1);
}

#[test]
fn re_upserting_an_unchanged_vector_changes_nothing_and_keeps_search_working() {
    let memtable = Memtable::new(4, Metric::Cosine, Params::default()).unwrap();
    let vector = |id: u64| [id as f32 + 1.0, 1.0, (id % 3) as f32, 0.5];
    for round in 0..200 {
        for id in 0..20 {
            memtable.upsert(id, &vector(id)).unwrap();
        }
        if round == 0 {
            assert_eq!(memtable.rows(), 20);
        }
    }
    assert_eq!((memtable.rows(), memtable.len()), (20, 20), "no tombstoned copies");
    let hits = memtable.search(&vector(7), 10, 16).unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].id, 7);
    // A changed vector is still a real upsert.
    memtable.upsert(7, &vector(8)).unwrap();
    assert_eq!((memtable.rows(), memtable.len()), (21, 20));
}

/// Records ride with their rows: read back by row, filtered on in a search, replaced by a
/// re-upsert of the same vector with new attributes (which stores a new row), counted in
/// the memory estimate, and absent for rows written without them.
#[test]
fn records_ride_with_rows() {
    use strata_attributes::{Attributes, Record, Schema};
    let schema = Schema::new().u64("n");
    let record = |n: u64| Record::from_attributes(&schema, &Attributes::new().set("n", n)).unwrap();
    let memtable = Memtable::new(2, Metric::L2, Params::default()).unwrap();
    let before = memtable.memory_bytes();
    for id in 0..40u64 {
        let vector = [id as f32, 1.0];
        if id % 4 == 0 {
            memtable.upsert(id, &vector).unwrap();
        } else {
            memtable.upsert_with(id, &vector, Some(record(id % 3))).unwrap();
        }
    }
    assert!(memtable.memory_bytes() > before);
    let (_, found) = memtable.get_with_record(5).unwrap();
    assert_eq!(found, Some(&record(2)));
    assert_eq!(memtable.get_with_record(4).unwrap().1, None);
    // The same vector with other attributes is a new row; the same vector and record is not.
    let rows = memtable.rows();
    memtable.upsert_with(5, &[5.0, 1.0], Some(record(2))).unwrap();
    assert_eq!(memtable.rows(), rows);
    memtable.upsert_with(5, &[5.0, 1.0], Some(record(0))).unwrap();
    assert_eq!(memtable.rows(), rows + 1);
    let mut out = Vec::new();
    let matching = AdmitIf(|row| memtable.record(row).is_some_and(|r| *r == record(0)));
    memtable.search_filtered(&[0.0, 1.0], 5, 64, &matching, &mut out).unwrap();
    let ids: Vec<u64> = out.iter().map(|n| n.id).collect();
    assert_eq!(ids, [3, 5, 6, 9, 15], "ids with n = 0, nearest first");
}
