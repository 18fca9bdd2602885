//! Attributes and filtered search against a brute-force oracle: random upserts with
//! attributes, attribute updates, batches, ingests, deletes, commits, compactions and reopens
//! for every metric; filtered searches from every record matching down to none, exact and at
//! default effort, must return exactly the matching live records' nearest (exact) or `min(k,
//! matching)` matching records (default effort); attributes read back as written.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata::compaction::CompactAll;
use strata::storage::{MemoryStore, Storage};
use strata::{Attributes, Db, Filter, Metric, Options, Schema, SearchParams, Value};
use strata_attributes::Record;
use strata_quantize::normalize;

const DIM: usize = 3;
const IDS: u64 = 24;
const TAGS: [&str; 4] = ["red", "green", "blue", "über"];

fn schema() -> Schema {
    Schema::new().keyword("tag").u64("n").keywords("tags").f64("score").bool("ok")
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, Vec<f32>, Attributes),
    Batch(Vec<(u64, Vec<f32>, Attributes)>),
    Ingest(Vec<(u64, Vec<f32>, Attributes)>),
    Update(u64, Attributes),
    Delete(u64),
    Commit,
    Compact,
    Reopen,
    Search(Vec<f32>, usize, Filter),
    Get(u64),
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-4i8..=4, DIM).prop_map(|v| {
        let mut v: Vec<f32> = v.into_iter().map(|x| f32::from(x) * 0.5).collect();
        if v.iter().all(|&x| x == 0.0) {
            v[0] = 1.0;
        }
        v
    })
}

fn attributes() -> impl Strategy<Value = Attributes> {
    (
        proptest::option::of(0..TAGS.len()),
        proptest::option::of(0u64..8),
        proptest::option::of(proptest::collection::vec(0..TAGS.len(), 0..3)),
        proptest::option::of(-4i32..4),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
    )
        .prop_map(|(tag, n, tags, score, ok, payload)| {
            let mut a = Attributes::new();
            if let Some(t) = tag {
                a = a.set("tag", TAGS[t]);
            }
            if let Some(n) = n {
                a = a.set("n", n);
            }
            if let Some(tags) = tags {
                a = a.set("tags", tags.into_iter().map(|t| TAGS[t]).collect::<Vec<_>>());
            }
            if let Some(s) = score {
                a = a.set("score", f64::from(s) / 2.0);
            }
            if let Some(ok) = ok {
                a = a.set("ok", ok);
            }
            if let Some(p) = payload {
                a = a.payload(p);
            }
            a
        })
}

fn filter() -> impl Strategy<Value = Filter> {
    let leaf = prop_oneof![
        (0..TAGS.len()).prop_map(|t| Filter::eq("tag", TAGS[t])),
        (0..TAGS.len()).prop_map(|t| Filter::contains("tags", TAGS[t])),
        (0u64..9).prop_map(|n| Filter::lt("n", n)),
        (0u64..9, 0u64..9).prop_map(|(a, b)| Filter::range("n", a..=b)),
        (-5i32..5).prop_map(|s| Filter::ge("score", f64::from(s) / 2.0)),
        any::<bool>().prop_map(|b| Filter::eq("ok", b)),
        Just(Filter::exists("tag")),
        Just(Filter::parse("tag IN ('red', 'über') OR n = 3").unwrap()),
        Just(Filter::parse("NOT (tag = 'red') AND n >= 2").unwrap()),
        (0u64..IDS).prop_map(|n| Filter::eq("n", n)), // often nothing
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(Filter::not),
        ]
    })
}

fn rows() -> impl Strategy<Value = Vec<(u64, Vec<f32>, Attributes)>> {
    proptest::collection::vec((0..IDS, vector(), attributes()), 0..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..IDS, vector(), attributes()).prop_map(|(id, v, a)| Op::Upsert(id, v, a)),
        2 => rows().prop_map(Op::Batch),
        1 => rows().prop_map(Op::Ingest),
        2 => (0..IDS, attributes()).prop_map(|(id, a)| Op::Update(id, a)),
        2 => (0..IDS).prop_map(Op::Delete),
        2 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        5 => (vector(), 1usize..30, filter()).prop_map(|(q, k, f)| Op::Search(q, k, f)),
        2 => (0..IDS).prop_map(Op::Get),
    ]
}

