//! The engine's public API: lifecycle, visibility, errors on bad input, readers, time travel,
//! garbage collection and the single-writer rules.

use std::sync::Arc;

use strata::storage::{MemoryStore, Storage};
use strata::{Db, Error, Metric, Options, SearchParams, Version};

fn options() -> Options {
    Options::new(4, Metric::L2)
}

fn v(x: f32) -> [f32; 4] {
    [x, x * 0.5, 1.0 - x, 0.25]
}

#[test]
fn writes_are_visible_at_once_and_durable_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let db = Db::create(&root, options()).unwrap();
    assert_eq!(db.version(), Version(1));
    for id in 0..10 {
        db.upsert(id, &v(id as f32)).unwrap();
    }
    assert_eq!(db.search(&v(3.0), 1).unwrap()[0].id, 3);
    assert_eq!(db.commit().unwrap(), Version(2));
    assert_eq!(db.commit().unwrap(), Version(2), "nothing to commit");
    db.upsert(100, &v(100.0)).unwrap(); // never committed
    assert!(db.delete(4).unwrap());
    assert!(!db.delete(4).unwrap());
    drop(db);

    let db = Db::open(&root).unwrap();
    assert_eq!(db.version(), Version(2));
    assert_eq!(db.len(), 10);
    assert_eq!(db.get(100).unwrap(), None, "uncommitted writes vanish");
    assert_eq!(db.get(4).unwrap(), Some(v(4.0).to_vec()), "uncommitted delete vanishes");
    let hits = db.search_with(&v(3.0), SearchParams::exact(3)).unwrap();
    assert_eq!(hits.iter().map(|n| n.id).collect::<Vec<_>>(), [3, 2, 4]);

    // Delete-only and upsert-over-segment commits.
    assert!(db.delete(2).unwrap());
    db.upsert(3, &v(7.5)).unwrap();
    assert_eq!(db.commit().unwrap(), Version(3));
    drop(db);
    let db = Db::open(&root).unwrap();
    assert_eq!(db.get(2).unwrap(), None);
    assert_eq!(db.get(3).unwrap(), Some(v(7.5).to_vec()));
    assert_eq!(db.len(), 9);
    let hits = db.search_with(&v(3.0), SearchParams::exact(20)).unwrap();
    assert_eq!(hits.len(), 9);
    assert_eq!(hits.iter().filter(|n| n.id == 3).count(), 1);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let db = Db::create_in(Arc::new(MemoryStore::new()), Options::new(3, Metric::Cosine)).unwrap();
    db.upsert(1, &[1.0, 0.0, 0.0]).unwrap();
    let bad: [&[f32]; 4] =
        [&[1.0, 2.0], &[f32::NAN, 0.0, 0.0], &[0.0, f32::INFINITY, 0.0], &[0.0; 3]];
    for vector in bad {
        assert!(matches!(db.upsert(2, vector), Err(Error::InvalidVector(_))), "{vector:?}");
        assert!(matches!(db.search(vector, 1), Err(Error::InvalidVector(_))), "{vector:?}");
    }
    // A batch with one bad row applies nothing.
    let rows = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, f32::NAN, 0.0, 0.0];
    // The error names the row and its id, and keeps the cause to match on.
    let named = |error: Error| match error {
        Error::InvalidRow { row: 2, id: Some(7), source } => {
            assert!(matches!(*source, Error::InvalidVector(_)), "{source}");
            assert!(source.to_string().contains("NaN") || !source.to_string().is_empty());
        }
        other => panic!("{other:?}"),
    };
    named(db.upsert_batch(&[5, 6, 7], &rows).unwrap_err());
    assert!(matches!(db.upsert_batch(&[5, 6], &rows), Err(Error::InvalidBatch { .. })));
    named(db.ingest(&[5, 6, 7], &rows).unwrap_err());
    let error = db.ingest(&[5, 6, 7], &rows).unwrap_err().to_string();
    assert!(error.starts_with("row 2 (id 7): "), "{error}");
    assert!(matches!(db.ingest(&[5, 6], &rows), Err(Error::InvalidBatch { .. })));
    assert_eq!((db.get(5).unwrap(), db.get(6).unwrap()), (None, None));
    assert_eq!(db.len(), 1);
    assert_eq!(db.version(), Version(1), "a refused ingest commits nothing");

    assert!(matches!(
        Db::create_in(Arc::new(MemoryStore::new()), Options::new(0, Metric::L2)),
        Err(Error::InvalidOption { name: "dim", .. })
    ));
    assert!(matches!(
        Db::create_in(Arc::new(MemoryStore::new()), options().keep_versions(0)),
        Err(Error::InvalidOption { name: "keep_versions", .. })
    ));
}

