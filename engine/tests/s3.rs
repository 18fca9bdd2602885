//! The engine on object storage, through the public API only: two writers racing a commit on
//! one bucket prefix, readers following the writer with `refresh`, and the request bars (a
//! 1,000-row commit issues at most 3 PUTs, a cold open of N segments O(N) GETs, warm searches
//! none).
//!
//! Every scenario runs against `object_store`'s in-memory store, and against S3 (tests named
//! `*_s3`, selected by `cargo test s3`) when `STRATA_TEST_S3_ENDPOINT` and
//! `STRATA_TEST_S3_BUCKET` are set, and GCS (`*_gcs`) when `STRATA_TEST_GCS_BUCKET` is; they
//! print why they skip otherwise. `scripts/s3-test-server.sh` starts a local S3 server.

use std::path::Path;
use std::sync::{Arc, Barrier};

use strata::storage::object_store::memory::InMemory;
use strata::storage::testing::RemoteTarget;
use strata::storage::{ObjectStoreBackend, ObjectStoreOptions, RequestStats, Storage};
use strata::{Db, Error, Metric, Options, SearchParams, Version};

const DIM: usize = 16;

/// One database location that several handles open, as several processes would.
enum Bucket {
    Memory { store: Arc<InMemory>, location: String },
    Remote { url: String, options: ObjectStoreOptions },
}

impl Bucket {
    fn memory(name: &str) -> Bucket {
        Bucket::Memory { store: Arc::new(InMemory::new()), location: format!("memory://{name}") }
    }

    fn remote(target: Option<RemoteTarget>, name: &str) -> Option<Bucket> {
        let target = target?;
        Some(Bucket::Remote { url: target.fresh_url(name), options: target.options.clone() })
    }

    /// A new backend on the location, caching mapped segments in `cache` if given.
    fn handle(&self, cache: Option<&Path>) -> Arc<ObjectStoreBackend> {
        let with_cache = |options: ObjectStoreOptions| match cache {
            Some(dir) => options.cache_dir(dir),
            None => options,
        };
        Arc::new(match self {
            Bucket::Memory { store, location } => {
                let options = with_cache(ObjectStoreOptions::new());
                ObjectStoreBackend::new(store.clone(), location.clone(), &options).unwrap()
            }
            Bucket::Remote { url, options } => {
                ObjectStoreBackend::open(url, &with_cache(options.clone())).unwrap()
            }
        })
    }
}

/// Background compaction off: these tests count versions and requests of commits alone.
fn options() -> Options {
    Options::new(DIM, Metric::L2).background_compaction(false)
}

fn storage(handle: &Arc<ObjectStoreBackend>) -> Arc<dyn Storage> {
    handle.clone()
}

/// A deterministic vector for `id`.
fn vector(id: u64) -> Vec<f32> {
    let mut rng = strata_quantize::rng::SplitMix64::new(id, 0);
    (0..DIM).map(|_| rng.uniform() as f32).collect()
}

fn upsert_range(db: &Db, ids: std::ops::Range<u64>) {
    let ids: Vec<u64> = ids.collect();
    let vectors: Vec<f32> = ids.iter().flat_map(|&id| vector(id)).collect();
    db.upsert_batch(&ids, &vectors).unwrap();
}

/// Every id in `ids` is stored with its vector, and found by an exact search for it.
fn assert_has(db: &Db, ids: impl IntoIterator<Item = u64>, what: &str) {
    for id in ids {
        assert_eq!(db.get(id).unwrap(), Some(vector(id)), "{what}: get({id})");
        let hits = db.search_with(&vector(id), SearchParams::exact(1)).unwrap();
        assert_eq!(hits[0].id, id, "{what}: search finds {id}");
    }
}

fn assert_lacks(db: &Db, ids: impl IntoIterator<Item = u64>, what: &str) {
    for id in ids {
        assert_eq!(db.get(id).unwrap(), None, "{what}: {id} must be absent");
    }
}

