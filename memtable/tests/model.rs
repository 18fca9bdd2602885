//! Sequences of upserts, deletes and searches against a model, checked by proptest.

mod common;

use std::collections::BTreeMap;

use common::{Rng, brute_force};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use strata_memtable::{Memtable, Params};
use strata_quantize::Metric;

#[derive(Debug, Clone)]
enum Op {
    Upsert { id: u64, seed: u64 },
    Delete { id: u64 },
    Search { seed: u64, k: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..12u64, any::<u64>()).prop_map(|(id, seed)| Op::Upsert { id, seed }),
        1 => (0..12u64).prop_map(|id| Op::Delete { id }),
        2 => (any::<u64>(), 0..8usize).prop_map(|(seed, k)| Op::Search { seed, k }),
    ]
}

fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    // Small integers: exact distances, so ties are real ties and ordering is well defined.
    (0..dim)
        .map(|_| {
            (rng.next_u64() % 9) as f32 - 4.0
                + if rng.next_u64().is_multiple_of(2) { 0.5 } else { 0.0 }
        })
        .collect()
}

fn metric() -> impl Strategy<Value = Metric> {
    prop_oneof![Just(Metric::L2), Just(Metric::InnerProduct), Just(Metric::Cosine)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// At most 30 rows, so no neighbour list ever fills and is pruned: the graph stays
    /// connected, and a search with ef >= rows is exact.
    #[test]
    fn memtable_matches_a_model(metric in metric(), ops in prop::collection::vec(op(), 1..30)) {
        let dim = 4;
        let memtable = Memtable::new(dim, metric, Params::default().m(16)).unwrap();
        let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert { id, seed } => {
                    let v = vector(seed, dim);
                    if metric.needs_normalization() && v.iter().all(|x| *x == 0.0) {
                        prop_assert!(memtable.upsert(id, &v).is_err());
                        continue;
                    }
                    memtable.upsert(id, &v).unwrap();
                    model.insert(id, v);
                }
                Op::Delete { id } => {
                    prop_assert_eq!(memtable.delete(id).unwrap(), model.remove(&id).is_some());
                }
                Op::Search { seed, k } => {
                    let query = vector(seed ^ 0xABCD, dim);
                    if metric.needs_normalization() && query.iter().all(|x| *x == 0.0) {
                        continue;
                    }
                    let found = memtable.search(&query, k, 64).unwrap();
                    let live: Vec<(u64, Vec<f32>)> = model.iter().map(|(id, v)| (*id, v.clone())).collect();
                    let truth = brute_force(metric, &live, &query, k);
                    prop_assert_eq!(found.len(), truth.len());
                    for (f, t) in found.iter().zip(&truth) {
                        prop_assert!((f.distance - t.1).abs() <= 1e-4 * t.1.abs().max(1.0), "{:?} vs {:?}", found, truth);
                    }
                    // Every returned id is live, once, at its current vector's distance.
                    let mut seen = std::collections::HashSet::new();
                    for n in &found {
                        prop_assert!(seen.insert(n.id));
                        let current = model.get(&n.id);
                        prop_assert!(current.is_some(), "deleted id {} returned", n.id);
                        let d = brute_force(metric, &[(n.id, current.unwrap().clone())], &query, 1)[0].1;
                        prop_assert!((n.distance - d).abs() <= 1e-4 * d.abs().max(1.0));
                    }
                }
            }
            prop_assert_eq!(memtable.len(), model.len());
        }
        let frozen = memtable.freeze();
        let mut iterated: Vec<(u64, Vec<f32>)> = frozen.iter().map(|(id, v)| (id, v.to_vec())).collect();
        iterated.sort_by_key(|r| r.0);
        let expected: Vec<(u64, Vec<f32>)> =
            model.iter().map(|(id, v)| (*id, common::stored(metric, v))).collect();
        prop_assert_eq!(iterated, expected);
    }
}

#[derive(Debug, Clone)]
enum GraphOp {
    Upsert { id: u64, seed: u64 },
    Delete { id: u64 },
    Search { seed: u64, k: usize, ef: usize },
}

fn graph_op() -> impl Strategy<Value = GraphOp> {
    prop_oneof![
        6 => (0..60u64, any::<u64>()).prop_map(|(id, seed)| GraphOp::Upsert { id, seed }),
        2 => (0..60u64).prop_map(|id| GraphOp::Delete { id }),
        2 => (any::<u64>(), 1..10usize, 1..24usize).prop_map(|(seed, k, ef)| GraphOp::Search { seed, k, ef }),
    ]
}

proptest! {
    // A fixed seed: the graph is approximate, so a failure must reproduce, never flicker in CI.
    #![proptest_config(ProptestConfig { cases: 48, rng_seed: RngSeed::Fixed(0x5EED), ..ProptestConfig::default() })]

    /// Enough rows that level-0 lists fill and are pruned, and a small ef, so searches walk the
    /// graph through tombstones and superseded rows. Results are approximate, but every result
    /// must be live, unique, at its current vector's distance, sorted, and there must be k of
    /// them whenever k records are live.
    #[test]
    fn graph_search_keeps_its_invariants(metric in metric(), ops in prop::collection::vec(graph_op(), 1..250)) {
        let dim = 8;
        let memtable = Memtable::new(dim, metric, Params::default().m(4).ef_construction(16)).unwrap();
        let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for op in ops {
            match op {
                GraphOp::Upsert { id, seed } => {
                    let v = vector(seed, dim);
                    if memtable.upsert(id, &v).is_ok() {
                        model.insert(id, v);
                    }
                }
                GraphOp::Delete { id } => {
                    prop_assert_eq!(memtable.delete(id).unwrap(), model.remove(&id).is_some());
                }
                GraphOp::Search { seed, k, ef } => {
                    let query = vector(seed ^ 0xABCD, dim);
                    let Ok(found) = memtable.search(&query, k, ef) else { continue };
                    prop_assert_eq!(found.len(), k.min(model.len()), "k live results when k exist");
                    prop_assert!(found.windows(2).all(|w| w[0].distance <= w[1].distance));
                    let mut seen = std::collections::HashSet::new();
                    for n in &found {
                        prop_assert!(seen.insert(n.id), "id {} twice", n.id);
                        let current = model.get(&n.id);
                        prop_assert!(current.is_some(), "deleted id {} returned", n.id);
                        let d = brute_force(metric, &[(n.id, current.unwrap().clone())], &query, 1)[0].1;
                        prop_assert!((n.distance - d).abs() <= 1e-4 * d.abs().max(1.0), "stale version of {}", n.id);
                    }
                }
            }
        }
        // Enough rows that searches with ef < rows walked the graph (not the exact scan).
        prop_assert!(memtable.rows() > 24 || model.len() < 20);
    }
}
