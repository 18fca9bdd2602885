//! The object-store backend beyond the storage contract: the local cache (budget, eviction,
//! pins, damage, restarts, one download for concurrent maps), streamed uploads, the requests
//! each operation costs, and clear errors. Tests with `s3` in their names need a server (see
//! `testing::RemoteTarget`) except where noted.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use strata_storage::framing::{FormatId, frame};
use strata_storage::object_store::memory::InMemory;
use strata_storage::testing::RemoteTarget;
use strata_storage::{
    Corruption, Error, ObjectStoreBackend, ObjectStoreOptions, RemoteErrorKind, RequestStats,
    Storage, open_url,
};

const FORMAT: FormatId = FormatId { magic: *b"STRATEST", major: 1, minor: 0, known_features: 0 };

/// A framed object of `len` body bytes, distinct per `salt`.
fn framed(len: usize, salt: u8) -> Vec<u8> {
    let body: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(salt)).collect();
    frame(&FORMAT, 0, &body)
}

fn cached(dir: &std::path::Path, budget: u64) -> ObjectStoreOptions {
    ObjectStoreOptions::new().cache_dir(dir).cache_budget(budget)
}

/// Requests since `before`.
fn delta(store: &ObjectStoreBackend, before: RequestStats) -> RequestStats {
    store.requests().since(&before)
}

/// Files in the backend's cache directory (temporary files excluded).
fn cache_files(store: &ObjectStoreBackend) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if !path.file_name().unwrap().to_str().unwrap().starts_with(".tmp") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(store.cache_root().expect("a cache"), &mut out);
    out.sort();
    out
}

fn cache_file_of(store: &ObjectStoreBackend, key: &str) -> std::path::PathBuf {
    let name = key.rsplit('/').next().unwrap();
    cache_files(store)
        .into_iter()
        .find(|path| path.file_name().unwrap().to_str().unwrap().starts_with(&format!("{name}~")))
        .unwrap_or_else(|| panic!("{key} is not cached"))
}

#[test]
fn a_cached_map_costs_no_request_and_is_a_pinned_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 1 << 20)).unwrap();
    let data = framed(10_000, 1);
    store.put("segments/a", &data).unwrap();
    let before = store.requests();
    let first = store.map("segments/a").unwrap();
    assert_eq!(&first[..], &data[..]);
    assert!(first.is_mapped(), "served from the cache file");
    assert_eq!(delta(&store, before), RequestStats { get: 1, ..Default::default() });
    let before = store.requests();
    let second = store.map("segments/a").unwrap();
    assert_eq!(&second[..], &data[..]);
    assert_eq!(store.size("segments/a").unwrap(), data.len() as u64);
    let range = store.get_range("segments/a", 100..300).unwrap();
    assert_eq!(&range[..], &data[100..300]);
    assert_eq!(delta(&store, before).total(), 0, "map, size and get_range hit the cache");
    assert_eq!(store.cache_used(), data.len() as u64);
}

#[test]
fn concurrent_maps_of_one_key_download_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ObjectStoreBackend::memory(&cached(dir.path(), 1 << 24)).unwrap());
    let data = framed(1 << 20, 2);
    store.put("segments/big", &data).unwrap();
    let before = store.requests();
    const THREADS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store.map("segments/big").unwrap()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(&handle.join().unwrap()[..], &data[..]);
    }
    assert_eq!(delta(&store, before).get, 1, "one download for {THREADS} threads");
    assert_eq!(cache_files(&store).len(), 1);
}

#[test]
fn the_budget_holds_and_eviction_is_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let object = framed(968, 0).len() as u64; // 1,000 bytes
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 3 * object)).unwrap();
    for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        store.put(key, &framed(968, i as u8)).unwrap();
    }
    for key in ["a", "b", "c"] {
        drop(store.map(key).unwrap());
    }
    assert_eq!(store.cache_used(), 3 * object);
    drop(store.map("a").unwrap()); // a hit: "b" is now the least recently used
    let before = store.requests();
    drop(store.map("d").unwrap());
    assert_eq!(delta(&store, before).get, 1);
    assert!(store.cache_used() <= 3 * object, "budget respected");
    let before = store.requests();
    for key in ["a", "c", "d"] {
        drop(store.map(key).unwrap());
    }
    assert_eq!(delta(&store, before).get, 0, "a, c and d stayed cached");
    drop(store.map("b").unwrap());
    assert_eq!(delta(&store, before).get, 1, "b was evicted");
    assert_eq!(cache_files(&store).len(), 3);
    assert!(store.cache_used() <= 3 * object);
}

