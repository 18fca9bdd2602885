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
        r(1, 1, 0, 0, 1, 0),
        "a refusal is confirmed with a GET"
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

/// A backend over a [`faulty::Faulty`] store, with a cache in `dir` if given.
fn faulty_backend(
    name: &str,
    dir: Option<&std::path::Path>,
    part_size: usize,
) -> (Arc<faulty::Faulty>, ObjectStoreBackend) {
    let store = Arc::new(faulty::Faulty::default());
    let mut options = ObjectStoreOptions::new().part_size(part_size);
    if let Some(dir) = dir {
        options = options.cache_dir(dir);
    }
    let backend = ObjectStoreBackend::new(store.clone(), format!("faulty://{name}"), &options);
    (store, backend.unwrap())
}

/// True for the trait's "outcome unknown" class: none of the errors that mean "not written".
fn unknown_outcome(result: &Result<(), Error>) -> bool {
    matches!(
        result,
        Err(e) if !matches!(
            e,
            Error::AlreadyExists { .. }
                | Error::NotFound { .. }
                | Error::KeyConflict { .. }
                | Error::InvalidKey { .. }
        )
    )
}

/// S3 can answer 500 to a conditional PUT it applied; `object_store` retries, and the retry is
/// refused by our own object. Reporting that as `AlreadyExists` ("the write did not happen")
/// would tell the winner of a manifest commit that it lost.
#[test]
fn put_if_absent_applied_but_answered_500_is_our_success_not_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (faults, store) = faulty_backend("pia500", Some(dir.path()), 1 << 20);
    faults.faults.lock().unwrap().applied_then_retried.insert("manifest/1".into());
    store.put_if_absent("manifest/1", b"my manifest").expect("our own create took effect");
    assert_eq!(&store.get("manifest/1").unwrap()[..], b"my manifest");
    assert!(store.put_if_absent("manifest/1", b"another").unwrap_err().is_already_exists());
    assert!(
        store.put_if_absent("manifest/1", b"my manifest").is_ok(),
        "the same bytes again cannot be told from a lost answer to our own create"
    );
    // A retried create whose object turns out to be another writer's is a real loss.
    store.put("manifest/2", b"theirs").unwrap();
    faults.faults.lock().unwrap().applied_then_retried.insert("manifest/2".into());
    assert!(store.put_if_absent("manifest/2", b"mine").unwrap_err().is_already_exists());
    assert_eq!(&store.get("manifest/2").unwrap()[..], b"theirs");
}

/// A refusal that cannot be confirmed is an unknown outcome: neither a GET that fails nor a
/// refusal with no object behind it (after retrying the create) becomes `AlreadyExists`.
#[test]
fn an_unconfirmed_put_if_absent_refusal_is_an_unknown_outcome() {
    let (faults, store) = faulty_backend("unconfirmed", None, 1 << 20);
    faults.faults.lock().unwrap().phantom_refusal.insert("manifest/1".into());
    let before = store.requests();
    let result = store.put_if_absent("manifest/1", b"m");
    assert!(unknown_outcome(&result), "a refusal with no object behind it: {result:?}");
    let cost = delta(&store, before);
    assert_eq!((cost.put, cost.get), (5, 5), "the create is tried again, then given up: {cost:?}");

    store.put("manifest/2", b"theirs").unwrap();
    faults.faults.lock().unwrap().failing_gets.insert("manifest/2".into());
    let result = store.put_if_absent("manifest/2", b"mine");
    match &result {
        Err(Error::Remote { kind, .. }) => assert_eq!(*kind, RemoteErrorKind::Unavailable),
        other => panic!("a confirmation that failed must be an unknown outcome, got {other:?}"),
    }
}

