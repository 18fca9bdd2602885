//! A disk that fills up: `ENOSPC` at every write of a commit and of a compaction (through the
//! storage fault wrapper), and a real tmpfs that runs out of space where the test can mount one.
//! Every time: a clear error, the database opens at its last commit (or, when the manifest
//! write itself failed, at the new version, whole), nothing committed is lost, and writing
//! goes on once space is freed. Plus a read-only file system and a file deleted under a live
//! reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata::compaction::CompactAll;
use strata::storage::testing::{FailingStorage, FaultError, FaultPlan};
use strata::storage::{MemoryStore, Storage};
use strata::{Db, Error, Metric, Options, SearchParams};

const DIM: usize = 8;

type Records = BTreeMap<u64, Vec<f32>>;
type Store = Arc<FailingStorage<MemoryStore>>;

fn vector(id: u64, round: u64) -> Vec<f32> {
    (0..DIM as u64).map(|d| ((id * 13 + d * 5 + round * 7) % 23) as f32 - 11.0).collect()
}

fn options() -> Options {
    Options::new(DIM, Metric::L2).background_compaction(false).diskann_min_rows(256)
}

/// Every record is there, nothing else is, and an exact search finds each one first.
fn assert_holds(db: &Db, records: &Records, what: &str) {
    assert_eq!(db.len(), records.len(), "{what}: record count");
    for (&id, expected) in records {
        assert_eq!(db.get(id).unwrap().as_ref(), Some(expected), "{what}: record {id}");
    }
    for (&id, query) in records.iter().step_by(17) {
        let found = db.search_with(query, SearchParams::exact(1)).unwrap();
        assert_eq!(found[0].distance, 0.0, "{what}: search for {id}");
    }
}

fn open(store: &Store) -> Db {
    Db::open_in(Arc::clone(store) as Arc<dyn Storage>).unwrap()
}

/// Writes of round `round`: ids `10 * round .. 10 * round + 40`, and a delete of `round`.
fn write_round(db: &Db, records: &mut Records, round: u64) {
    for id in 10 * round..10 * round + 40 {
        db.upsert(id, &vector(id, round)).unwrap();
        records.insert(id, vector(id, round));
    }
    db.delete(round).unwrap();
    records.remove(&round);
}

#[test]
fn a_full_disk_at_every_write_of_a_commit() {
    let (mut nth, mut retried, mut reopened) = (0, 0, 0);
    loop {
        let store: Store = Arc::new(FailingStorage::new(MemoryStore::new()));
        let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options()).unwrap();
        let mut committed = Records::new();
        write_round(&db, &mut committed, 0);
        let before = db.commit().unwrap();
        let mut pending = committed.clone();
        write_round(&db, &mut pending, 1);

        store.set_plan(Some(FaultPlan::full_disk(nth)));
        let result = db.commit();
        if store.injected() == 0 {
            assert_eq!(result.unwrap().0, before.0 + 1, "every write of the commit was tried");
            break;
        }
        let error = result.unwrap_err();
        assert!(error.is_out_of_space(), "write {nth}: {error}");
        assert!(error.to_string().contains("No space left on device"), "write {nth}: {error}");
        // Reads go on, pending writes included, while the disk is full.
        assert_holds(&db, &pending, "full disk, same handle");
        let reader = Db::open_read_only_in(Arc::clone(&store) as Arc<dyn Storage>).unwrap();
        let published = reader.version().0 > before.0;
        assert_holds(&reader, if published { &pending } else { &committed }, "reopened while full");
        drop(reader);

        store.set_plan(None);
        match db.commit() {
            // Nothing was published: the handle kept its writes and commits them now.
            Ok(version) => {
                assert!(!published, "write {nth}");
                assert_eq!(version.0, before.0 + 1, "write {nth}");
                retried += 1;
            }
            // The manifest write failed: its outcome was unknown, so the handle refuses writes;
            // a reopened one goes on.
            Err(Error::Poisoned { .. }) => {
                drop(db);
                let db = open(&store);
                let mut records = if published { pending.clone() } else { committed.clone() };
                assert_holds(&db, &records, "reopened after the failed publish");
                write_round(&db, &mut records, 2);
                db.commit().unwrap();
                drop(db);
                assert_holds(&open(&store), &records, "written after reopening");
                reopened += 1;
                nth += 1;
                continue;
            }
            Err(other) => panic!("write {nth}: {other}"),
        }
        write_round(&db, &mut pending, 2);
        db.commit().unwrap();
        drop(db);
        assert_holds(&open(&store), &pending, "after space was freed");
        nth += 1;
    }
    assert!(nth >= 3, "a commit writes a segment, a deletion vector and a manifest");
    assert!(retried >= 2 && reopened >= 1, "retried {retried}, reopened {reopened}");
}