#[test]
fn mapped_files_are_never_evicted_and_what_cannot_fit_is_read_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let object = framed(968, 0).len() as u64;
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 2 * object)).unwrap();
    for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
        store.put(key, &framed(968, i as u8)).unwrap();
    }
    let a = store.map("a").unwrap();
    let b = store.map("b").unwrap();
    let c = store.map("c").unwrap();
    assert_eq!(&c[..], &framed(968, 2)[..]);
    assert!(!c.is_mapped(), "no room: c is served from memory");
    assert!(a.is_mapped() && b.is_mapped());
    assert_eq!(cache_files(&store).len(), 2, "a and b are pinned by their mappings");
    assert_eq!(&a[..], &framed(968, 0)[..], "a mapping outlives any pressure");
    drop(a);
    let c = store.map("c").unwrap();
    assert!(c.is_mapped(), "once a is unmapped, it makes room for c");
    assert_eq!(&b[..], &framed(968, 1)[..]);
    assert!(store.cache_used() <= 2 * object);

    // An object larger than the whole budget is never cached.
    store.put("huge", &framed(10_000, 9)).unwrap();
    assert!(!store.map("huge").unwrap().is_mapped());
    assert!(store.cache_used() <= 2 * object);
}

#[test]
fn damaged_cache_files_are_detected_and_downloaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<InMemory> = Arc::new(InMemory::new());
    let open = |verify: bool| {
        let options = cached(dir.path(), 1 << 20).verify_cache(verify);
        ObjectStoreBackend::new(memory.clone(), "memory://damage-test", &options).unwrap()
    };
    let data = framed(5_000, 3);
    let store = open(false);
    store.put("segments/s", &data).unwrap();
    drop(store.map("segments/s").unwrap());

    // Truncated: the length no longer matches the name.
    let file = cache_file_of(&store, "segments/s");
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(100).unwrap();
    let before = store.requests();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(delta(&store, before).get, 1, "re-downloaded after truncation");

    // A flipped footer byte: the footer no longer checks.
    let file = cache_file_of(&store, "segments/s");
    flip(&file, data.len() - 5);
    let before = store.requests();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(delta(&store, before).get, 1, "re-downloaded after a footer flip");

    // A flipped body byte, found by the whole-file check of a later process's first use.
    let file = cache_file_of(&store, "segments/s");
    drop(store); // the last backend on this cache: the next one rescans the directory
    flip(&file, 10);
    let store = open(true);
    let before = store.requests();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(delta(&store, before).get, 1, "re-downloaded after a body flip");
    let before = store.requests();
    drop(store.map("segments/s").unwrap());
    assert_eq!(delta(&store, before).get, 0, "the fresh copy is trusted");
}

fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<InMemory> = Arc::new(InMemory::new());
    let options = cached(dir.path(), 1 << 20);
    let data = framed(3_000, 4);
    let store = ObjectStoreBackend::new(memory.clone(), "memory://restart", &options).unwrap();
    store.put("segments/s", &data).unwrap();
    drop(store.map("segments/s").unwrap());
    drop(store);
    let store = ObjectStoreBackend::new(memory, "memory://restart", &options).unwrap();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(store.requests().total(), 0, "served from the files the first backend left");
}

#[test]
fn a_corrupt_object_is_an_error_naming_it_and_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 1 << 20)).unwrap();
    let mut data = framed(2_000, 5);
    data[7] ^= 1;
    store.put("segments/bad", &data).unwrap();
    let before = store.requests();
    match store.map("segments/bad") {
        Err(Error::Corrupt { object, corruption: Corruption::BodyChecksum { .. } }) => {
            assert_eq!(object, "segments/bad")
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert_eq!(delta(&store, before).get, 2, "downloaded twice before giving up");
    assert_eq!(store.cache_used(), 0);
    assert_eq!(
        &store.get("segments/bad").unwrap()[..],
        &data[..],
        "get returns the bytes as stored"
    );
}

#[test]
fn writes_go_through_the_cache_so_mapping_what_was_written_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 1 << 20)).unwrap();
    let data = framed(50_000, 6);
    let mut writer = store.writer("segments/new").unwrap();
    for chunk in data.chunks(4_093) {
        writer.write_all(chunk).unwrap();
    }
    writer.finish().unwrap();
    let before = store.requests();
    let mapped = store.map("segments/new").unwrap();
    assert_eq!(&mapped[..], &data[..]);
    assert!(mapped.is_mapped());
    assert_eq!(delta(&store, before).total(), 0);
    // Replacing the object drops the cached copy; the old mapping keeps its bytes.
    store.put("segments/new", b"replaced").unwrap();
    assert_eq!(&store.map("segments/new").unwrap()[..], b"replaced");
    assert_eq!(&mapped[..], &data[..]);
    store.delete("segments/new").unwrap();
    assert!(store.map("segments/new").unwrap_err().is_not_found());
}

