//! The contract of [`Storage`] as executable checks. Every implementation runs [`run_all`] on
//! fresh, empty stores; a check that fails panics with the name of the rule it broke.
//!
//! ```text
//! strata_storage::testing::conformance::run_all(|| MyStore::new_empty());
//! ```

use std::sync::{Arc, Barrier};

use crate::{Error, OBJECT_ALIGN, ObjectMeta, Storage};

/// Runs every check, each on a new store from `make_empty`.
pub fn run_all<S: Storage + 'static>(make_empty: impl Fn() -> S) {
    put_then_read(&make_empty());
    put_replaces(&make_empty());
    missing_objects(&make_empty());
    put_if_absent_refuses_existing(&make_empty());
    racing_put_if_absent_has_one_winner(Arc::new(make_empty()));
    range_reads(&make_empty());
    list_by_prefix(&make_empty());
    streamed_writes(&make_empty());
    abandoned_writer_leaves_nothing(&make_empty());
    delete_is_idempotent(&make_empty());
    invalid_keys_rejected(&make_empty());
    empty_and_large_objects(&make_empty());
    key_clashes_are_refused(&make_empty());
    longest_keys_round_trip(&make_empty());
}

fn assert_aligned(bytes: &[u8], what: &str) {
    assert_eq!(
        bytes.as_ptr() as usize % OBJECT_ALIGN,
        0,
        "{what}: bytes must start 64-byte aligned"
    );
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

/// `put` then `get`, `map` and `size` return exactly what was written, aligned.
pub fn put_then_read(store: &dyn Storage) {
    let data = pattern(1000, 1);
    store.put("segments/0001.flat", &data).expect("put");
    let got = store.get("segments/0001.flat").expect("get");
    assert_eq!(&got[..], &data[..], "get returns the bytes put");
    assert_aligned(&got, "get");
    let mapped = store.map("segments/0001.flat").expect("map");
    assert_eq!(&mapped[..], &data[..], "map returns the bytes put");
    assert_aligned(&mapped, "map");
    assert_eq!(store.size("segments/0001.flat").expect("size"), 1000, "size");
}

/// A second `put` replaces the object whole; a reader holding the old bytes keeps them.
pub fn put_replaces(store: &dyn Storage) {
    store.put("obj", b"first version").expect("put");
    let old = store.map("obj").expect("map");
    store.put("obj", b"second").expect("put again");
    assert_eq!(&store.get("obj").expect("get")[..], b"second", "put replaces");
    assert_eq!(store.size("obj").expect("size"), 6, "size follows the replacement");
    assert_eq!(&old[..], b"first version", "earlier reads keep their bytes");
}

/// Every read of a missing object is `NotFound`.
pub fn missing_objects(store: &dyn Storage) {
    assert!(matches!(store.get("nope"), Err(Error::NotFound { .. })), "get of a missing object");
    assert!(matches!(store.map("nope"), Err(Error::NotFound { .. })), "map of a missing object");
    assert!(matches!(store.size("nope"), Err(Error::NotFound { .. })), "size of a missing object");
    assert!(
        matches!(store.get_range("nope", 0..1), Err(Error::NotFound { .. })),
        "get_range of a missing object"
    );
    assert!(matches!(store.get("dir/nope"), Err(Error::NotFound { .. })), "missing directory");
}

/// `put_if_absent` creates once, then refuses without changing the object.
pub fn put_if_absent_refuses_existing(store: &dyn Storage) {
    store.put_if_absent("manifest/00000001", b"v1").expect("first create wins");
    let err = store.put_if_absent("manifest/00000001", b"other").expect_err("second create loses");
    assert!(err.is_already_exists(), "losing create is AlreadyExists, got {err}");
    assert_eq!(&store.get("manifest/00000001").expect("get")[..], b"v1", "loser changes nothing");
    store.put("plain", b"x").expect("put");
    assert!(
        store.put_if_absent("plain", b"y").expect_err("exists").is_already_exists(),
        "put_if_absent also refuses objects made by put"
    );
    assert_eq!(
        store.list("").expect("list").len(),
        2,
        "a losing put_if_absent leaves no object behind"
    );
}

/// Of many threads racing `put_if_absent` on one key, exactly one wins and its bytes stay.
pub fn racing_put_if_absent_has_one_winner<S: Storage + 'static>(store: Arc<S>) {
    const RACERS: usize = 8;
    for round in 0..10 {
        let key = format!("race/{round:04}");
        let barrier = Arc::new(Barrier::new(RACERS));
        let handles: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, barrier, key) = (Arc::clone(&store), Arc::clone(&barrier), key.clone());
                std::thread::spawn(move || {
                    let payload = pattern(100 + racer, racer as u8);
                    barrier.wait();
                    (payload.clone(), store.put_if_absent(&key, &payload))
                })
            })
            .collect();
        let results: Vec<_> =
            handles.into_iter().map(|h| h.join().expect("racer panicked")).collect();
        let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one creator wins");
        for (_, result) in &results {
            if let Err(e) = result {
                assert!(e.is_already_exists(), "round {round}: losers see AlreadyExists, got {e}");
            }
        }
        assert_eq!(
            &store.get(&key).expect("get")[..],
            &winners[0].0[..],
            "the winner's bytes stay"
        );
    }
}