#[test]
fn batches_insert_on_every_core_and_the_last_duplicate_wins() {
    let db = Db::create_in(Arc::new(MemoryStore::new()), options()).unwrap();
    let n = 10_000;
    let ids: Vec<u64> = (0..n).map(|i| i % 9_000).collect();
    let vectors: Vec<f32> = (0..n).flat_map(|i| v(i as f32 / 100.0)).collect();
    db.upsert_batch(&ids, &vectors).unwrap();
    assert_eq!(db.len(), 9_000);
    assert_eq!(db.get(5).unwrap(), Some(v(9_005.0 / 100.0).to_vec()));
    db.commit().unwrap();
    assert_eq!(db.get(5).unwrap(), Some(v(9_005.0 / 100.0).to_vec()));
    assert_eq!(db.get(8_999).unwrap(), Some(v(8_999.0 / 100.0).to_vec()));
}

/// The bulk path replaces records wherever they are (committed segments, frozen and active
/// memtables), keeps the last duplicate, commits everything before it, and survives a reopen.
#[test]
fn ingest_upserts_and_commits_a_batch_as_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    let db = Db::create(&root, Options::new(4, Metric::Cosine)).unwrap();
    db.set_compaction_policy(Arc::new(strata::compaction::NoCompaction));
    db.upsert_batch(&[1, 2, 3], &[v(1.0), v(2.0), v(3.0)].concat()).unwrap();
    db.commit().unwrap(); // 1, 2, 3 in a segment
    db.upsert(4, &v(4.0)).unwrap(); // uncommitted, in the active memtable
    db.upsert(5, &v(5.0)).unwrap();

    // 2 (segment) and 4 (memtable) are replaced, 9 appears twice: the last wins.
    let ids = [2, 4, 9, 10, 9];
    let rows = [v(20.0), v(40.0), v(90.0), v(100.0), v(91.0)].concat();
    let version = db.ingest(&ids, &rows).unwrap();
    assert_eq!(version, Version(3));
    let stored = |x: f32| {
        let mut stored = v(x).to_vec();
        strata_quantize::normalize(&mut stored).unwrap();
        stored
    };
    let check = |db: &Db| {
        assert_eq!(db.len(), 7);
        for (id, x) in [(1, 1.0), (2, 20.0), (3, 3.0), (4, 40.0), (5, 5.0), (9, 91.0), (10, 100.0)]
        {
            assert_eq!(db.get(id).unwrap(), Some(stored(x)), "id {id}");
        }
        let hits = db.search_with(&v(40.0), SearchParams::exact(10)).unwrap();
        assert_eq!(hits.len(), 7, "{hits:?}");
        assert_eq!(hits[0].id, 4, "{hits:?}");
        let mut ids: Vec<u64> = hits.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4, 5, 9, 10], "each record once, old versions gone");
    };
    check(&db);
    // The memtable's rows were committed with the batch, and the batch is one segment.
    let kinds: Vec<u64> = db.segments().iter().map(|s| s.live_rows).collect();
    assert_eq!(kinds, [2, 1, 4], "the old segment, the memtable's rows, the batch");
    assert_eq!(db.ingest(&[], &[]).unwrap(), version, "an empty batch commits nothing new");
    drop(db);
    let db = Db::open(&root).unwrap();
    assert_eq!(db.version(), version);
    check(&db);
}

