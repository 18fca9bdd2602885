//! Compactions racing garbage collection, under a small memory budget, and with broken plans:
//! regressions found in review.

use std::sync::Arc;

use strata::compaction::{CompactionPolicy, Plan, PolicySettings, SegmentInfo, SegmentKind};
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Error, Metric, Options};
use strata_test_support::PausingStore;

/// Merges segments 0 and 1 while both exist (one compaction, nothing after it).
#[derive(Debug)]
struct MergeFirstTwo;

impl CompactionPolicy for MergeFirstTwo {
    fn plan(&self, segments: &[SegmentInfo], _: &PolicySettings) -> Option<Plan> {
        let has = |id| segments.iter().any(|s| s.id == id);
        (has(0) && has(1)).then(|| Plan::rebuild(vec![0, 1], SegmentKind::Flat))
    }
}

/// GC runs while a compaction's output is written but not yet committed, after a commit raised
/// the manifest's `next_segment_id` past the output's id: the output is in flight, so GC must
/// spare it, or the compaction commits a manifest naming a deleted file.
#[test]
fn gc_during_a_compaction_spares_its_output() {
    let inner = Arc::new(MemoryStore::new());
    let (store, pause) = PausingStore::new(Arc::clone(&inner) as Arc<dyn Storage>);
    let options = Options::new(2, Metric::L2).background_compaction(false).keep_versions(1);
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options).unwrap();
    db.upsert(1, &[1.0, 0.0]).unwrap();
    db.commit().unwrap(); // segment 0
    db.upsert(2, &[2.0, 0.0]).unwrap();
    db.commit().unwrap(); // segment 1
    db.set_compaction_policy(Arc::new(MergeFirstTwo));
    // The compaction's output will be segment 2.
    store.pause_after_map("segments/0000000000000002-");

    std::thread::scope(|scope| {
        let compaction = scope.spawn(|| db.compact());
        pause.wait(); // output written and opened, not committed
        db.upsert(3, &[3.0, 0.0]).unwrap();
        db.commit().unwrap(); // segment 3; the manifest's next_segment_id is now 4
        let stats = db.gc().unwrap();
        assert!(stats.manifests > 0, "{stats:?}");
        pause.resume();
        compaction.join().unwrap().unwrap();
    });
    for id in 1..=3 {
        assert!(db.get(id).unwrap().is_some(), "in memory: {id}");
    }
    db.close().unwrap();

    // The newest manifest names segment 2; is its file still there?
    let reopened = Db::open_in(Arc::clone(&inner) as Arc<dyn Storage>);
    let reopened = reopened.expect("reopen after a compaction that raced gc");
    for id in 1..=3 {
        assert!(reopened.get(id).unwrap().is_some(), "after reopen: {id}");
    }
}

/// Four commits of 6,000 rows of 512 dimensions under a 64 MiB compaction budget: the policy
/// once planned a Vamana merge the builder refused (it sized merges for residual-PQ codes,
/// while small outputs keep SQ8), poisoning the handle.
#[test]
fn the_default_policy_plans_merges_the_build_budget_allows() {
    const D: usize = 512;
    let options = Options::new(D, Metric::L2)
        .compaction_memory_budget(64 << 20)
        .background_compaction(false)
        .hnsw_m(4)
        .hnsw_ef_construction(8);
    let db = Db::create_in(Arc::new(MemoryStore::new()), options).unwrap();
    let mut rng = strata_quantize::rng::SplitMix64::new(7, 0);
    for batch in 0..4u64 {
        let ids: Vec<u64> = (batch * 6000..(batch + 1) * 6000).collect();
        let vectors: Vec<f32> = (0..ids.len() * D).map(|_| rng.normal() as f32).collect();
        db.upsert_batch(&ids, &vectors).unwrap();
        db.commit().unwrap();
    }
    assert_eq!(db.segments().len(), 4);
    let compacted = db.compact();
    assert!(compacted.is_ok(), "{compacted:?}");
    db.upsert(1_000_000, &[0.5; D]).expect("writes still accepted");
}