/// Range reads return exactly the range, aligned; ranges past the end are errors.
pub fn range_reads(store: &dyn Storage) {
    let data = pattern(300, 7);
    store.put("ranged", &data).expect("put");
    for (start, end) in [(0, 300), (0, 0), (300, 300), (1, 2), (64, 128), (299, 300), (17, 251)] {
        let got = store.get_range("ranged", start..end).expect("in-bounds range");
        assert_eq!(&got[..], &data[start as usize..end as usize], "range {start}..{end}");
        assert_aligned(&got, "get_range");
    }
    for (start, end) in [(0, 301), (301, 302), (200, 100)] {
        assert!(
            matches!(store.get_range("ranged", start..end), Err(Error::RangeOutOfBounds { .. })),
            "range {start}..{end} must be RangeOutOfBounds"
        );
    }
}

/// `list` is by string prefix, across directory levels, sorted, with sizes.
pub fn list_by_prefix(store: &dyn Storage) {
    for (key, len) in [("seg/b/2", 2), ("seg/a", 1), ("seg/b/1", 3), ("segment", 4), ("man/1", 5)] {
        store.put(key, &pattern(len, 0)).expect("put");
    }
    let keys = |prefix: &str| -> Vec<String> {
        store.list(prefix).expect("list").into_iter().map(|m| m.key).collect()
    };
    assert_eq!(keys(""), ["man/1", "seg/a", "seg/b/1", "seg/b/2", "segment"], "all, sorted");
    assert_eq!(keys("seg"), ["seg/a", "seg/b/1", "seg/b/2", "segment"], "string prefix");
    assert_eq!(keys("seg/"), ["seg/a", "seg/b/1", "seg/b/2"], "directory prefix");
    assert_eq!(keys("seg/b/"), ["seg/b/1", "seg/b/2"], "nested directory prefix");
    assert_eq!(keys("seg/b/1"), ["seg/b/1"], "a whole key");
    assert!(keys("zzz").is_empty(), "nothing matches");
    assert!(keys("none/").is_empty(), "missing directory");
    let listed = store.list("seg/b/1").expect("list");
    assert_eq!(listed, [ObjectMeta { key: "seg/b/1".into(), size: 3 }], "sizes are listed");
}

/// A streamed object is invisible until `finish`, then whole.
pub fn streamed_writes(store: &dyn Storage) {
    let data = pattern(100_000, 3);
    let mut writer = store.writer("big/object").expect("writer");
    for chunk in data.chunks(7_919) {
        writer.write_all(chunk).expect("write");
    }
    assert_eq!(writer.bytes_written(), data.len() as u64, "bytes_written");
    assert!(
        store.get("big/object").expect_err("unfinished").is_not_found(),
        "invisible before finish"
    );
    assert!(store.list("").expect("list").is_empty(), "list shows no unfinished object");
    assert_eq!(writer.finish().expect("finish"), data.len() as u64, "finish returns the size");
    assert_eq!(&store.get("big/object").expect("get")[..], &data[..], "streamed bytes");
}

/// A writer dropped before `finish` leaves nothing visible.
pub fn abandoned_writer_leaves_nothing(store: &dyn Storage) {
    store.put("kept", b"old").expect("put");
    let mut writer = store.writer("kept").expect("writer");
    writer.write_all(b"new bytes never published").expect("write");
    drop(writer);
    assert_eq!(&store.get("kept").expect("get")[..], b"old", "abandoned write replaced nothing");
    let mut writer = store.writer("fresh").expect("writer");
    writer.write_all(b"x").expect("write");
    drop(writer);
    assert_eq!(store.list("").expect("list").len(), 1, "abandoned write created nothing");
}

