//! Behaviour specific to the local-directory backend.

use std::fs;

use strata_storage::testing::SimFs;
use strata_storage::{Error, LocalDir, Storage};

#[test]
fn whole_objects_are_memory_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::open(dir.path()).unwrap();
    store.put("seg/1", &[5u8; 4096]).unwrap();
    let mapped = store.map("seg/1").unwrap();
    assert!(mapped.is_mapped());
    assert_eq!(&mapped[..], &[5u8; 4096][..]);
    assert!(!store.get("seg/1").unwrap().is_mapped(), "get reads into memory");
}

#[test]
fn keys_are_plain_files_and_strays_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::open(dir.path().join("nested/root")).unwrap();
    store.put("a/b", b"bytes").unwrap();
    assert_eq!(fs::read(dir.path().join("nested/root/a/b")).unwrap(), b"bytes");
    // A crash leftover and a file no key can name are not objects.
    fs::write(dir.path().join("nested/root/a/.tmp-b-1-1"), b"partial").unwrap();
    fs::write(dir.path().join("nested/root/a/has space"), b"?").unwrap();
    let keys: Vec<_> = store.list("").unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(keys, ["a/b"]);
}

/// Crash leftovers take space until someone removes them: the writer does at open.
#[test]
fn crash_leftovers_are_removed_and_objects_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::open(dir.path()).unwrap();
    store.put("a/b", b"bytes").unwrap();
    store.put("c", b"more").unwrap();
    fs::write(dir.path().join("a/.tmp-b-77-1"), b"partial").unwrap();
    fs::write(dir.path().join(".tmp-c-77-2"), b"xy").unwrap();
    fs::write(dir.path().join("a/.hidden"), b"not ours").unwrap();
    assert_eq!(store.remove_temporaries().unwrap(), (2, 9));
    assert!(!dir.path().join("a/.tmp-b-77-1").exists() && !dir.path().join(".tmp-c-77-2").exists());
    assert!(dir.path().join("a/.hidden").exists(), "only temporary files go");
    assert_eq!(&store.get("a/b").unwrap()[..], b"bytes");
    assert_eq!(&store.get("c").unwrap()[..], b"more");
    assert_eq!(store.remove_temporaries().unwrap(), (0, 0));
}

#[test]
fn two_stores_on_one_root_share_objects_and_race_fairly() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalDir::open(dir.path()).unwrap();
    let second = LocalDir::open(dir.path()).unwrap();
    first.put_if_absent("manifest/1", b"first").unwrap();
    assert!(second.put_if_absent("manifest/1", b"second").unwrap_err().is_already_exists());
    second.put_if_absent("manifest/2", b"second").unwrap();
    assert_eq!(&first.get("manifest/2").unwrap()[..], b"second");
    // No temporary files are left behind by either.
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("manifest")).unwrap().collect();
    assert_eq!(leftovers.len(), 2);
}

#[test]
fn a_writer_that_failed_does_not_publish() {
    let fs = SimFs::new();
    let store = LocalDir::with_fs(fs.clone(), "/db").unwrap();
    let mut writer = store.writer("seg/1").unwrap();
    writer.write_all(b"first chunk").unwrap();
    fs.fail_at(fs.steps());
    assert!(writer.write_all(b"lost chunk").is_err());
    writer.write_all(b"third chunk").unwrap();
    let err = writer.finish().expect_err("a writer with a failed write must not publish");
    assert!(matches!(err, Error::Io { op: "finish", .. }), "{err}");
    assert!(store.get("seg/1").unwrap_err().is_not_found());
    assert!(store.list("").unwrap().is_empty());
}

#[test]
fn opening_names_the_root_and_refuses_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = LocalDir::open(&file).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn a_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::open(dir.path()).unwrap();
    let other = LocalDir::open(dir.path()).unwrap();
    let guard = store.lock("LOCK").unwrap();
    assert!(matches!(other.lock("LOCK"), Err(strata_storage::Error::Locked { .. })));
    drop(guard);
    let again = other.lock("LOCK").unwrap();
    assert_eq!(again.path(), dir.path().join("LOCK"));
}