#[test]
fn a_full_disk_at_every_write_of_a_compaction() {
    let (mut nth, mut retried, mut reopened) = (0, 0, 0);
    loop {
        let store: Store = Arc::new(FailingStorage::new(MemoryStore::new()));
        let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options()).unwrap();
        let mut records = Records::new();
        // Enough rows that the compaction builds a Vamana segment.
        for id in 10_000..10_300 {
            db.upsert(id, &vector(id, 0)).unwrap();
            records.insert(id, vector(id, 0));
        }
        for round in 0..4 {
            write_round(&db, &mut records, round);
            db.commit().unwrap();
        }
        db.set_compaction_policy(Arc::new(CompactAll));
        let before = db.version();

        store.set_plan(Some(FaultPlan::full_disk(nth)));
        let result = db.compact();
        if store.injected() == 0 {
            assert_eq!(result.unwrap(), 1, "every write of the compaction was tried");
            break;
        }
        let error = result.unwrap_err();
        assert!(error.is_out_of_space(), "write {nth}: {error}");
        assert_holds(&db, &records, "after the failed compaction");
        match db.upsert(1_000, &vector(1_000, 9)) {
            // It failed before publishing: nothing changed, writes go on, and the error is
            // kept until a compaction succeeds.
            Ok(()) => {
                records.insert(1_000, vector(1_000, 9));
                assert_eq!(db.version(), before, "write {nth}");
                assert!(db.compaction_error().is_some_and(|e| e.contains("No space left")));
                store.set_plan(None);
                db.commit().unwrap();
                assert_eq!(db.compact().unwrap(), 1, "write {nth}");
                assert_eq!(db.compaction_error(), None);
                assert_holds(&db, &records, "compacted after space was freed");
                drop(db);
                retried += 1;
            }
            Err(Error::Poisoned { .. }) => {
                store.set_plan(None);
                drop(db);
                let db = open(&store);
                assert_holds(&db, &records, "reopened after the failed publish");
                db.set_compaction_policy(Arc::new(CompactAll));
                db.compact().unwrap();
                drop(db);
                reopened += 1;
            }
            Err(other) => panic!("write {nth}: {other}"),
        }
        assert_holds(&open(&store), &records, "reopened");
        nth += 1;
    }
    assert!(nth >= 2, "a compaction writes its output and a manifest");
    assert!(retried >= 1 && reopened >= 1, "retried {retried}, reopened {reopened}");
}

/// A read-only file system: commits fail clearly and change nothing; reads go on.
#[test]
fn a_read_only_file_system_refuses_commits_and_keeps_reads() {
    let store: Store = Arc::new(FailingStorage::new(MemoryStore::new()));
    let db = Db::create_in(Arc::clone(&store) as Arc<dyn Storage>, options()).unwrap();
    let mut records = Records::new();
    write_round(&db, &mut records, 0);
    db.commit().unwrap();
    let mut pending = records.clone();
    write_round(&db, &mut pending, 1);
    store.set_plan(Some(FaultPlan::nth_write(0).sticky().with_error(FaultError::ReadOnly)));
    let error = db.commit().unwrap_err();
    assert_eq!(error.io_error_kind(), Some(std::io::ErrorKind::ReadOnlyFilesystem), "{error}");
    assert!(!error.is_out_of_space());
    assert_holds(&db, &pending, "pending writes stay searchable");
    assert_holds(
        &Db::open_read_only_in(Arc::clone(&store) as Arc<dyn Storage>).unwrap(),
        &records,
        "reader",
    );
    store.set_plan(None);
    db.commit().unwrap();
    drop(db);
    assert_holds(&open(&store), &pending, "committed once writable");
}

/// A segment file deleted under a live handle: the handle keeps reading its mapping; a new
/// open names the missing file.
#[test]
fn a_segment_deleted_under_a_live_reader() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::create(dir.path(), options()).unwrap();
    let mut records = Records::new();
    write_round(&db, &mut records, 0);
    db.commit().unwrap();
    assert_holds(&db, &records, "before");
    let segments = dir.path().join("segments");
    let file = std::fs::read_dir(&segments).unwrap().next().unwrap().unwrap().path();
    std::fs::remove_file(&file).unwrap();
    assert_holds(&db, &records, "the mapping outlives the file");
    drop(db);
    let error = Db::open(dir.path()).unwrap_err();
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(error.to_string().contains(name), "{error}");
}

/// A real file system that fills up: a 3 MiB tmpfs (skipped, saying so, where the test cannot
/// mount one). Commits go until the disk is full and fail with ENOSPC; the database reopens at
/// its last commit; freeing space lets the same handle commit again.
#[test]
fn a_real_tmpfs_fills_up_and_recovers() {
    let Some(mount) = TmpfsMount::new("3m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    };
    let root = mount.path.join("db");
    // Space to free later.
    let ballast = mount.path.join("ballast");
    std::fs::write(&ballast, vec![7u8; 1 << 20]).unwrap();
    let db = Db::create(&root, options().keep_versions(1)).unwrap();
    let (mut committed, mut pending) = (Records::new(), Records::new());
    let mut next = 0u64;
    let error = loop {
        for _ in 0..500 {
            pending.insert(next, vector(next, 0));
            db.upsert(next, &vector(next, 0)).unwrap();
            next += 1;
        }
        match db.commit() {
            Ok(_) => committed = pending.clone(),
            Err(error) => break error,
        }
        assert!(next < 1_000_000, "the tmpfs never filled up");
    };
    assert!(error.is_out_of_space(), "{error}");
    eprintln!("the tmpfs filled up after {next} rows: {error}");
    let poisoned = matches!(db.upsert(u64::MAX, &vector(1, 1)), Err(Error::Poisoned { .. }));
    let reader = Db::open_read_only(&root).unwrap();
    let published = reader.len() == pending.len();
    assert_holds(&reader, if published { &pending } else { &committed }, "reopened while full");
    drop(reader);
    std::fs::remove_file(&ballast).unwrap();
    if poisoned {
        drop(db);
        let db = Db::open(&root).unwrap();
        assert_holds(&db, if published { &pending } else { &committed }, "reopened writer");
        db.upsert(next, &vector(next, 0)).unwrap();
        db.commit().unwrap();
    } else {
        // The probe write above went in.
        pending.insert(u64::MAX, vector(1, 1));
        db.commit().unwrap();
        drop(db);
        assert_holds(&Db::open(&root).unwrap(), &pending, "committed after space was freed");
    }
}

/// A tmpfs mounted for one test, unmounted on drop.
struct TmpfsMount {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl TmpfsMount {
    fn new(size: &str) -> Option<TmpfsMount> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().to_path_buf();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(TmpfsMount { _dir: dir, path })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}