/// CompleteMultipartUpload applied but answered 500: the retry's 404 NoSuchUpload is no proof the
/// object was not written, so `finish` must not answer `NotFound`.
#[test]
fn a_completed_upload_answered_no_such_upload_is_an_unknown_outcome() {
    let (faults, store) = faulty_backend("complete", None, 64 << 10);
    faults.faults.lock().unwrap().completion_lost.insert("segments/s".into());
    let data = vec![7u8; 200_000];
    let mut writer = store.writer("segments/s").unwrap();
    writer.write_all(&data).unwrap();
    let result = writer.finish().map(drop);
    assert!(unknown_outcome(&result), "{result:?}");
    assert_eq!(store.get("segments/s").unwrap().len(), data.len(), "it was published");
}

/// A write whose outcome is unknown may have replaced the object: the old cached copy must not
/// survive it (for `put` and for a streamed write's single PUT).
#[test]
fn a_write_with_an_unknown_outcome_leaves_no_stale_cached_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (faults, store) = faulty_backend("stale", Some(dir.path()), 1 << 20);
    let (old, new, newer) = (framed(1000, 1), framed(2000, 2), framed(3000, 3));
    store.put("segments/s", &old).unwrap();
    drop(store.map("segments/s").unwrap());
    faults.faults.lock().unwrap().applied_then_500.insert("segments/s".into());
    assert!(unknown_outcome(&store.put("segments/s", &new)));
    assert_eq!(store.size("segments/s").unwrap(), new.len() as u64);
    assert!(store.map("segments/s").unwrap()[..] == new[..], "map after the failed put");

    let mut writer = store.writer("segments/s").unwrap();
    writer.write_all(&newer).unwrap();
    assert!(unknown_outcome(&writer.finish().map(drop)));
    assert_eq!(store.size("segments/s").unwrap(), newer.len() as u64);
    assert!(store.map("segments/s").unwrap()[..] == newer[..], "map after the failed finish");
    assert_eq!(&store.get_range("segments/s", 0..10).unwrap()[..], &newer[..10]);
}

/// After `put_if_absent` returns, the handle's reads see the new object, even if its cache held
/// an object of that key that another process deleted since.
#[test]
fn put_if_absent_invalidates_the_cached_copy() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<InMemory> = Arc::new(InMemory::new());
    let a = ObjectStoreBackend::new(memory.clone(), "memory://pia", &cached(dir.path(), 1 << 20))
        .unwrap();
    let other =
        ObjectStoreBackend::new(memory, "memory://pia", &ObjectStoreOptions::new()).unwrap();
    let (old, new) = (framed(1000, 1), framed(2000, 2));
    a.put("k", &old).unwrap();
    drop(a.map("k").unwrap());
    other.delete("k").unwrap();
    a.put_if_absent("k", &new).unwrap();
    assert_eq!(a.size("k").unwrap(), new.len() as u64);
    assert!(a.map("k").unwrap()[..] == new[..]);
    assert_eq!(&a.get_range("k", 0..10).unwrap()[..], &new[..10]);
}

/// A local cache failure must not make an existing object look absent, and the cache recovers
/// when its directory is removed (a temporary-file cleaner); when it cannot, objects are served
/// from memory.
#[test]
fn a_removed_cache_directory_is_made_again_and_never_reads_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreBackend::memory(&cached(dir.path(), 1 << 20)).unwrap();
    let (a, b) = (framed(1000, 1), framed(1000, 2));
    store.put("segments/a", &a).unwrap();
    store.put("segments/b", &b).unwrap();
    drop(store.map("segments/a").unwrap());
    let root = store.cache_root().unwrap().to_owned();
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(&store.get_range("segments/a", 5..50).unwrap()[..], &a[5..50]);
    let mapped = store.map("segments/a").expect("an existing object is no NotFound");
    assert!(mapped[..] == a[..]);
    assert!(mapped.is_mapped(), "the cache directory was made again");
    assert!(store.map("segments/b").unwrap().is_mapped());

    // A cache that cannot be repaired (its directory replaced by a file): served from memory.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    store.put("segments/c", &framed(1000, 3)).unwrap();
    let mapped = store.map("segments/c").expect("a broken cache is no NotFound");
    assert!(mapped[..] == framed(1000, 3)[..]);
    assert!(!mapped.is_mapped());
    std::fs::remove_file(&root).unwrap();
}

