//! Model-based test: random sequences of upserts, batches, deletes, commits, compactions,
//! garbage collections, reopens, exact searches and gets against an in-memory oracle, for every
//! metric, with the background worker compacting too.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata::compaction::CompactAll;
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Metric, Neighbor, Options, SearchParams, Snapshot};
use strata_quantize::normalize;

const DIM: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, Vec<f32>),
    Batch(Vec<(u64, Vec<f32>)>),
    /// `Db::ingest`: the batch, then a commit.
    Ingest(Vec<(u64, Vec<f32>)>),
    Delete(u64),
    Commit,
    Compact,
    Gc,
    Reopen,
    Search(Vec<f32>, usize),
    /// Range search: every record within the radius (as a multiple of 0.25).
    Range(Vec<f32>, u8),
    SearchBatch(Vec<Vec<f32>>, usize),
    Get(u64),
    GetMany(Vec<u64>),
    /// Pins a snapshot of the committed version, checked after every later step.
    Snapshot,
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-4i8..=4, DIM).prop_map(|v| {
        let mut v: Vec<f32> = v.into_iter().map(|x| f32::from(x) * 0.5).collect();
        if v.iter().all(|&x| x == 0.0) {
            v[0] = 1.0; // cosine refuses zero vectors; that refusal is tested elsewhere
        }
        v
    })
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u64..24;
    prop_oneof![
        6 => (id.clone(), vector()).prop_map(|(id, v)| Op::Upsert(id, v)),
        2 => proptest::collection::vec((id.clone(), vector()), 1..12).prop_map(Op::Batch),
        1 => proptest::collection::vec((id.clone(), vector()), 0..12).prop_map(Op::Ingest),
        3 => id.clone().prop_map(Op::Delete),
        2 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::Gc),
        1 => Just(Op::Reopen),
        3 => (vector(), 1usize..30).prop_map(|(q, k)| Op::Search(q, k)),
        2 => (vector(), 0u8..40).prop_map(|(q, r)| Op::Range(q, r)),
        1 => (proptest::collection::vec(vector(), 0..6), 1usize..30)
            .prop_map(|(q, k)| Op::SearchBatch(q, k)),
        2 => id.clone().prop_map(Op::Get),
        1 => proptest::collection::vec(id, 0..8).prop_map(Op::GetMany),
        1 => Just(Op::Snapshot),
    ]
}

/// What the database must hold: id -> stored (normalized, for cosine) vector.
type Records = BTreeMap<u64, Vec<f32>>;

fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    if metric.needs_normalization() {
        normalize(&mut v).unwrap();
    }
    v
}

fn check_search(db: &Db, model: &Records, metric: Metric, query: &[f32], k: usize) {
    let got = db.search_with(query, SearchParams::exact(k)).unwrap();
    check_hits(&got, model, metric, query, k);
}

/// `got` are the exact `k` nearest of `model` to `query`.
fn check_hits(got: &[Neighbor], model: &Records, metric: Metric, query: &[f32], k: usize) {
    let q = stored(metric, query);
    let mut want: Vec<(f32, u64)> =
        model.iter().map(|(&id, v)| (metric.distance(&q, v), id)).collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    want.truncate(k);
    assert_eq!(got.len(), want.len(), "result count: got {got:?}, want {want:?}");
    let tolerance = |d: f32| 1e-4 * (1.0 + d.abs());
    for (hit, (want_distance, _)) in got.iter().zip(&want) {
        let stored = model.get(&hit.id).unwrap_or_else(|| panic!("returned dead id {}", hit.id));
        let true_distance = metric.distance(&q, stored);
        assert!((hit.distance - true_distance).abs() <= tolerance(true_distance), "{hit:?}");
        // Ties may order differently; the k-th distances must agree.
        assert!(
            (hit.distance - want_distance).abs() <= tolerance(*want_distance),
            "{got:?} vs {want:?}"
        );
    }
    let mut ids: Vec<u64> = got.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "an id returned twice: {got:?}");
}

/// `got` holds exactly the records of `model` within `radius` of `query` (records within
/// rounding of the boundary may go either way), nearest first.
fn check_range(got: &[Neighbor], model: &Records, metric: Metric, query: &[f32], radius: f32) {
    let q = stored(metric, query);
    let tolerance = 1e-4 * (1.0 + radius.abs());
    for hit in got {
        let stored = model.get(&hit.id).unwrap_or_else(|| panic!("returned dead id {}", hit.id));
        let distance = metric.distance(&q, stored);
        assert!(distance <= radius + tolerance, "{hit:?} is beyond {radius}");
    }
    for (id, v) in model {
        if metric.distance(&q, v) <= radius - tolerance {
            assert!(got.iter().any(|n| n.id == *id), "{id} within {radius} missing: {got:?}");
        }
    }
    assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance), "order: {got:?}");
}

/// A pinned snapshot holds exactly `model` (the committed records when it was taken), by
/// every read path.
fn check_snapshot(snapshot: &Snapshot, model: &Records, metric: Metric) {
    assert_eq!(snapshot.len(), model.len());
    let scanned: Records = snapshot
        .scan()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.id, entry.vector)
        })
        .collect();
    assert_eq!(&scanned, model, "scan of version {}", snapshot.version());
    assert_eq!(snapshot.scan().count(), model.len(), "each record scanned once");
    let ids: Vec<u64> = (0..24).collect();
    let got = snapshot.get_many(&ids).unwrap();
    for (id, got) in ids.iter().zip(got) {
        assert_eq!(got.as_ref(), model.get(id), "snapshot get {id}");
        assert_eq!(snapshot.contains(*id).unwrap(), model.contains_key(id));
    }
    let query = [1.0, 0.5, -0.5];
    let hits = snapshot.search_with(&query, SearchParams::exact(30)).unwrap();
    check_hits(&hits, model, metric, &query, 30);
    let radius = 2.0;
    let near =
        snapshot.search_with(&query, SearchParams::exact(usize::MAX).within(radius)).unwrap();
    check_range(&near, model, metric, &query, radius);
}

