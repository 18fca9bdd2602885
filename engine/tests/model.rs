//! Model-based test: random sequences of upserts, batches, deletes, commits, compactions,
//! garbage collections, reopens, exact searches and gets against an in-memory oracle, for every
//! metric, with the background worker compacting too.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata::compaction::CompactAll;
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Metric, Options, SearchParams};
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
    Get(u64),
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
        2 => id.prop_map(Op::Get),
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
            Op::Get(id) => assert_eq!(db.get(id).unwrap().as_ref(), current.get(&id), "get {id}"),
        }
        assert_eq!(db.len(), current.len());
    }
    // Whatever happened, a final reopen shows exactly the last commit.
    drop(db);
    let db = Db::open_in(store).unwrap();
    for id in 0..24 {
        assert_eq!(db.get(id).unwrap().as_ref(), committed.get(&id), "final get {id}");
    }
    check_search(&db, &committed, metric, &[1.0, 0.5, -0.5], 30);
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