/// id -> (stored vector, attributes as the schema keeps them).
type Records = BTreeMap<u64, (Vec<f32>, Record)>;

fn stored(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    if metric.needs_normalization() {
        normalize(&mut v).unwrap();
    }
    v
}

fn check_search(
    db: &Db,
    model: &Records,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: &Filter,
) {
    let schema = schema();
    let predicate = filter.bind(&schema).unwrap();
    let q = stored(metric, query);
    let matching: Vec<(f32, u64)> = model
        .iter()
        .filter(|(_, (_, record))| predicate.matches(record))
        .map(|(&id, (v, _))| (metric.distance(&q, v), id))
        .collect();
    let mut want = matching.clone();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    want.truncate(k);

    let exact = db.search_with(query, SearchParams::exact(k).filter(filter.clone())).unwrap();
    assert_eq!(exact.len(), want.len(), "exact count for {filter:?}: {exact:?} vs {want:?}");
    let tolerance = |d: f32| 1e-4 * (1.0 + d.abs());
    for (hit, (want_distance, _)) in exact.iter().zip(&want) {
        assert!(
            (hit.distance - want_distance).abs() <= tolerance(*want_distance),
            "{filter:?}: {exact:?} vs {want:?}"
        );
    }
    // Default effort: still min(k, matching) results, each a matching live record, no repeats.
    let found = db.search_with(query, SearchParams::new(k).filter(filter.clone())).unwrap();
    assert_eq!(found.len(), k.min(matching.len()), "default count for {filter:?}");
    for hit in exact.iter().chain(&found) {
        let (_, record) = model.get(&hit.id).unwrap_or_else(|| panic!("dead id {}", hit.id));
        assert!(predicate.matches(record), "{} does not match {filter:?}", hit.id);
    }
    let mut ids: Vec<u64> = found.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), found.len(), "an id returned twice");
}

fn run(metric: Metric, ops: Vec<Op>, rotate_rows: usize, compact_all: bool) {
    let schema = schema();
    let record = |a: &Attributes| Record::from_attributes(&schema, a).unwrap();
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let options = Options::new(DIM, metric)
        .compaction_threshold(2)
        .keep_versions(2)
        .attributes(schema.clone());
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
    let split = |rows: &[(u64, Vec<f32>, Attributes)]| {
        let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let attrs: Vec<Attributes> = rows.iter().map(|r| r.2.clone()).collect();
        (ids, flat, attrs)
    };
    for op in ops {
        match op {
            Op::Upsert(id, v, a) => {
                db.upsert_with(id, &v, &a).unwrap();
                current.insert(id, (stored(metric, &v), record(&a)));
            }
            Op::Batch(rows) => {
                let (ids, flat, attrs) = split(&rows);
                db.upsert_batch_with(&ids, &flat, &attrs).unwrap();
                for (id, v, a) in rows {
                    current.insert(id, (stored(metric, &v), record(&a)));
                }
            }
            Op::Ingest(rows) => {
                let (ids, flat, attrs) = split(&rows);
                db.ingest_with(&ids, &flat, &attrs).unwrap();
                for (id, v, a) in rows {
                    current.insert(id, (stored(metric, &v), record(&a)));
                }
                committed = current.clone();
            }
            Op::Update(id, a) => {
                let exists = db.update_attributes(id, &a).unwrap();
                assert_eq!(exists, current.contains_key(&id));
                if let Some(entry) = current.get_mut(&id) {
                    entry.1 = record(&a);
                }
            }
            Op::Delete(id) => {
                assert_eq!(db.delete(id).unwrap(), current.remove(&id).is_some());
            }
            Op::Commit => {
                db.commit().unwrap();
                committed = current.clone();
            }
            Op::Compact => drop(db.compact().unwrap()),
            Op::Reopen => {
                drop(db);
                db = Db::open_in(Arc::clone(&store)).unwrap();
                configure(&db);
                current = committed.clone();
            }
            Op::Search(q, k, f) => check_search(&db, &current, metric, &q, k, &f),
            Op::Get(id) => {
                let got = db.get_attributes(id).unwrap();
                let want = current.get(&id).map(|(_, r)| r.to_attributes(&schema));
                assert_eq!(got, want, "attributes of {id}");
            }
        }
    }
    drop(db);
    let db = Db::open_in(store).unwrap();
    assert_eq!(db.options().schema(), &schema, "the schema is stored");
    for id in 0..IDS {
        let want = committed.get(&id).map(|(_, r)| r.to_attributes(&schema));
        assert_eq!(db.get_attributes(id).unwrap(), want, "final attributes of {id}");
    }
    check_search(&db, &committed, metric, &[1.0, 0.5, -0.5], 30, &Filter::exists("tag").not());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn filtered_search_matches_the_model(
        metric_index in 0usize..3,
        ops in proptest::collection::vec(op(), 1..50),
        rotate_rows in prop_oneof![Just(usize::MAX), 1usize..8],
        compact_all in any::<bool>(),
    ) {
        run(Metric::ALL[metric_index], ops, rotate_rows, compact_all);
    }
}