fn run(metric: Metric, ops: Vec<Op>, rotate_rows: usize, compact_all: bool) {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let options = Options::new(DIM, metric).compaction_threshold(2).keep_versions(2);
    let mut db = Db::create_in(Arc::clone(&store), options).unwrap();
    let configure = |db: &Db| {
        db.set_memtable_rotate_rows(rotate_rows);
        if compact_all {
            db.set_compaction_policy(Arc::new(CompactAll));
        }
    };
    configure(&db);
    let mut current = Records::new();
    let mut committed = Records::new();
    let mut snapshots: Vec<(Snapshot, Records)> = Vec::new();
    for op in ops {
        match op {
            Op::Upsert(id, v) => {
                db.upsert(id, &v).unwrap();
                current.insert(id, stored(metric, &v));
            }
            Op::Batch(rows) => {
                let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
                let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
                db.upsert_batch(&ids, &flat).unwrap();
                for (id, v) in rows {
                    current.insert(id, stored(metric, &v));
                }
            }
            Op::Ingest(rows) => {
                let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
                let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
                let before = db.version();
                let after = db.ingest(&ids, &flat).unwrap();
                assert!(after.0 >= before.0);
                for (id, v) in rows {
                    current.insert(id, stored(metric, &v));
                }
                committed = current.clone();
            }
            Op::Delete(id) => {
                assert_eq!(db.delete(id).unwrap(), current.remove(&id).is_some(), "delete {id}");
            }
            Op::Commit => {
                let before = db.version();
                let after = db.commit().unwrap();
                // (The background worker may have committed compactions meanwhile.)
                assert!(after.0 >= before.0);
                committed = current.clone();
            }
            // A compaction commits a version, but only of what was committed.
            Op::Compact => drop(db.compact().unwrap()),
            Op::Gc => drop(db.gc().unwrap()),
            Op::Reopen => {
                drop(db);
                db = Db::open_in(Arc::clone(&store)).unwrap();
                configure(&db);
                current = committed.clone();
            }
            Op::Search(query, k) => check_search(&db, &current, metric, &query, k),
            Op::Range(query, quarters) => {
                let radius = f32::from(quarters) * 0.25;
                let params = SearchParams::exact(usize::MAX).within(radius);
                let got = db.search_with(&query, params).unwrap();
                check_range(&got, &current, metric, &query, radius);
                // A cap keeps the nearest: the first `k` of the uncapped answer's distances.
                let capped = db.search_with(&query, SearchParams::exact(3).within(radius)).unwrap();
                assert_eq!(capped.len(), got.len().min(3));
                for (a, b) in capped.iter().zip(&got) {
                    assert!((a.distance - b.distance).abs() <= 1e-4 * (1.0 + b.distance.abs()));
                }
            }
            Op::SearchBatch(queries, k) => {
                let flat: Vec<f32> = queries.iter().flatten().copied().collect();
                let got = db.search_batch(&flat, SearchParams::exact(k)).unwrap();
                assert_eq!(got.len(), queries.len());
                for (hits, query) in got.iter().zip(&queries) {
                    check_hits(hits, &current, metric, query, k);
                }
            }
            Op::Get(id) => assert_eq!(db.get(id).unwrap().as_ref(), current.get(&id), "get {id}"),
            Op::GetMany(ids) => {
                let got = db.get_many(&ids).unwrap();
                for (id, got) in ids.iter().zip(got) {
                    assert_eq!(got.as_ref(), current.get(id), "get_many {id}");
                    assert_eq!(db.contains(*id), current.contains_key(id), "contains {id}");
                }
            }
            Op::Snapshot => {
                // Keep a few: each holds its segments open.
                if snapshots.len() == 3 {
                    snapshots.remove(0);
                }
                snapshots.push((db.snapshot(), committed.clone()));
            }
        }
        assert_eq!(db.len(), current.len());
        for (snapshot, records) in &snapshots {
            check_snapshot(snapshot, records, metric);
        }
    }
    // Whatever happened, a final reopen shows exactly the last commit.
    drop(db);
    let db = Db::open_in(store).unwrap();
    for id in 0..24 {
        assert_eq!(db.get(id).unwrap().as_ref(), committed.get(&id), "final get {id}");
    }
    check_search(&db, &committed, metric, &[1.0, 0.5, -0.5], 30);
    check_snapshot(&db.snapshot(), &committed, metric);
    // Snapshots outlive their handle (their segments stay open).
    drop(db);
    for (snapshot, records) in &snapshots {
        check_snapshot(snapshot, records, metric);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn engine_matches_the_model(
        metric_index in 0usize..3,
        ops in proptest::collection::vec(op(), 1..60),
        rotate_rows in prop_oneof![Just(usize::MAX), 1usize..8],
        compact_all in any::<bool>(),
    ) {
        run(Metric::ALL[metric_index], ops, rotate_rows, compact_all);
    }
}