/// The last handle on an ephemeral cache removes its directory; a cache opened on the same
/// namespace at that moment keeps its own.
#[test]
fn dropping_an_ephemeral_cache_never_removes_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = cached(dir.path(), 1 << 24);
    let url = "memory://ephemeral-drop-race";
    let seed = open_url(url, &options).unwrap();
    for i in 0..20 {
        seed.put(&format!("segments/s{i}"), &framed(100, i as u8)).unwrap();
    }
    drop(seed);
    for round in 0..100 {
        let old = open_url(url, &options).unwrap();
        for i in 0..20 {
            drop(old.map(&format!("segments/s{i}")).unwrap());
        }
        let dropper = std::thread::spawn(move || drop(old));
        let new = open_url(url, &options).unwrap();
        dropper.join().unwrap();
        for i in 0..20 {
            let key = format!("segments/s{i}");
            let bytes = new.map(&key).unwrap_or_else(|e| panic!("round {round}: {key}: {e:?}"));
            assert!(bytes[..] == framed(100, i as u8)[..]);
        }
    }
}

/// In-memory stores' cache namespaces carry the pid: a process reusing the pid of one that
/// crashed must not serve the dead store's files for its own, different store.
#[test]
fn ephemeral_caches_start_empty_whatever_an_earlier_process_left() {
    let dir = tempfile::tempdir().unwrap();
    let options = cached(dir.path(), 1 << 20);
    let url = "memory://pid-reuse";
    let (old, new) = (framed(1000, 1), framed(1000, 2));
    let saved = dir.path().join("saved");
    {
        let first = open_url(url, &options).unwrap();
        first.put("segments/s", &old).unwrap();
        drop(first.map("segments/s").unwrap());
        // What a crash would leave: the namespace directory, copied before the drop removes it.
        let ns = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        copy_dir(&ns, &saved.join(ns.file_name().unwrap()));
    }
    for entry in std::fs::read_dir(&saved).unwrap() {
        let entry = entry.unwrap();
        std::fs::rename(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    // "The new process": the store holds different bytes under the same key.
    open_url(url, &ObjectStoreOptions::new()).unwrap().put("segments/s", &new).unwrap();
    let second = open_url(url, &options).unwrap();
    assert!(second.map("segments/s").unwrap()[..] == new[..], "a dead store's bytes");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A key once seen as a directory and later written as an object is checked again: `a/c` beside
/// the object `a` is refused, as LocalDir and MemoryStore refuse it.
#[test]
fn a_directory_written_as_an_object_is_checked_again() {
    let store = ObjectStoreBackend::memory(&ObjectStoreOptions::new()).unwrap();
    store.put("a/b", b"x").unwrap();
    store.delete("a/b").unwrap();
    store.put("a", b"file").unwrap();
    let clash = store.put("a/c", b"y");
    assert!(matches!(clash, Err(Error::KeyConflict { .. })), "a/c beside the object a: {clash:?}");
    assert!(matches!(store.put_if_absent("a/d", b"y"), Err(Error::KeyConflict { .. })));
    let mut writer = store.writer("a/e").unwrap();
    writer.write_all(b"y").unwrap();
    assert!(matches!(writer.finish(), Err(Error::KeyConflict { .. })));
}

/// An object of exactly one part is one PUT, as documented; one byte more is a multipart upload.
#[test]
fn an_object_of_exactly_one_part_is_one_put() {
    let part = 64 << 10;
    let store = ObjectStoreBackend::memory(&ObjectStoreOptions::new().part_size(part)).unwrap();
    for (len, chunk, expected) in
        [(part, part, (1, 0)), (part, 1000, (1, 0)), (part + 1, 1000, (2, 2))]
    {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let before = store.requests();
        let mut writer = store.writer("segments/one").unwrap();
        for piece in data.chunks(chunk) {
            writer.write_all(piece).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), len as u64);
        let cost = delta(&store, before);
        assert_eq!((cost.put, cost.post), expected, "{len} bytes in {chunk}-byte writes");
        assert_eq!(&store.get("segments/one").unwrap()[..], &data[..]);
    }
}

/// A backend on the S3 test server through `scripts/fault-proxy.py`, which answers a PUT or
/// multipart completion whose path contains `once500` with 500 the first time, and one with
/// `always500` every time, after the server applied it. Skipped unless
/// `STRATA_TEST_FAULT_PROXY` (the proxy's URL) is set besides the S3 test variables; the same
/// faults are injected without a server by the `faulty` store above.
fn through_fault_proxy(test: &str, cache: Option<&std::path::Path>) -> Option<ObjectStoreBackend> {
    let Some(proxy) = std::env::var("STRATA_TEST_FAULT_PROXY").ok().filter(|v| !v.is_empty())
    else {
        eprintln!("skipping {test}: STRATA_TEST_FAULT_PROXY is unset");
        return None;
    };
    let target = RemoteTarget::s3(test)?;
    let mut options = target
        .options
        .clone()
        .endpoint(proxy)
        .allow_http(true)
        .part_size(5 << 20)
        .max_retries(2)
        .retry_timeout(Duration::from_secs(10));
    if let Some(dir) = cache {
        options = options.cache_dir(dir);
    }
    Some(ObjectStoreBackend::open(&target.fresh_url(test), &options).unwrap())
}

#[test]
fn s3_fault_proxy_put_if_absent_applied_then_500_is_our_success() {
    let test = "s3_fault_proxy_put_if_absent_applied_then_500_is_our_success";
    let Some(store) = through_fault_proxy(test, None) else { return };
    store.put_if_absent("manifest/once500", b"my manifest").expect("our create took effect");
    assert_eq!(&store.get("manifest/once500").unwrap()[..], b"my manifest");
    assert!(store.put_if_absent("manifest/once500", b"other").unwrap_err().is_already_exists());
}

#[test]
fn s3_fault_proxy_failed_put_leaves_no_stale_cached_copy() {
    let test = "s3_fault_proxy_failed_put_leaves_no_stale_cached_copy";
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = through_fault_proxy(test, Some(dir.path())) else { return };
    let (old, new) = (framed(1000, 1), framed(2000, 2));
    let _ = store.put("segments/always500", &old); // applied, answered 500
    drop(store.map("segments/always500").unwrap());
    assert!(unknown_outcome(&store.put("segments/always500", &new)));
    assert_eq!(store.size("segments/always500").unwrap(), new.len() as u64);
    assert!(store.map("segments/always500").unwrap()[..] == new[..]);
}

#[test]
fn s3_fault_proxy_completed_upload_answered_500_is_an_unknown_outcome() {
    let test = "s3_fault_proxy_completed_upload_answered_500_is_an_unknown_outcome";
    let Some(store) = through_fault_proxy(test, None) else { return };
    let data = vec![7u8; 6 << 20];
    let mut writer = store.writer("segments/once500").unwrap();
    writer.write_all(&data).unwrap();
    // moto accepts the retried completion (Ok); S3 answers NoSuchUpload (an unknown outcome).
    let result = writer.finish().map(drop);
    assert_eq!(store.get("segments/once500").unwrap().len(), data.len(), "it was published");
    assert!(result.is_ok() || unknown_outcome(&result), "reported as not written: {result:?}");
}

/// An in-memory `ObjectStore` that fails chosen requests the way S3 can: some after applying
/// them, as when a reply is lost or the server answers 500 to a request it carried out.
mod faulty {
    use std::collections::HashSet;
    use std::fmt;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    use futures_util::stream::BoxStream;
    use strata_storage::object_store::memory::InMemory;
    use strata_storage::object_store::path::Path;
    use strata_storage::object_store::{
        CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
        UploadPart,
    };

    type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

    /// Keys (full paths) whose requests fail, by the way they fail.
    #[derive(Debug, Default)]
    pub struct Faults {
        /// A PUT is applied and answered 500; the client retries it once and returns the
        /// retry's answer (for a conditional create: "already exists", refused by its own
        /// object).
        pub applied_then_retried: HashSet<String>,
        /// Every PUT is applied and answered 500 through every retry.
        pub applied_then_500: HashSet<String>,
        /// A conditional create is refused as existing without being applied (S3's 409 for a
        /// create racing another in flight), whether or not an object exists.
        pub phantom_refusal: HashSet<String>,
        /// GETs fail with 503 through every retry.
        pub failing_gets: HashSet<String>,
        /// A multipart completion is applied and answered 500; its retry answers 404
        /// NoSuchUpload.
        pub completion_lost: HashSet<String>,
    }

    #[derive(Debug, Default)]
    pub struct Faulty {
        pub inner: InMemory,
        pub faults: Mutex<Faults>,
    }

    fn server_error(what: &str) -> Error {
        Error::Generic {
            store: "Faulty",
            source: format!("Error performing {what} in 1s, after 3 retries - 500 InternalError")
                .into(),
        }
    }

    impl fmt::Display for Faulty {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Faulty")
        }
    }

    // `ObjectStore` is declared with `async_trait`; these are the signatures it expands to.
    impl ObjectStore for Faulty {
        fn put_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Fut<'c, PutResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                let key = location.as_ref();
                let (retried, always, phantom) = {
                    let faults = self.faults.lock().unwrap();
                    (
                        faults.applied_then_retried.contains(key),
                        faults.applied_then_500.contains(key),
                        faults.phantom_refusal.contains(key),
                    )
                };
                if phantom && matches!(opts.mode, PutMode::Create) {
                    return Err(Error::AlreadyExists {
                        path: key.to_owned(),
                        source: "409 ConditionalRequestConflict".into(),
                    });
                }
                let applied = self.inner.put_opts(location, payload.clone(), opts.clone()).await;
                if always {
                    applied?;
                    return Err(server_error("PUT"));
                }
                if retried {
                    self.faults.lock().unwrap().applied_then_retried.remove(key);
                    applied?;
                    return self.inner.put_opts(location, payload, opts).await;
                }
                applied
            })
        }

        fn put_multipart_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b Path,
            opts: PutMultipartOptions,
        ) -> Fut<'c, Box<dyn MultipartUpload>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                let lose = self.faults.lock().unwrap().completion_lost.contains(location.as_ref());
                let inner = self.inner.put_multipart_opts(location, opts).await?;
                let upload: Box<dyn MultipartUpload> =
                    Box::new(Upload { inner, lose, path: location.to_string() });
                Ok(upload)
            })
        }

        fn get_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b Path,
            options: GetOptions,
        ) -> Fut<'c, GetResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            Box::pin(async move {
                if self.faults.lock().unwrap().failing_gets.contains(location.as_ref()) {
                    return Err(server_error("GET"));
                }
                self.inner.get_opts(location, options).await
            })
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        fn list_with_delimiter<'a, 'b, 'c>(
            &'a self,
            prefix: Option<&'b Path>,
        ) -> Fut<'c, ListResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self.inner.list_with_delimiter(prefix)
        }

        fn copy_opts<'a, 'b, 'c, 'd>(
            &'a self,
            from: &'b Path,
            to: &'c Path,
            options: CopyOptions,
        ) -> Fut<'d, ()>
        where
            'a: 'd,
            'b: 'd,
            'c: 'd,
            Self: 'd,
        {
            self.inner.copy_opts(from, to, options)
        }
    }

    #[derive(Debug)]
    struct Upload {
        inner: Box<dyn MultipartUpload>,
        lose: bool,
        path: String,
    }

    impl MultipartUpload for Upload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            self.inner.put_part(data)
        }

        fn complete<'a, 'b>(&'a mut self) -> Fut<'b, PutResult>
        where
            'a: 'b,
            Self: 'b,
        {
            Box::pin(async move {
                let done = self.inner.complete().await?;
                if self.lose {
                    return Err(Error::NotFound {
                        path: self.path.clone(),
                        source: "404 NoSuchUpload".into(),
                    });
                }
                Ok(done)
            })
        }

        fn abort<'a, 'b>(&'a mut self) -> Fut<'b, ()>
        where
            'a: 'b,
            Self: 'b,
        {
            self.inner.abort()
        }
    }
}