#[test]
fn bad_attributes_and_filters_are_refused_with_their_position() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let db = Db::create_in(store, Options::new(2, Metric::L2).attributes(schema())).unwrap();
    let err = db.upsert_with(1, &[1.0, 0.0], &Attributes::new().set("nope", 1)).unwrap_err();
    assert!(err.to_string().contains("unknown attribute \"nope\""), "{err}");
    let err = db.upsert_with(1, &[1.0, 0.0], &Attributes::new().set("n", "x")).unwrap_err();
    assert!(err.to_string().contains("expected u64"), "{err}");
    assert!(!db.contains(1), "a refused upsert changes nothing");
    let err = db
        .search_with(
            &[1.0, 0.0],
            SearchParams::new(3).filter(Filter::parse("n >= 2 AND zz = 1").unwrap()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("unknown attribute \"zz\" at byte 11"), "{err}");
    assert!(Filter::parse("n >= ").unwrap_err().to_string().contains("at byte"));
    let err =
        db.upsert_batch_with(&[1, 2], &[1.0, 0.0, 0.0, 1.0], &[Attributes::new()]).unwrap_err();
    assert!(err.to_string().contains("2 ids but 1 attribute sets"), "{err}");
    assert_eq!(db.get_attributes(5).unwrap(), None);
    db.upsert(5, &[0.0, 1.0]).unwrap();
    assert_eq!(db.get_attributes(5).unwrap(), Some(Attributes::new()));
    assert_eq!(
        db.get_attributes(5).unwrap().unwrap().get("n"),
        None::<&Value>,
        "a record written without attributes has none"
    );
}