#[test]
fn one_writer_per_directory_and_readers_follow_with_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("db");
    assert!(Db::open(&root).is_err(), "no database yet");
    assert!(!root.exists(), "opening a missing database creates nothing");
    let db = Db::create(&root, options()).unwrap();
    assert!(matches!(Db::create(&root, options()), Err(Error::Storage(_))), "locked");
    assert!(matches!(Db::open(&root), Err(Error::Storage(strata::storage::Error::Locked { .. }))));

    let reader = Db::open_read_only(&root).unwrap();
    assert!(matches!(reader.upsert(1, &v(1.0)), Err(Error::ReadOnly)));
    assert!(matches!(reader.commit(), Err(Error::ReadOnly)));
    db.upsert(1, &v(1.0)).unwrap();
    assert_eq!(reader.get(1).unwrap(), None);
    let v2 = db.commit().unwrap();
    assert_eq!(reader.version(), Version(1));
    assert_eq!(reader.refresh().unwrap(), v2);
    assert_eq!(reader.get(1).unwrap(), Some(v(1.0).to_vec()));
    db.delete(1).unwrap();
    db.commit().unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get(1).unwrap(), None);
    assert!(reader.search(&v(1.0), 5).unwrap().is_empty());

    drop(db);
    assert!(matches!(Db::create(&root, options()), Err(Error::AlreadyExists { .. })));
}

#[test]
fn time_travel_opens_old_versions_until_gc_removes_them() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let db = Db::create_in(Arc::clone(&store), options().keep_versions(2)).unwrap();
    for round in 0..4u64 {
        db.upsert(round, &v(round as f32)).unwrap();
        if round > 0 {
            db.delete(round - 1).unwrap();
        }
        db.commit().unwrap();
    }
    assert_eq!(db.version(), Version(5));
    for version in 2..=5u64 {
        let old = Db::open_at_in(Arc::clone(&store), Version(version)).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old.get(version - 2).unwrap(), Some(v((version - 2) as f32).to_vec()));
        assert_eq!(old.version(), Version(version));
        let same = db.snapshot_at(Version(version)).unwrap();
        assert_eq!(same.scan().map(|e| e.unwrap().id).collect::<Vec<_>>(), [version - 2]);
    }

    let objects_before = store.list("").unwrap().len();
    let stats = db.gc().unwrap();
    assert_eq!(stats.manifests, 3, "versions 1..=3 fall out of retention");
    assert!(stats.files > 0);
    assert_eq!(store.list("").unwrap().len(), objects_before - stats.manifests - stats.files);
    let versions = db.versions().unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [Version(4), Version(5)]);
    assert!(versions.iter().all(|v| v.records == 1 && v.segments >= 1));
    assert!(versions[0].committed_at <= versions[1].committed_at);
    assert!(Db::open_at_in(Arc::clone(&store), Version(3)).is_err());
    for version in [4, 5] {
        let old = Db::open_at_in(Arc::clone(&store), Version(version)).unwrap();
        assert_eq!(old.search_with(&v(0.0), SearchParams::exact(5)).unwrap().len(), 1);
    }
    assert_eq!(db.gc().unwrap(), strata::GcStats::default(), "nothing left to collect");
    drop(db);
    let db = Db::open_in(store).unwrap();
    assert_eq!(db.get(3).unwrap(), Some(v(3.0).to_vec()));
}

#[test]
fn readers_keep_their_open_segments_across_gc_and_refresh_past_it() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let db = Db::create_in(Arc::clone(&store), options().keep_versions(1)).unwrap();
    db.upsert(1, &v(1.0)).unwrap();
    db.commit().unwrap();
    let reader = Db::open_read_only_in(Arc::clone(&store)).unwrap();
    db.delete(1).unwrap();
    db.upsert(2, &v(2.0)).unwrap();
    db.commit().unwrap();
    assert!(db.gc().unwrap().files > 0);
    // The reader's segment was read at open (here into memory; on a local directory it is
    // mapped, and a mapping outlives the file's removal), so it goes on.
    assert_eq!(reader.search(&v(1.0), 1).unwrap()[0].id, 1);
    assert!(Db::open_at_in(Arc::clone(&store), Version(2)).is_err(), "collected");
    assert_eq!(reader.refresh().unwrap(), Version(3));
    let ids: Vec<u64> = reader.search(&v(1.0), 5).unwrap().iter().map(|n| n.id).collect();
    assert_eq!(ids, [2]);
}