/// `delete` removes; deleting again (or a missing object) succeeds; the key can be created again.
pub fn delete_is_idempotent(store: &dyn Storage) {
    store.put("gone/soon", b"bytes").expect("put");
    store.delete("gone/soon").expect("delete");
    assert!(store.get("gone/soon").expect_err("deleted").is_not_found(), "deleted object is gone");
    store.delete("gone/soon").expect("second delete succeeds");
    store.delete("never/existed").expect("deleting a missing object succeeds");
    store.put_if_absent("gone/soon", b"again").expect("a deleted key can be created again");
    assert!(store.list("gone").expect("list").len() == 1, "recreated object listed once");
}

/// Every method refuses keys outside the portable subset.
pub fn invalid_keys_rejected(store: &dyn Storage) {
    for key in ["", "/abs", "a//b", "trailing/", ".hidden", "a/../b", "sp ace"] {
        let invalid = |r: Result<(), Error>| matches!(r, Err(Error::InvalidKey { .. }));
        assert!(invalid(store.put(key, b"x")), "put {key:?}");
        assert!(invalid(store.put_if_absent(key, b"x")), "put_if_absent {key:?}");
        assert!(invalid(store.writer(key).map(drop)), "writer {key:?}");
        assert!(invalid(store.get(key).map(drop)), "get {key:?}");
        assert!(invalid(store.get_range(key, 0..0).map(drop)), "get_range {key:?}");
        assert!(invalid(store.map(key).map(drop)), "map {key:?}");
        assert!(invalid(store.size(key).map(drop)), "size {key:?}");
        assert!(invalid(store.delete(key)), "delete {key:?}");
    }
    assert!(matches!(store.list("/abs"), Err(Error::InvalidKey { .. })), "list with a bad prefix");
    assert!(store.list("").expect("list").is_empty(), "nothing was written by rejected calls");
}

/// Empty objects and multi-megabyte objects round-trip through every read.
pub fn empty_and_large_objects(store: &dyn Storage) {
    store.put("empty", b"").expect("put empty");
    assert!(store.get("empty").expect("get").is_empty(), "empty get");
    assert!(store.map("empty").expect("map").is_empty(), "empty map");
    assert_eq!(store.size("empty").expect("size"), 0, "empty size");
    let large = pattern(3 << 20, 9);
    store.put("large", &large).expect("put large");
    assert_eq!(&store.map("large").expect("map")[..], &large[..], "large map");
    let tail = store.get_range("large", (3 << 20) - 10..3 << 20).expect("tail");
    assert_eq!(&tail[..], &large[large.len() - 10..], "large tail range");
}

/// A key cannot also be a directory of another key, in either order, on any backend.
pub fn key_clashes_are_refused(store: &dyn Storage) {
    let conflict = |r: Result<(), Error>| matches!(r, Err(Error::KeyConflict { .. }));
    store.put("a/b/c", b"deep").expect("put");
    assert!(conflict(store.put("a/b", b"x")), "put of a key that is another key's directory");
    assert!(
        conflict(store.put_if_absent("a/b", b"x")),
        "put_if_absent of such a key is a conflict, not AlreadyExists (another writer)"
    );
    assert!(store.get("a/b").expect_err("no object").is_not_found(), "a directory is no object");
    assert!(store.size("a/b").expect_err("no object").is_not_found(), "size of a directory");
    assert!(store.map("a").expect_err("no object").is_not_found(), "map of a directory");
    store.put("x/y", b"file").expect("put");
    assert!(conflict(store.put("x/y/z", b"x")), "put under an existing key");
    let mut writer = store.writer("x/y/w").map(Some).unwrap_or_else(|e| {
        assert!(matches!(e, Error::KeyConflict { .. }), "writer under a key: {e}");
        None
    });
    if let Some(writer) = writer.as_mut() {
        writer.write_all(b"x").expect("write");
    }
    if let Some(writer) = writer {
        assert!(matches!(writer.finish(), Err(Error::KeyConflict { .. })), "finish under a key");
    }
    assert_eq!(&store.get("x/y").expect("get")[..], b"file", "the existing key is untouched");
}

/// The longest valid key (1024 bytes, 200-byte components) works on every backend.
pub fn longest_keys_round_trip(store: &dyn Storage) {
    let component = "k".repeat(crate::MAX_COMPONENT_LEN);
    let mut key = [component.as_str(); 5].join("/");
    key.truncate(crate::MAX_KEY_LEN);
    let key = key.trim_end_matches('/').to_owned();
    crate::validate_key(&key).expect("a valid key");
    store.put(&key, b"long").expect("put of the longest key");
    assert_eq!(&store.get(&key).expect("get")[..], b"long");
    store.put_if_absent(&format!("{}x", &key[..key.len() - 1]), b"x").expect("create");
}