/// Graph segments under filters: a Vamana segment, a flat one and the memtable, with deletes,
/// searched at default effort under filters from half the rows down to one, independent of
/// the vectors and correlated with them. Every search returns `min(k, matching)` matching
/// records, and recall against the filtered brute force stays near an unfiltered search's.
#[test]
fn filtered_search_on_graph_segments_keeps_count_and_recall() {
    use strata_quantize::rng::SplitMix64;
    const DIM: usize = 16;
    const ROWS: u64 = 6000;
    const CLUSTERS: u64 = 20;
    let mut rng = SplitMix64::new(11, 0);
    let centres: Vec<Vec<f32>> =
        (0..CLUSTERS).map(|_| (0..DIM).map(|_| rng.normal() as f32 * 4.0).collect()).collect();
    let row = |rng: &mut SplitMix64, cluster: u64| -> Vec<f32> {
        centres[cluster as usize].iter().map(|c| c + rng.normal() as f32).collect()
    };
    let schema = Schema::new().keyword("tag").u64("bucket").bool("half").u64("region").u64("one");
    let attributes = |id: u64, cluster: u64| {
        let mut a = Attributes::new()
            .set("tag", format!("t{}", id % 100))
            .set("bucket", id % 10)
            .set("half", id.is_multiple_of(2))
            .set("region", cluster);
        if id == 4321 {
            a = a.set("one", 1u64);
        }
        a
    };
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let options = Options::new(DIM, Metric::L2)
        .diskann_min_rows(1000)
        .compaction_threshold(2)
        .background_compaction(false)
        .attributes(schema.clone());
    let db = Db::create_in(store, options).unwrap();
    let mut model: BTreeMap<u64, (Vec<f32>, Record)> = BTreeMap::new();
    let mut write = |db: &Db, ids: std::ops::Range<u64>, ingest: bool| {
        let mut flat = Vec::new();
        let mut attrs = Vec::new();
        let ids: Vec<u64> = ids.collect();
        for &id in &ids {
            let cluster = id % CLUSTERS;
            let v = row(&mut rng, cluster);
            let a = attributes(id, cluster);
            model.insert(id, (v.clone(), Record::from_attributes(&schema, &a).unwrap()));
            flat.extend(v);
            attrs.push(a);
        }
        if ingest {
            db.ingest_with(&ids, &flat, &attrs).unwrap();
        } else {
            db.upsert_batch_with(&ids, &flat, &attrs).unwrap();
        }
    };
    write(&db, 0..2500, true);
    write(&db, 2500..5000, true);
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact().unwrap();
    write(&db, 5000..5600, true); // a flat segment
    write(&db, 5600..ROWS, false); // the memtable
    for id in (0..ROWS).step_by(7) {
        db.delete(id).unwrap();
        model.remove(&id);
    }
    let kinds: Vec<String> =
        db.segment_details().iter().map(|s| format!("{:?}", s.info.kind)).collect();
    assert!(kinds.iter().any(|k| k == "Vamana") && kinds.iter().any(|k| k == "Flat"), "{kinds:?}");

    let filters = [
        ("50% independent", Filter::eq("half", true)),
        ("10% independent", Filter::eq("bucket", 3)),
        ("1% independent", Filter::eq("tag", "t42")),
        ("10% correlated", Filter::is_in("region", [2u64, 7])),
        ("5% correlated", Filter::eq("region", 5)),
        ("compound", Filter::parse("half = true AND (bucket < 2 OR tag IN ('t1', 't3'))").unwrap()),
        ("single match", Filter::eq("one", 1)),
        ("none", Filter::eq("one", 2)),
    ];
    let k = 10;
    let mut queries = SplitMix64::new(5, 1);
    for (name, filter) in &filters {
        let predicate = filter.bind(&schema).unwrap();
        let (mut hits, mut wanted) = (0usize, 0usize);
        for _ in 0..40 {
            let cluster = queries.below(CLUSTERS as usize) as u64;
            let query = row(&mut queries, cluster);
            let mut truth: Vec<(f32, u64)> = model
                .iter()
                .filter(|(_, (_, r))| predicate.matches(r))
                .map(|(&id, (v, _))| (Metric::L2.distance(&query, v), id))
                .collect();
            truth.sort_by(|a, b| a.0.total_cmp(&b.0));
            let matching = truth.len();
            truth.truncate(k);
            let found =
                db.search_with(&query, SearchParams::new(k).filter(filter.clone())).unwrap();
            assert_eq!(found.len(), k.min(matching), "{name}: result count");
            for hit in &found {
                assert!(predicate.matches(&model[&hit.id].1), "{name}: {} does not match", hit.id);
            }
            hits += found.iter().filter(|n| truth.iter().any(|t| t.1 == n.id)).count();
            wanted += truth.len();
        }
        let recall = if wanted == 0 { 1.0 } else { hits as f64 / wanted as f64 };
        assert!(recall >= 0.9, "{name}: recall {recall:.3}");
    }
    // Attributes survive the compaction into the graph and back out of it.
    assert_eq!(db.get_attributes(4321).unwrap().unwrap().get("one"), Some(&Value::U64(1)));
}