#[test]
fn a_second_writer_on_an_object_store_is_fenced_by_the_commit() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let first = Db::create_in(Arc::clone(&store), options()).unwrap();
    let second = Db::open_in(Arc::clone(&store)).unwrap();
    first.upsert(1, &v(1.0)).unwrap();
    second.upsert(2, &v(2.0)).unwrap();
    assert_eq!(first.commit().unwrap(), Version(2));
    let conflict = second.commit().unwrap_err();
    assert!(matches!(conflict, Error::Conflict { version: 2 }));
    assert!(conflict.is_conflict() && !conflict.is_corruption());
    let refused = second.upsert(3, &v(3.0)).unwrap_err();
    // The cause is kept as the error itself, to match on.
    assert!(
        matches!(&refused, Error::Poisoned { cause } if matches!(**cause, Error::Conflict { version: 2 })),
        "{refused}"
    );
    assert!(refused.is_conflict() && !refused.is_corruption());
    assert_eq!(second.search(&v(2.0), 1).unwrap()[0].id, 2, "reads keep working");

    let reopened = Db::open_in(store).unwrap();
    assert_eq!(reopened.version(), Version(2));
    assert_eq!(reopened.get(1).unwrap(), Some(v(1.0).to_vec()));
    assert_eq!(reopened.get(2).unwrap(), None, "the losing commit changed nothing");
}

/// A commit whose storage fails at any write (cleanly, or after the write took effect): before
/// the manifest write nothing is published and the handle commits the same writes next time;
/// at the manifest write the outcome is unknown, so the handle refuses writes, reads go on,
/// and a reopen shows the previous version or the new one, whole.
#[test]
fn a_failed_commit_leaves_a_whole_version_and_poisons_only_an_unknown_outcome() {
    use strata::storage::testing::{FailingStorage, FaultPlan};
    for after_apply in [false, true] {
        let mut nth = 0;
        loop {
            let store = Arc::new(FailingStorage::new(MemoryStore::new()));
            let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options()).unwrap();
            for id in 0..20 {
                db.upsert(id, &v(id as f32)).unwrap();
            }
            db.commit().unwrap();
            db.delete(3).unwrap();
            db.upsert(30, &v(30.0)).unwrap();
            let plan = FaultPlan::nth_write(nth);
            store.set_plan(Some(if after_apply { plan.after_apply() } else { plan }));
            let result = db.commit();
            let injected = store.injected() > 0;
            store.set_plan(None);
            if !injected {
                assert_eq!(result.unwrap(), Version(3), "every write of the commit was tried");
                break;
            }
            assert!(result.is_err(), "write {nth} failed, so must the commit");
            assert_eq!(db.get(30).unwrap(), Some(v(30.0).to_vec()), "reads go on");
            match db.upsert(40, &v(4.0)) {
                // It failed before the manifest write: nothing was published, the handle
                // keeps its writes and its next commit makes them durable.
                Ok(()) => {
                    let reader = Db::open_read_only_in(Arc::clone(&store) as Arc<dyn Storage>);
                    assert_eq!(reader.unwrap().version(), Version(2), "write {nth}");
                    assert_eq!(db.commit().unwrap(), Version(3), "write {nth}");
                    drop(db);
                    let db = Db::open_in(Arc::clone(&store) as Arc<dyn Storage>).unwrap();
                    assert_eq!(db.get(3).unwrap(), None, "write {nth}");
                    assert_eq!(db.len(), 21, "write {nth}");
                }
                // The manifest write failed: its outcome is unknown, so the handle refuses
                // writes, and storage holds one version or the other, whole.
                Err(refused) => {
                    assert!(matches!(refused, Error::Poisoned { .. }), "{refused}");
                    assert!(matches!(db.commit(), Err(Error::Poisoned { .. })));
                    drop(db);
                    let db = Db::open_in(Arc::clone(&store) as Arc<dyn Storage>).unwrap();
                    let new = db.get(30).unwrap().is_some();
                    assert_eq!(db.version(), Version(if new { 3 } else { 2 }), "write {nth}");
                    assert_eq!(db.get(3).unwrap().is_none(), new, "write {nth}: a mix of versions");
                    assert_eq!(db.len(), 20, "write {nth}");
                }
            }
            nth += 1;
        }
        assert!(nth >= 3, "a commit writes a segment, a deletion vector and a manifest");
    }
}