/// Two writers on one location race a commit: one wins, the other gets `Conflict`, and
/// nothing committed is lost; a reader sees exactly the winner's state.
fn two_writers_race_a_commit(bucket: &Bucket) {
    let a = Db::create_in(storage(&bucket.handle(None)), options()).unwrap();
    upsert_range(&a, 0..100);
    assert_eq!(a.commit().unwrap(), Version(2));
    let b = Db::open_in(storage(&bucket.handle(None))).unwrap();
    assert_eq!((b.version(), b.len()), (Version(2), 100));

    upsert_range(&a, 1000..1100);
    assert!(a.delete(5).unwrap());
    upsert_range(&b, 2000..2100);
    assert!(b.delete(6).unwrap());
    let barrier = Barrier::new(2);
    let commit = |db: &Db| {
        barrier.wait();
        db.commit()
    };
    let (result_a, result_b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| commit(&a));
        let b = scope.spawn(|| commit(&b));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (winner, loser, won_ids, lost_ids, won_delete, lost_delete) = match (&result_a, &result_b) {
        (Ok(Version(3)), Err(Error::Conflict { version: 3 })) => {
            (&a, &b, 1000..1100, 2000..2100, 5, 6)
        }
        (Err(Error::Conflict { version: 3 }), Ok(Version(3))) => {
            (&b, &a, 2000..2100, 1000..1100, 6, 5)
        }
        other => panic!("exactly one commit must win version 3: {other:?}"),
    };
    assert!(matches!(loser.upsert(1, &vector(1)), Err(Error::Poisoned { .. })), "fenced off");

    let reader = Db::open_read_only_in(storage(&bucket.handle(None))).unwrap();
    assert_eq!(reader.version(), Version(3));
    assert_has(&reader, (0..100).filter(|&id| id != won_delete), "the first commit");
    assert_has(&reader, won_ids.clone(), "the winner's rows");
    assert_lacks(&reader, lost_ids.clone(), "the loser's rows");
    assert_lacks(&reader, [won_delete], "the winner's delete");
    assert_has(&reader, [lost_delete], "the loser's delete did not happen");
    assert_eq!(reader.len(), 199);

    // The winner goes on; a new writer handle replaces the fenced one and goes on after it.
    upsert_range(winner, 3000..3010);
    assert_eq!(winner.commit().unwrap(), Version(4));
    let next = Db::open_in(storage(&bucket.handle(None))).unwrap();
    assert_eq!(next.version(), Version(4));
    upsert_range(&next, lost_ids.clone());
    assert_eq!(next.commit().unwrap(), Version(5));
    assert_eq!(reader.refresh().unwrap(), Version(5));
    assert_has(&reader, (3000..3010).chain(lost_ids).chain(won_ids), "after the retry");
    assert_eq!(reader.len(), 309);
}