/// A flipped byte or a cut anywhere in a segment carrying attributes (flat and Vamana) is a
/// clear corruption error naming the object, at open or on first read; otherwise every
/// record's attributes and a filtered search read exactly as before.
#[test]
fn damaged_attribute_sections_are_clear_errors() {
    let schema = Schema::new().u64("n").keyword("tag");
    let attrs = |id: u64| {
        Attributes::new()
            .set("n", id % 7)
            .set("tag", TAGS[(id % 4) as usize])
            .payload(format!("doc {id}").into_bytes())
    };
    let vector = |id: u64| vec![(id % 17) as f32, (id / 17) as f32, 1.0];
    let store = Arc::new(MemoryStore::new());
    let options = Options::new(3, Metric::L2)
        .diskann_min_rows(256)
        .background_compaction(false)
        .keep_versions(1)
        .attributes(schema);
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options).unwrap();
    for range in [0..150u64, 150..300] {
        let ids: Vec<u64> = range.clone().collect();
        let flat: Vec<f32> = ids.iter().flat_map(|&id| vector(id)).collect();
        let a: Vec<Attributes> = ids.iter().map(|&id| attrs(id)).collect();
        db.ingest_with(&ids, &flat, &a).unwrap();
    }
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact().unwrap();
    let ids: Vec<u64> = (300..340).collect();
    let flat: Vec<f32> = ids.iter().flat_map(|&id| vector(id)).collect();
    db.ingest_with(&ids, &flat, &ids.iter().map(|&id| attrs(id)).collect::<Vec<_>>()).unwrap();
    db.gc().unwrap(); // only live segments remain: damage to each must be noticed
    drop(db);
    let filter = Filter::parse("n = 3 AND tag != 'red'").unwrap();
    let read = |store: &Arc<MemoryStore>| -> Result<(), strata::Error> {
        let db = Db::open_in(Arc::clone(store) as Arc<dyn Storage>)?;
        for id in 0..340 {
            assert_eq!(db.get_attributes(id)?, Some(attrs(id)), "undetected damage to {id}");
        }
        let hits = db.search_with(&vector(5), SearchParams::exact(340).filter(filter.clone()))?;
        let want = (0..340).filter(|id| id % 7 == 3 && id % 4 != 0).count();
        assert_eq!(hits.len(), want, "undetected damage changed a filtered search");
        Ok(())
    };
    read(&store).unwrap();
    let segments: Vec<String> =
        store.list("segments/").unwrap().into_iter().map(|m| m.key).collect();
    assert!(segments.iter().any(|k| k.ends_with(".vamana")), "{segments:?}");
    assert!(segments.iter().any(|k| k.ends_with(".flat")), "{segments:?}");
    for key in &segments {
        let original = store.get(key).unwrap().to_vec();
        // Every few bytes of the attribute and payload sections (from the directory: the
        // trailer before the 32-byte footer), and a stride over the rest.
        let le = |at: usize, n: usize| {
            original[at..at + n].iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b)) as usize
        };
        let body = original.len() - 32;
        let (directory, count) = (le(body - 16, 8), le(body - 8, 4));
        let mut positions: Vec<usize> = Vec::new();
        for entry in (0..count).map(|i| directory + 32 * i) {
            if matches!(le(entry, 4), 16 | 17) {
                let (start, len) = (le(entry + 8, 8), le(entry + 16, 8));
                positions.extend((start..start + len).step_by(7));
            }
        }
        assert!(positions.len() > 100, "{key}: both sections were found");
        positions.extend((0..original.len()).step_by(1499));
        for at in positions {
            let mut damaged = original.clone();
            damaged[at] ^= 0x24;
            store.put(key, &damaged).unwrap();
            if let Err(e) = read(&store) {
                assert!(e.is_corruption(), "{key} byte {at}: {e:?}");
                assert!(e.to_string().contains(key.as_str()), "{key} byte {at}: {e}");
            }
        }
        for len in [original.len() / 2, original.len() - 100, original.len() - 1] {
            store.put(key, &original[..len]).unwrap();
            let e = read(&store).expect_err("a cut segment must be caught");
            assert!(e.is_corruption() && e.to_string().contains(key.as_str()), "{e}");
        }
        store.put(key, &original).unwrap();
    }
    read(&store).unwrap();
}
