//! The read API on every tier at once (a Vamana segment, a flat segment, a pending tier, the
//! active memtable): range search, batch search on pools of any size, `get_many`, `contains`,
//! pinned snapshots and their scans, against an oracle; and the handle builder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use strata::compaction::{CompactAll, SegmentKind};
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Error, Metric, Neighbor, Options, SearchParams, Version};
use strata_quantize::rng::SplitMix64;

const DIM: usize = 8;

type Records = BTreeMap<u64, Vec<f32>>;

fn vector(id: u64, round: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(id, round);
    let centre = (id % 11) as f32;
    (0..DIM).map(|d| centre * ((d % 3) as f32 + 1.0) * 0.2 + rng.normal() as f32 * 0.3).collect()
}

/// A database with records in every tier: ids 0..3000 compacted into a Vamana segment (some
/// deleted, committed), 3000..3300 in a flat segment, then uncommitted: deletes in both, a
/// pending tier (a rotated memtable) and the active memtable. Returns the database, every
/// record now, and the committed records.
fn every_tier() -> (Arc<MemoryStore>, Db, Records, Records) {
    let store = Arc::new(MemoryStore::new());
    let options = Options::new(DIM, Metric::L2).diskann_min_rows(256).background_compaction(false);
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options).unwrap();
    let mut records = Records::new();
    let upsert_all = |db: &Db, ids: std::ops::Range<u64>, round: u64, records: &mut Records| {
        let ids: Vec<u64> = ids.collect();
        let rows: Vec<f32> = ids.iter().flat_map(|&id| vector(id, round)).collect();
        db.upsert_batch(&ids, &rows).unwrap();
        for id in ids {
            records.insert(id, vector(id, round));
        }
    };
    upsert_all(&db, 0..3000, 0, &mut records);
    db.commit().unwrap();
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact().unwrap();
    db.set_compaction_policy(Arc::new(strata::compaction::NoCompaction));
    for id in (0..3000).step_by(7) {
        assert!(db.delete(id).unwrap());
        records.remove(&id);
    }
    upsert_all(&db, 3000..3300, 0, &mut records);
    db.commit().unwrap();
    let kinds: Vec<SegmentKind> = db.segments().iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SegmentKind::Vamana, SegmentKind::Flat], "{:?}", db.segments());
    let committed = records.clone();

    // Uncommitted: deletes in both segments, re-upserts of committed ids, a pending tier.
    for id in (1..3300).step_by(13) {
        db.delete(id).unwrap();
        records.remove(&id);
    }
    db.set_memtable_rotate_rows(150);
    upsert_all(&db, 3300..3450, 0, &mut records); // fills the memtable, which rotates...
    upsert_all(&db, 2..400, 1, &mut records); // ...into a pending tier; these land in the next
    (store, db, records, committed)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    Metric::L2.distance(a, b)
}

/// The records within `radius` of `query`, nearest first.
fn within(records: &Records, query: &[f32], radius: f32) -> Vec<(u64, f32)> {
    let mut near: Vec<(u64, f32)> = records
        .iter()
        .map(|(&id, v)| (id, distance(query, v)))
        .filter(|&(_, d)| d <= radius)
        .collect();
    near.sort_by(|a, b| a.1.total_cmp(&b.1));
    near
}

/// Exactly the records within `radius` (those within rounding of it may go either way).
fn assert_range(got: &[Neighbor], records: &Records, query: &[f32], radius: f32, what: &str) {
    let tolerance = 1e-3 * (1.0 + radius);
    for hit in got {
        let stored = records.get(&hit.id).unwrap_or_else(|| panic!("{what}: dead id {}", hit.id));
        let d = distance(query, stored);
        assert!(d <= radius + tolerance, "{what}: {hit:?} beyond {radius}");
        assert!((hit.distance - d).abs() <= tolerance, "{what}: {hit:?} is at {d}");
    }
    for (id, d) in within(records, query, radius - tolerance) {
        assert!(got.iter().any(|n| n.id == id), "{what}: {id} at {d} missing");
    }
    let mut ids: Vec<u64> = got.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "{what}: an id twice");
}