#[test]
fn large_streamed_writes_are_multipart_uploads() {
    let store = ObjectStoreBackend::memory(&ObjectStoreOptions::new().part_size(64 << 10)).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let before = store.requests();
    let mut writer = store.writer("segments/multi").unwrap();
    for chunk in data.chunks(10_007) {
        writer.write_all(chunk).unwrap();
    }
    assert!(store.list("").unwrap().is_empty(), "parts are invisible until complete");
    assert_eq!(writer.finish().unwrap(), data.len() as u64);
    let cost = delta(&store, before);
    assert_eq!((cost.post, cost.put), (2, 5), "start + 5 parts + complete: {cost:?}");
    assert_eq!(&store.get("segments/multi").unwrap()[..], &data[..]);
}

#[test]
fn a_dropped_or_failed_multipart_upload_publishes_nothing_and_is_aborted() {
    let store = ObjectStoreBackend::memory(&ObjectStoreOptions::new().part_size(64 << 10)).unwrap();
    let before = store.requests();
    let mut writer = store.writer("segments/dropped").unwrap();
    writer.write_all(&vec![1; 200_000]).unwrap();
    drop(writer);
    assert!(store.list("").unwrap().is_empty());
    assert_eq!(delta(&store, before).delete, 1, "the upload was aborted");

    // Failing at finish (a key clash found before completing): aborted too.
    store.put("x/y", b"file").unwrap();
    let before = store.requests();
    let mut writer = store.writer("x/y/z").unwrap();
    writer.write_all(&vec![2; 200_000]).unwrap();
    assert!(matches!(writer.finish(), Err(Error::KeyConflict { .. })));
    assert_eq!(delta(&store, before).delete, 1, "the upload was aborted");
    let keys: Vec<_> = store.list("").unwrap().into_iter().map(|meta| meta.key).collect();
    assert_eq!(keys, ["x/y"]);
}

#[test]
fn each_operation_costs_the_documented_requests() {
    let store = ObjectStoreBackend::memory(&ObjectStoreOptions::new()).unwrap();
    let cost = |f: &dyn Fn()| {
        let before = store.requests();
        f();
        delta(&store, before)
    };
    let r =
        |get, put, post, head, list, delete| RequestStats { get, put, post, head, list, delete };
    // The first write under "manifest/" checks that "manifest" is no object (a HEAD), later
    // ones know it is a directory; every write lists "key/" once.
    assert_eq!(cost(&|| store.put_if_absent("manifest/1", b"m").unwrap()), r(0, 1, 0, 1, 1, 0));
    assert_eq!(cost(&|| store.put_if_absent("manifest/2", b"m").unwrap()), r(0, 1, 0, 0, 1, 0));
    assert_eq!(
        cost(&|| assert!(store.put_if_absent("manifest/2", b"x").unwrap_err().is_already_exists())),
        r(0, 1, 0, 1, 1, 0),
        "a refusal is confirmed with a HEAD"
    );
    assert_eq!(cost(&|| store.put("deletes/1", b"d").unwrap()), r(0, 1, 0, 1, 1, 0));
    assert_eq!(
        cost(&|| {
            let mut writer = store.writer("segments/1").unwrap();
            writer.write_all(&[0; 1000]).unwrap();
            writer.finish().unwrap();
        }),
        r(0, 1, 0, 1, 1, 0)
    );
    assert_eq!(cost(&|| drop(store.get("manifest/1").unwrap())), r(1, 0, 0, 0, 0, 0));
    assert_eq!(cost(&|| drop(store.get_range("segments/1", 5..10).unwrap())), r(1, 0, 0, 0, 0, 0));
    assert_eq!(cost(&|| drop(store.map("segments/1").unwrap())), r(1, 0, 0, 0, 0, 0));
    assert_eq!(cost(&|| assert_eq!(store.size("segments/1").unwrap(), 1000)), r(0, 0, 0, 1, 0, 0));
    assert_eq!(cost(&|| drop(store.list("manifest/").unwrap())), r(0, 0, 0, 0, 1, 0));
    assert_eq!(cost(&|| store.delete("deletes/1").unwrap()), r(0, 0, 0, 0, 0, 1));
}

