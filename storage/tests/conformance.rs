//! The storage contract, run against every implementation and every test wrapper.

use strata_storage::testing::{CountingStorage, FailingStorage, SimFs, conformance};
use strata_storage::{LocalDir, MemoryStore};

#[test]
fn memory_store() {
    conformance::run_all(MemoryStore::new);
}

#[test]
fn local_dir() {
    // Each store gets its own directory; they are kept until the test ends.
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalDir::open(dir.path().join("db")).expect("open");
        dirs.lock().unwrap().push(dir);
        store
    });
}

#[test]
fn local_dir_on_simulated_fs() {
    conformance::run_all(|| LocalDir::with_fs(SimFs::new(), "/db").expect("open"));
}

#[test]
fn wrappers_pass_through() {
    conformance::run_all(|| CountingStorage::new(MemoryStore::new()));
    conformance::run_all(|| FailingStorage::new(MemoryStore::new()));
}