#[test]
fn range_search_finds_exactly_the_records_within_the_radius_on_every_tier() {
    let (_store, db, records, committed) = every_tier();
    let snapshot = db.snapshot();
    for q in 0..12u64 {
        let query = vector(q * 97 + 5, 9);
        for quantile in [0.0005, 0.01, 0.05] {
            // A radius that holds about this share of the records.
            let mut all: Vec<f32> = records.values().map(|v| distance(&query, v)).collect();
            all.sort_by(f32::total_cmp);
            let radius = all[(all.len() as f64 * quantile) as usize];
            let exact = SearchParams::exact(usize::MAX).within(radius);
            let got = db.search_with(&query, exact.clone()).unwrap();
            assert_range(&got, &records, &query, radius, "handle, exact");
            let pinned = snapshot.search_with(&query, exact).unwrap();
            assert_range(&pinned, &committed, &query, radius, "snapshot, exact");

            // The default effort finds nearly all of them, and never one outside.
            let approximate = db.search_with(&query, SearchParams::new(usize::MAX).within(radius));
            let approximate = approximate.unwrap();
            let want = within(&records, &query, radius);
            let found = want.iter().filter(|(id, _)| approximate.iter().any(|n| n.id == *id));
            assert!(
                found.count() as f64 >= 0.9 * want.len() as f64,
                "default effort found too few of {}",
                want.len()
            );
            assert!(approximate.iter().all(|n| n.distance <= radius));

            // A cap keeps the nearest.
            let capped = db.search_with(&query, SearchParams::exact(5).within(radius)).unwrap();
            assert_eq!(capped.len(), got.len().min(5));
            assert_eq!(&capped[..], &got[..capped.len()]);
        }
    }
    let nothing = db.search_with(&vector(1, 9), SearchParams::exact(10).within(f32::NAN));
    assert!(nothing.unwrap().is_empty(), "a NaN radius matches nothing");
    let negative = db.search_with(&vector(1, 9), SearchParams::exact(10).within(-1.0));
    assert!(negative.unwrap().is_empty());
}

