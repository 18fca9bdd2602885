//! Model-based test of churn (issue 20): rounds of deleting a share of the ids and upserting
//! them again (with their own vectors or others), interleaved with commits, compactions (which
//! patch deleted rows out of kept Vamana graphs), garbage collections and reopens, against an
//! oracle. Every search is checked: exact ones against brute force, graph searches (the default,
//! and L 64) for k live, distinct ids, and their recall over the run at L 64.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Metric, Options, SearchParams};
use strata_quantize::normalize;
use strata_quantize::rng::SplitMix64;

const DIM: usize = 8;
const IDS: u64 = 700;

#[derive(Debug, Clone)]
enum Op {
    /// Delete each id with probability `percent`/100 (drawn from `seed`) and, unless
    /// `deletes_only`, upsert the same ids again: with their own vectors, or new ones.
    Round {
        seed: u64,
        percent: u8,
        new_vectors: bool,
        deletes_only: bool,
        commit_between: bool,
    },
    Commit,
    Compact,
    Gc,
    Reopen,
    Search {
        seed: u64,
        k: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u64>(), 1u8..=90, any::<bool>(), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(seed, percent, new_vectors, deletes_only, commit_between)| Op::Round {
                seed, percent, new_vectors, deletes_only, commit_between
            }),
        2 => Just(Op::Commit),
        2 => Just(Op::Compact),
        1 => Just(Op::Gc),
        1 => Just(Op::Reopen),
        3 => (any::<u64>(), 1usize..20).prop_map(|(seed, k)| Op::Search { seed, k }),
    ]
}

/// A vector drawn from one of 12 clusters.
fn vector(rng: &mut SplitMix64) -> Vec<f32> {
    let cluster = rng.below(12) as f32;
    (0..DIM).map(|d| (cluster * (d as f32 + 1.0)).sin() * 4.0 + rng.normal() as f32 * 0.3).collect()
}

fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    if metric.needs_normalization() {
        normalize(&mut v).unwrap();
    }
    v
}

type Records = BTreeMap<u64, Vec<f32>>;

/// The exact k nearest distances of `query` among `model`.
fn true_distances(model: &Records, metric: Metric, query: &[f32], k: usize) -> Vec<f32> {
    let q = stored(metric, query);
    let mut all: Vec<f32> = model.values().map(|v| metric.distance(&q, v)).collect();
    all.sort_by(f32::total_cmp);
    all.truncate(k);
    all
}

/// Checks the searches of `query` against `model`; returns how many of the true k nearest
/// distances a graph search at L 64 matched, and k.
fn check(db: &Db, model: &Records, metric: Metric, query: &[f32], k: usize) -> (usize, usize) {
    let want = true_distances(model, metric, query, k);
    let tolerance = |d: f32| 1e-4 * (1.0 + d.abs());
    let q = stored(metric, query);
    let got = db.search_with(query, SearchParams::exact(k)).unwrap();
    assert_eq!(got.len(), want.len(), "exact: {got:?}");
    for (hit, want) in got.iter().zip(&want) {
        let vector = model.get(&hit.id).unwrap_or_else(|| panic!("exact: dead id {hit:?}"));
        assert!((metric.distance(&q, vector) - hit.distance).abs() <= tolerance(hit.distance));
        assert!((hit.distance - want).abs() <= tolerance(*want), "exact: {got:?} {want:?}");
    }
    let mut matched = 0;
    for params in [SearchParams::new(k), SearchParams::new(k).search_list(64)] {
        let found = db.search_with(query, params).unwrap();
        assert_eq!(found.len(), want.len(), "a graph search returns k live rows");
        let mut ids: Vec<u64> = found.iter().map(|n| n.id).collect();
        assert!(ids.iter().all(|id| model.contains_key(id)), "a dead id: {found:?}");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), found.len(), "an id twice: {found:?}");
        // Counted for the last (L 64) search, whose recall the run holds to a floor.
        let kth = want.last().copied().unwrap_or(f32::INFINITY);
        matched = found.iter().filter(|n| n.distance <= kth + tolerance(kth)).count();
    }
    (matched, want.len())
}

fn run(metric: Metric, ops: Vec<Op>) {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    // Small segments become Vamana segments, so rewrites and merges keep and patch graphs.
    let options =
        Options::new(DIM, metric).diskann_min_rows(256).compaction_threshold(2).keep_versions(2);
    let mut db = Db::create_in(Arc::clone(&store), options).unwrap();
    let mut rng = SplitMix64::new(1, metric as u64);
    let mut current = Records::new();
    let ids: Vec<u64> = (0..IDS).collect();
    let vectors: Vec<Vec<f32>> = ids.iter().map(|_| vector(&mut rng)).collect();
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    db.ingest(&ids, &flat).unwrap();
    db.compact().unwrap();
    for (&id, v) in ids.iter().zip(&vectors) {
        current.insert(id, stored(metric, v));
    }
    let mut committed = current.clone();
    let (mut matched, mut searched) = (0, 0);
    for op in ops {
        match op {
            Op::Round { seed, percent, new_vectors, deletes_only, commit_between } => {
                let mut draw = SplitMix64::new(seed, 0);
                let churned: Vec<u64> =
                    (0..IDS).filter(|_| draw.below(100) < usize::from(percent)).collect();
                for &id in &churned {
                    assert_eq!(db.delete(id).unwrap(), current.remove(&id).is_some());
                }
                if commit_between {
                    db.commit().unwrap();
                    committed = current.clone();
                }
                if !deletes_only {
                    let mut flat = Vec::with_capacity(churned.len() * DIM);
                    for &id in &churned {
                        let v = if new_vectors {
                            vector(&mut draw)
                        } else {
                            vectors[id as usize].clone()
                        };
                        current.insert(id, stored(metric, &v));
                        flat.extend_from_slice(&v);
                    }
                    db.upsert_batch(&churned, &flat).unwrap();
                }
            }
            Op::Commit => {
                db.commit().unwrap();
                committed = current.clone();
            }
            Op::Compact => drop(db.compact().unwrap()),
            Op::Gc => drop(db.gc().unwrap()),
            Op::Reopen => {
                drop(db);
                db = Db::open_in(Arc::clone(&store)).unwrap();
                current = committed.clone();
            }
            Op::Search { seed, k } => {
                let query = vector(&mut SplitMix64::new(seed, 1));
                let (hits, wanted) = check(&db, &current, metric, &query, k);
                matched += hits;
                searched += wanted;
            }
        }
        assert_eq!(db.len(), current.len());
    }
    db.commit().unwrap();
    db.compact().unwrap();
    drop(db);
    let db = Db::open_in(store).unwrap();
    for id in (0..IDS).step_by(7) {
        assert_eq!(db.get(id).unwrap().as_ref(), current.get(&id), "final get {id}");
    }
    // What compaction leaves holds no deleted row beyond the committed deletes' reach.
    let live: u64 = db.segments().iter().map(|s| s.live_rows).sum();
    assert_eq!(live, current.len() as u64);
    for _ in 0..20 {
        let (hits, wanted) = check(&db, &current, metric, &vector(&mut rng), 10);
        matched += hits;
        searched += wanted;
    }
    // Graphs that were churned, patched and merged still find the neighbours at L 64.
    let recall = matched as f64 / searched.max(1) as f64;
    assert!(recall >= 0.95, "recall@k at L 64: {recall} over {searched}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn churn_matches_the_model(
        metric_index in 0usize..3,
        ops in proptest::collection::vec(op(), 1..16),
    ) {
        run(Metric::ALL[metric_index], ops);
    }
}