/// A read-only handle opened early follows the writer's versions with `refresh`.
fn a_reader_refreshes_to_the_writers_versions(bucket: &Bucket) {
    let writer = Db::create_in(storage(&bucket.handle(None)), options()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let reader = Db::open_read_only_in(storage(&bucket.handle(Some(cache.path())))).unwrap();
    assert_eq!((reader.version(), reader.len()), (Version(1), 0));
    upsert_range(&writer, 0..500);
    assert_eq!(writer.commit().unwrap(), Version(2));
    upsert_range(&writer, 250..750); // replaces half the first segment's rows
    writer.delete(0).unwrap();
    assert_eq!(writer.commit().unwrap(), Version(3));
    assert_eq!(reader.version(), Version(1), "a reader moves only when it refreshes");
    assert_eq!(reader.refresh().unwrap(), Version(3));
    assert_eq!(reader.len(), 749);
    assert_has(&reader, 1..750, "after refresh");
    assert_lacks(&reader, [0], "deleted before refresh");
    assert!(matches!(reader.upsert(1, &vector(1)), Err(Error::ReadOnly)));
    assert_eq!(reader.refresh().unwrap(), Version(3), "nothing newer");
}

/// The request bars, asserted and printed: a 1,000-row commit issues at most 3 PUTs; a cold open
/// of N segments at most 2N + 2 GETs; warm searches and gets none.
fn request_bars(bucket: &Bucket, label: &str) {
    const SEGMENTS: u64 = 8;
    const ROWS: u64 = 1000;
    let writer_cache = tempfile::tempdir().unwrap();
    let handle = bucket.handle(Some(writer_cache.path()));
    let writer = Db::create_in(storage(&handle), options()).unwrap();
    let mut worst_commit = RequestStats::default();
    for segment in 0..SEGMENTS {
        let start = segment * ROWS;
        // Each commit after the first also replaces 10 rows of the previous segment, so it
        // writes a deletion vector too: a segment, a deletion vector and a manifest.
        let replaced = if segment == 0 { 0..0 } else { start - ROWS..start - ROWS + 10 };
        upsert_range(&writer, start..start + ROWS - (replaced.end - replaced.start));
        upsert_range(&writer, replaced);
        let before = handle.requests();
        writer.commit().unwrap();
        let cost = handle.requests().since(&before);
        eprintln!("{label}: commit {} of {ROWS} rows: {cost:?}", segment + 1);
        assert!(cost.writes() <= 3, "{label}: a 1,000-row commit issued {cost:?}");
        assert_eq!(cost.get, 0, "{label}: the new segment is mapped from the write-through cache");
        if cost.total() > worst_commit.total() {
            worst_commit = cost;
        }
    }
    let live = SEGMENTS * ROWS - 10 * (SEGMENTS - 1);
    assert_eq!(writer.len() as u64, live);

    // Cold: a new handle with an empty cache.
    let cold_cache = tempfile::tempdir().unwrap();
    let cold = bucket.handle(Some(cold_cache.path()));
    let before = cold.requests();
    let reader = Db::open_read_only_in(storage(&cold)).unwrap();
    let open = cold.requests().since(&before);
    eprintln!("{label}: cold open of {SEGMENTS} segments: {open:?}");
    assert!(open.get <= 2 * SEGMENTS + 2, "{label}: cold open issued {open:?}");
    assert!(open.total() <= 2 * SEGMENTS + 4, "{label}: cold open issued {open:?}");
    assert_eq!(reader.len() as u64, live);

    // Warm: searches and gets on the open handle touch no object.
    let before = cold.requests();
    for id in (0..SEGMENTS * ROWS).step_by(97) {
        let hits = reader.search(&vector(id), 10).unwrap();
        assert_eq!(hits.len(), 10);
        reader.get(id).unwrap();
    }
    let warm = cold.requests().since(&before);
    assert_eq!(warm.total(), 0, "{label}: warm searches issued {warm:?}");

    // A second open with the cache filled: the manifest and deletion vectors only.
    drop(reader);
    let again = bucket.handle(Some(cold_cache.path()));
    let before = again.requests();
    let reader = Db::open_read_only_in(storage(&again)).unwrap();
    let reopen = again.requests().since(&before);
    eprintln!("{label}: warm open of {SEGMENTS} segments: {reopen:?}");
    assert!(reopen.get <= SEGMENTS + 1, "{label}: warm open issued {reopen:?}");
    assert_eq!(reader.len() as u64, live);
    eprintln!("{label}: warm searches: {warm:?}; worst commit: {worst_commit:?}");
}

#[test]
fn two_writers_race_a_commit_memory() {
    two_writers_race_a_commit(&Bucket::memory("race"));
}

#[test]
fn two_writers_race_a_commit_s3() {
    if let Some(bucket) = Bucket::remote(RemoteTarget::s3("two_writers_race_a_commit_s3"), "race") {
        two_writers_race_a_commit(&bucket);
    }
}

#[test]
fn two_writers_race_a_commit_gcs() {
    if let Some(bucket) = Bucket::remote(RemoteTarget::gcs("two_writers_race_a_commit_gcs"), "race")
    {
        two_writers_race_a_commit(&bucket);
    }
}

#[test]
fn a_reader_refreshes_to_the_writers_versions_memory() {
    a_reader_refreshes_to_the_writers_versions(&Bucket::memory("refresh"));
}

#[test]
fn a_reader_refreshes_to_the_writers_versions_s3() {
    let target = RemoteTarget::s3("a_reader_refreshes_to_the_writers_versions_s3");
    if let Some(bucket) = Bucket::remote(target, "refresh") {
        a_reader_refreshes_to_the_writers_versions(&bucket);
    }
}

#[test]
fn a_reader_refreshes_to_the_writers_versions_gcs() {
    let target = RemoteTarget::gcs("a_reader_refreshes_to_the_writers_versions_gcs");
    if let Some(bucket) = Bucket::remote(target, "refresh") {
        a_reader_refreshes_to_the_writers_versions(&bucket);
    }
}

#[test]
fn request_bars_memory() {
    request_bars(&Bucket::memory("bars"), "memory");
}

#[test]
fn request_bars_s3() {
    if let Some(bucket) = Bucket::remote(RemoteTarget::s3("request_bars_s3"), "bars") {
        request_bars(&bucket, "s3");
    }
}

#[test]
fn request_bars_gcs() {
    if let Some(bucket) = Bucket::remote(RemoteTarget::gcs("request_bars_gcs"), "bars") {
        request_bars(&bucket, "gcs");
    }
}