#[test]
fn batch_searches_equal_single_searches_on_any_pool() {
    let (store, db, _records, _) = every_tier();
    let queries: Vec<f32> = (0..64u64).flat_map(|q| vector(q * 31 + 1, 7)).collect();
    let params = SearchParams::new(10);
    let single: Vec<Vec<Neighbor>> =
        queries.chunks(DIM).map(|q| db.search_with(q, params.clone()).unwrap()).collect();
    assert_eq!(db.search_batch(&queries, params.clone()).unwrap(), single, "global pool");
    let exact: Vec<Vec<Neighbor>> =
        queries.chunks(DIM).map(|q| db.search_with(q, SearchParams::exact(10)).unwrap()).collect();
    let snapshot = db.snapshot();
    drop(db);
    // A reader on pools of 1 and 3 threads searches the committed version alike.
    let mut answers = Vec::new();
    for threads in [1, 3] {
        let reader = Db::builder_in(Arc::clone(&store) as Arc<dyn Storage>)
            .read_only()
            .threads(threads)
            .open()
            .unwrap();
        answers.push(reader.search_batch(&queries, params.clone()).unwrap());
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(snapshot.search_batch(&queries, params.clone()).unwrap(), answers[0]);
    assert_ne!(answers[0], exact, "the committed version differs from the handle's");

    // Bad input names the query; a ragged batch is refused; an empty one is empty.
    let mut bad = queries.clone();
    bad[3 * DIM + 2] = f32::NAN;
    match snapshot.search_batch(&bad, params.clone()) {
        Err(Error::InvalidRow { row: 3, id: None, source }) => {
            assert!(matches!(*source, Error::InvalidVector(_)), "{source}")
        }
        other => panic!("{other:?}"),
    }
    let ragged = snapshot.search_batch(&queries[..DIM + 1], params.clone());
    assert!(matches!(ragged, Err(Error::InvalidQueryBatch { floats: 9, dim: 8 })));
    assert!(snapshot.search_batch(&[], params).unwrap().is_empty());
}

#[test]
fn snapshots_scan_get_and_search_their_version_on_every_tier() {
    let (store, db, records, committed) = every_tier();
    // get_many and contains on the handle read every tier, uncommitted writes included.
    let ids: Vec<u64> = (0..3500).collect();
    for (id, got) in ids.iter().zip(db.get_many(&ids).unwrap()) {
        assert_eq!(got.as_ref(), records.get(id), "get_many {id}");
        assert_eq!(db.contains(*id), records.contains_key(id), "contains {id}");
    }

    let snapshot = db.snapshot();
    let first = snapshot.version();
    assert_eq!(first, db.version());
    // The handle goes on: commit, compact everything, collect garbage.
    db.commit().unwrap();
    db.set_compaction_policy(Arc::new(CompactAll));
    db.compact().unwrap();
    db.gc().unwrap();
    assert!(db.version() > first);

    let check = |snapshot: &strata::Snapshot, want: &Records, what: &str| {
        assert_eq!(snapshot.len(), want.len(), "{what}: len");
        let mut scanned = Records::new();
        let mut order = Vec::new();
        for entry in snapshot.scan() {
            let entry = entry.unwrap();
            order.push(entry.id);
            assert!(entry.attributes.is_empty());
            assert!(scanned.insert(entry.id, entry.vector).is_none(), "{what}: scanned twice");
        }
        assert_eq!(&scanned, want, "{what}: scan");
        let again: Vec<u64> = snapshot.scan().map(|e| e.unwrap().id).collect();
        assert_eq!(again, order, "{what}: the order is stable");
        for (id, got) in ids.iter().zip(snapshot.get_many(&ids).unwrap()) {
            assert_eq!(got.as_ref(), want.get(id), "{what}: get {id}");
            assert_eq!(snapshot.contains(*id).unwrap(), want.contains_key(id));
        }
        let query = vector(42, 3);
        let hits = snapshot.search_with(&query, SearchParams::exact(20)).unwrap();
        let mut truth: Vec<(u64, f32)> =
            want.iter().map(|(&id, v)| (id, distance(&query, v))).collect();
        truth.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (hit, (_, d)) in hits.iter().zip(&truth) {
            assert!((hit.distance - d).abs() <= 1e-3 * (1.0 + d), "{what}: {hit:?} vs {d}");
        }
        let near = snapshot.search_with(&query, SearchParams::new(10)).unwrap();
        let overlap = near.iter().filter(|n| truth[..10].iter().any(|t| t.0 == n.id)).count();
        assert!(overlap >= 8, "{what}: default search found {overlap} of 10");
    };
    check(&snapshot, &committed, "pinned before the commit");
    check(&db.snapshot(), &records, "after the commit and compaction");

    // Time travel: by version through the handle (reusing its segments) or without one, and
    // by time.
    check(&db.snapshot_at(first).unwrap(), &committed, "snapshot_at");
    let opened = Db::open_at_in(Arc::clone(&store) as Arc<dyn Storage>, first).unwrap();
    check(&opened, &committed, "open_at");
    let missing = db.snapshot_at(Version(first.0 + 1000)).unwrap_err();
    assert!(missing.to_string().contains("manifest"), "{missing}");

    drop(db);
    check(&snapshot, &committed, "after its handle is gone");
}

#[test]
fn open_as_of_finds_the_version_committed_by_then() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let db = Db::create(&root, Options::new(2, Metric::L2)).unwrap();
    let mut times = Vec::new();
    for id in 0..3u64 {
        db.upsert(id, &[id as f32, 1.0]).unwrap();
        let version = db.commit().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        times.push((version, SystemTime::now()));
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, (version, time)) in times.iter().enumerate() {
        let snapshot = Db::open_as_of(&root, *time).unwrap();
        assert_eq!(snapshot.version(), *version);
        assert_eq!(snapshot.len(), i + 1);
        assert!(snapshot.committed_at() <= *time);
    }
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    match Db::open_as_of(&root, long_ago) {
        Err(Error::NoVersionAt { oldest: Some(Version(1)), .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_builder_creates_if_missing_and_sets_handle_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let options = Options::new(2, Metric::L2);
    let db = Db::builder(&root).create_if_missing(options.clone()).threads(2).open().unwrap();
    assert!(db.options().compacts_in_background());
    db.upsert(1, &[1.0, 0.0]).unwrap();
    db.commit().unwrap();
    drop(db);
    // Exists now: opened, its stored options kept; this handle does not compact in the
    // background, which leaves the stored setting alone.
    let other = Options::new(5, Metric::Cosine);
    let db =
        Db::builder(&root).create_if_missing(other).background_compaction(false).open().unwrap();
    assert_eq!((db.dim(), db.version()), (2, Version(2)));
    assert!(!db.options().compacts_in_background());
    let locked = Db::create(&root, options.clone()).unwrap_err();
    assert!(matches!(locked, Error::Storage(strata::storage::Error::Locked { .. })), "{locked}");

    // A reader that refreshes itself.
    let reader =
        Db::builder(&root).read_only().refresh_every(Duration::from_millis(10)).open().unwrap();
    db.upsert(2, &[0.0, 1.0]).unwrap();
    let version = db.commit().unwrap();
    let started = Instant::now();
    while reader.version() != version {
        assert!(started.elapsed() < Duration::from_secs(30), "the reader never refreshed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(reader.contains(2));
    assert!(reader.refresh_error().is_none());
    drop(db);
    assert!(Db::open(&root).unwrap().options().compacts_in_background(), "stored: on");
    assert!(matches!(Db::create(&root, options.clone()), Err(Error::AlreadyExists { .. })));

    // Settings that make no sense are refused.
    let refused = Db::builder(&root).refresh_every(Duration::from_secs(1)).open();
    assert!(matches!(refused, Err(Error::InvalidOption { name: "refresh_every", .. })));
    let refused = Db::builder(&root).read_only().create_if_missing(options).open();
    assert!(matches!(refused, Err(Error::InvalidOption { name: "create_if_missing", .. })));
    let missing = Db::builder(dir.path().join("nothing")).open().unwrap_err();
    assert!(missing.to_string().contains("nothing"), "{missing}");
}

#[test]
fn stats_and_counters_describe_every_tier() {
    let (_store, db, records, _) = every_tier();
    let stats = db.stats().unwrap();
    assert_eq!(stats.records, records.len() as u64);
    assert_eq!(stats.version, db.version());
    assert_eq!(stats.versions_kept, db.versions().unwrap().len());
    assert!(stats.memtables.pending_tiers >= 1 && stats.memtables.active_rows > 0, "{stats:?}");
    assert!(stats.memtables.bytes > 0);
    let kinds: Vec<SegmentKind> = stats.by_kind.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, [SegmentKind::Flat, SegmentKind::Vamana]);
    let vamana = &stats.by_kind[1];
    assert_eq!((vamana.segments, vamana.rows), (1, 3000));
    assert_eq!(vamana.codecs, ["sq8"], "a Vamana segment under 32,768 rows keeps SQ8 codes");
    // Deleted rows: every seventh of the graph's, then every thirteenth of both segments' (an
    // id deleted twice counts once), the re-upserted ids' old rows, and pending tiers' deletes.
    let segment_deleted: u64 = stats.segments.iter().map(|s| s.info.rows - s.live_rows_now).sum();
    assert!(stats.deleted_rows >= segment_deleted && segment_deleted > 3000 / 7, "{stats:?}");
    let ram = stats.ram;
    assert_eq!(
        ram.total,
        ram.memtables + ram.id_index + ram.segment_codes + ram.attributes + ram.deletion_bitmaps
    );
    assert!(ram.id_index > 0 && ram.segment_codes > 0 && ram.deletion_bitmaps > 0);
    let files: u64 = stats.segments.iter().map(|s| s.file_bytes).sum();
    assert!(stats.disk_bytes > files, "deletion vectors count too");
    let compaction = &stats.compaction;
    assert!(!compaction.running && compaction.error.is_none());
    let last = compaction.last.as_ref().expect("one compaction ran");
    assert_eq!((last.inputs, last.output_rows, last.output), (1, 3000, SegmentKind::Vamana));
    assert!(last.duration > Duration::ZERO);

    let counters = stats.counters;
    assert_eq!(counters.commits, 2);
    assert_eq!(counters.compactions, 1);
    assert_eq!(counters.upserts, 3000 + 300 + 150 + 398);
    // A delete of an id already deleted deletes nothing and is not counted.
    let second = (1..3300u64).step_by(13).filter(|id| !(*id < 3000 && id % 7 == 0)).count();
    assert_eq!(counters.deletes, ((0..3000).step_by(7).count() + second) as u64);
    assert!(counters.bytes_written > files);
    db.search(&vector(1, 1), 10).unwrap();
    db.search_batch(&vector(2, 1).repeat(5), SearchParams::new(3)).unwrap();
    db.snapshot().search(&vector(1, 1), 10).unwrap();
    assert_eq!(db.counters().searches, counters.searches + 7);
    db.commit().unwrap();
    db.gc().unwrap();
    let after = db.counters();
    // The compaction collected after itself: that counts too.
    assert_eq!((after.commits, after.gcs), (3, 2));
}