/// A writer that slept while another committed and collected past its base version must not
/// report success for a version nobody will read.
#[test]
fn a_writer_that_fell_behind_a_collected_history_gets_a_conflict() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    let sleeper = Db::create_in(Arc::clone(&store), options().keep_versions(1)).unwrap();
    let active = Db::open_in(Arc::clone(&store)).unwrap();
    for id in 0..3 {
        active.upsert(id, &v(id as f32)).unwrap();
        active.commit().unwrap();
    }
    active.gc().unwrap();
    assert_eq!(
        active.versions().unwrap().iter().map(|v| v.version).collect::<Vec<_>>(),
        [Version(4)]
    );
    sleeper.upsert(10, &v(10.0)).unwrap();
    assert!(matches!(sleeper.commit(), Err(Error::Conflict { version: 4 })));
    assert!(matches!(sleeper.upsert(11, &v(1.0)), Err(Error::Poisoned { .. })));
    let reopened = Db::open_in(store).unwrap();
    assert_eq!((reopened.version(), reopened.len()), (Version(4), 3));
}

/// `Db::create` / `open` take object-store URLs and `file://` paths as well as directories.
#[test]
fn databases_open_by_url() {
    let db = Db::create("memory://api-url-test", Options::new(2, Metric::L2)).unwrap();
    db.upsert(1, &[1.0, 2.0]).unwrap();
    let version = db.commit().unwrap();
    drop(db);
    let db = Db::open("memory://api-url-test").unwrap();
    assert_eq!(db.version(), version);
    assert_eq!(db.get(1).unwrap(), Some(vec![1.0, 2.0]));
    let reader = Db::open_read_only("memory://api-url-test").unwrap();
    assert_eq!(reader.get(1).unwrap(), Some(vec![1.0, 2.0]));
    drop((db, reader));

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("db").display());
    let db = Db::create(&url, Options::new(2, Metric::L2)).unwrap();
    db.upsert(5, &[0.5, 0.5]).unwrap();
    db.commit().unwrap();
    drop(db);
    assert_eq!(Db::open(dir.path().join("db")).unwrap().get(5).unwrap(), Some(vec![0.5, 0.5]));

    let error = Db::open("ftp://host/db").unwrap_err();
    assert!(error.to_string().contains("ftp://host/db"), "{error}");
}

/// `get_many` reads every id from one state, in order; `contains` reads no vector. Both see
/// the memtable and segments alike, and deletes in each (`get` is `get_many` of one id, which
/// the model test checks across rotations, commits and compactions).
#[test]
fn get_many_and_contains_see_every_tier() {
    let db = Db::create_in(Arc::new(MemoryStore::new()), options()).unwrap();
    for id in 0..10 {
        db.upsert(id, &v(id as f32)).unwrap();
    }
    db.commit().unwrap(); // 0..10 in a segment
    db.upsert(20, &v(20.0)).unwrap(); // in the memtable
    db.upsert(3, &v(33.0)).unwrap(); // replaced: memtable over segment
    db.delete(4).unwrap(); // deleted from the segment
    let ids = [3, 4, 20, 5, 99, 3];
    let got = db.get_many(&ids).unwrap();
    let want: Vec<Option<Vec<f32>>> = vec![
        Some(v(33.0).to_vec()),
        None,
        Some(v(20.0).to_vec()),
        Some(v(5.0).to_vec()),
        None,
        Some(v(33.0).to_vec()),
    ];
    assert_eq!(got, want);
    for (&id, want) in ids.iter().zip(&want) {
        assert_eq!(db.get(id).unwrap().as_ref(), want.as_ref(), "get agrees with get_many");
        assert_eq!(db.contains(id), want.is_some(), "contains({id})");
    }
    assert!(db.get_many(&[]).unwrap().is_empty());
}