#[test]
fn open_url_accepts_memory_and_refuses_nonsense_clearly() {
    let options = ObjectStoreOptions::new();
    let store = open_url("memory://", &options).unwrap();
    store.put("k", b"v").unwrap();
    for url in ["s3://", "gs://Bad_Bucket/x", "s3://bucket/a//b", "ftp://x/y"] {
        assert!(matches!(open_url(url, &options), Err(Error::InvalidLocation { .. })), "{url}");
    }
    let small_parts = ObjectStoreOptions::new().part_size(1 << 20).check_bucket(false);
    let err = open_url("s3://bucket/db", &small_parts).unwrap_err();
    assert!(err.to_string().contains("5 MiB"), "{err}");
}

/// Needs no server: nothing listens on the port, so every retry fails to connect.
#[test]
fn s3_unreachable_endpoint_is_unavailable_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options = ObjectStoreOptions::new()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .allow_http(true)
        .access_key("test", "test")
        .max_retries(2)
        .retry_timeout(Duration::from_secs(5));
    let started = std::time::Instant::now();
    match ObjectStoreBackend::open("s3://bucket/db", &options) {
        Err(Error::Remote { kind: RemoteErrorKind::Unavailable, store, .. }) => {
            assert!(store.starts_with("s3://bucket/db"), "{store}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Needs no server either: with no credentials anywhere, the client asks the instance metadata
/// service, which does not answer (or refuses) off the cloud.
#[test]
fn s3_missing_credentials_are_unauthenticated() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
        || std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
        || std::env::var_os("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
    {
        eprintln!("skipping s3_missing_credentials_are_unauthenticated: credentials are set");
        return;
    }
    let options = ObjectStoreOptions::new()
        .endpoint("http://127.0.0.1:9")
        .allow_http(true)
        .max_retries(0)
        .retry_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2));
    match ObjectStoreBackend::open("s3://bucket/db", &options) {
        Err(Error::Remote { kind: RemoteErrorKind::Unauthenticated, .. }) => {}
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[test]
fn s3_missing_bucket_is_a_clear_permanent_error() {
    let Some(target) = RemoteTarget::s3("s3_missing_bucket_is_a_clear_permanent_error") else {
        return;
    };
    let url = "s3://strata-no-such-bucket/db";
    let err = ObjectStoreBackend::open(url, &target.options).unwrap_err();
    match &err {
        Error::Remote { kind, store, .. } => {
            assert_eq!(*kind, RemoteErrorKind::MissingBucket, "{err}");
            assert!(kind.is_permanent());
            assert!(store.contains("strata-no-such-bucket"), "{err}");
        }
        other => panic!("expected MissingBucket, got {other:?}"),
    }
    assert!(err.to_string().contains("bucket does not exist"), "{err}");
}

#[test]
fn s3_requests_are_counted_on_the_wire_and_the_cache_saves_them() {
    let Some(target) =
        RemoteTarget::s3("s3_requests_are_counted_on_the_wire_and_the_cache_saves_them")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = target.options.clone().cache_dir(dir.path());
    let store = ObjectStoreBackend::open(&target.fresh_url("counts"), &options).unwrap();
    assert_eq!(store.requests().list, 1, "opening checks the bucket with one listing");
    let data = framed(100_000, 7);
    store.put("segments/s", &data).unwrap();
    let before = store.requests();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(delta(&store, before), RequestStats { get: 1, ..Default::default() });
    let before = store.requests();
    assert_eq!(&store.map("segments/s").unwrap()[..], &data[..]);
    assert_eq!(delta(&store, before).total(), 0);
}

#[test]
fn s3_multipart_uploads_complete_and_abandoned_ones_stay_invisible() {
    let Some(target) =
        RemoteTarget::s3("s3_multipart_uploads_complete_and_abandoned_ones_stay_invisible")
    else {
        return;
    };
    let options = target.options.clone().part_size(5 << 20);
    let store = ObjectStoreBackend::open(&target.fresh_url("multipart"), &options).unwrap();
    let data: Vec<u8> = (0..11_000_000u32).map(|i| (i % 253) as u8).collect();
    let before = store.requests();
    let mut writer = store.writer("segments/big").unwrap();
    for chunk in data.chunks(1 << 20) {
        writer.write_all(chunk).unwrap();
    }
    writer.finish().unwrap();
    let cost = delta(&store, before);
    assert_eq!((cost.post, cost.put), (2, 3), "{cost:?}");
    assert_eq!(store.get("segments/big").unwrap().len(), data.len());
    assert_eq!(
        &store.get_range("segments/big", 10_999_990..11_000_000).unwrap()[..],
        &data[10_999_990..]
    );

    let mut writer = store.writer("segments/abandoned").unwrap();
    writer.write_all(&data).unwrap();
    drop(writer);
    let keys: Vec<_> = store.list("segments/").unwrap().into_iter().map(|meta| meta.key).collect();
    assert_eq!(keys, ["segments/big"]);
}