/// GC runs after a compaction took its snapshot and before it read an input's committed
/// deletion vector, after a commit wrote a newer one: GC must spare the one the compaction is
/// about to read.
#[test]
fn gc_during_a_compaction_spares_the_deletion_vectors_it_reads() {
    let inner = Arc::new(MemoryStore::new());
    let (store, pause) = PausingStore::new(Arc::clone(&inner) as Arc<dyn Storage>);
    let options = Options::new(2, Metric::L2).background_compaction(false).keep_versions(1);
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options).unwrap();
    for id in 1..=3 {
        db.upsert(id, &[id as f32, 0.0]).unwrap();
    }
    db.commit().unwrap(); // segment 0
    db.delete(1).unwrap();
    db.upsert(4, &[4.0, 0.0]).unwrap();
    db.commit().unwrap(); // segment 0 gets a deletion vector; segment 1
    db.set_compaction_policy(Arc::new(MergeFirstTwo));
    store.pause_before_get("deletes/0000000000000000-");

    std::thread::scope(|scope| {
        let compaction = scope.spawn(|| db.compact());
        pause.wait(); // about to read segment 0's deletion vector
        db.delete(2).unwrap();
        db.commit().unwrap(); // a newer deletion vector for segment 0
        eprintln!("gc: {:?}", db.gc().unwrap());
        pause.resume();
        let compacted = compaction.join().unwrap();
        assert!(compacted.is_ok(), "{compacted:?}");
    });
    db.upsert(5, &[5.0, 0.0]).expect("writes still accepted");
    db.commit().unwrap();
    db.close().unwrap();
    let reopened = Db::open_in(inner as Arc<dyn Storage>).unwrap();
    for (id, live) in [(1, false), (2, false), (3, true), (4, true), (5, true)] {
        assert_eq!(reopened.get(id).unwrap().is_some(), live, "id {id} after reopen");
    }
}

/// A policy that names segment 0 twice (`CompactionPolicy` is public, so plans are checked).
#[derive(Debug)]
struct Twice;

impl CompactionPolicy for Twice {
    fn plan(&self, segments: &[SegmentInfo], _: &PolicySettings) -> Option<Plan> {
        segments.iter().any(|s| s.id == 0).then(|| Plan {
            inputs: vec![0, 0],
            output: SegmentKind::Flat,
            into: None,
        })
    }
}

#[test]
fn a_plan_naming_a_segment_twice_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let options = Options::new(2, Metric::L2).background_compaction(false);
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options).unwrap();
    db.upsert(1, &[1.0, 0.0]).unwrap();
    db.commit().unwrap();
    db.set_compaction_policy(Arc::new(Twice));
    let error = db.compact().unwrap_err();
    assert!(matches!(error, Error::InvalidPlan { .. }), "{error}");
    assert_eq!(db.segments().len(), 1, "nothing was written");
    let hits = db.search_with(&[1.0, 0.0], strata::SearchParams::exact(10)).unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
}

/// Merges into a segment with no graph, or into one that is not an input: refused.
#[test]
fn a_merge_into_needs_a_graph_among_its_inputs() {
    #[derive(Debug)]
    struct Into(Plan);
    impl CompactionPolicy for Into {
        fn plan(&self, _: &[SegmentInfo], _: &PolicySettings) -> Option<Plan> {
            Some(self.0.clone())
        }
    }
    let bad = [
        Plan::merge_into(0, [1]),
        Plan { inputs: vec![0, 1], output: SegmentKind::Vamana, into: Some(5) },
        Plan { inputs: vec![0, 1], output: SegmentKind::Flat, into: Some(0) },
    ];
    for plan in bad {
        let options = Options::new(2, Metric::L2).background_compaction(false);
        let db = Db::create_in(Arc::new(MemoryStore::new()), options).unwrap();
        for id in 0..2 {
            db.upsert(id, &[id as f32, 0.0]).unwrap();
            db.commit().unwrap();
        }
        db.set_compaction_policy(Arc::new(Into(plan.clone())));
        let error = db.compact().unwrap_err();
        assert!(matches!(error, Error::InvalidPlan { .. }), "{plan:?}: {error}");
        assert_eq!(db.segments().len(), 2, "{plan:?}: nothing was written");
    }
}

/// A policy that keeps naming a segment that does not exist: refused, not looped on forever.
#[derive(Debug)]
struct Missing;

impl CompactionPolicy for Missing {
    fn plan(&self, _: &[SegmentInfo], _: &PolicySettings) -> Option<Plan> {
        Some(Plan::rebuild(vec![77], SegmentKind::Flat))
    }
}

#[test]
fn a_plan_naming_missing_segments_again_and_again_is_refused() {
    let options = Options::new(2, Metric::L2).background_compaction(false);
    let db = Db::create_in(Arc::new(MemoryStore::new()), options).unwrap();
    db.upsert(1, &[1.0, 0.0]).unwrap();
    db.commit().unwrap();
    db.set_compaction_policy(Arc::new(Missing));
    let error = db.compact().unwrap_err();
    assert!(error.to_string().contains("not live"), "{error}");
}
