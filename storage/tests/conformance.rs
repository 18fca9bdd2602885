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

#[test]
fn object_store_in_memory() {
    use strata_storage::{ObjectStoreBackend, ObjectStoreOptions};
    conformance::run_all(|| ObjectStoreBackend::memory(&ObjectStoreOptions::new()).expect("open"));
}

#[test]
fn object_store_in_memory_with_cache() {
    use strata_storage::{ObjectStoreBackend, ObjectStoreOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::run_all(|| {
        let options = ObjectStoreOptions::new().cache_dir(dir.path()).part_size(64 << 10);
        ObjectStoreBackend::memory(&options).expect("open")
    });
}

#[test]
fn object_store_local_file_system() {
    use std::sync::Arc;
    use strata_storage::object_store::local::LocalFileSystem;
    use strata_storage::{ObjectStoreBackend, ObjectStoreOptions};
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFileSystem::new_with_prefix(dir.path()).expect("local store");
        let location = format!("file-store://{}", dir.path().display());
        let options = ObjectStoreOptions::new().cache_dir(dir.path().join(".cache"));
        dirs.lock().unwrap().push(dir);
        ObjectStoreBackend::new(Arc::new(store), location, &options).expect("open")
    });
}

/// Each store under its own fresh prefix of the bucket, with a cache directory.
fn run_remote(target: strata_storage::testing::RemoteTarget, name: &str) {
    use strata_storage::ObjectStoreBackend;
    let cache = tempfile::tempdir().expect("tempdir");
    let options = target.options.clone().cache_dir(cache.path());
    conformance::run_all(|| {
        ObjectStoreBackend::open(&target.fresh_url(name), &options).expect("open the bucket")
    });
}

#[test]
fn s3_conformance() {
    if let Some(target) = strata_storage::testing::RemoteTarget::s3("s3_conformance") {
        run_remote(target, "conformance");
    }
}

#[test]
fn gcs_conformance() {
    if let Some(target) = strata_storage::testing::RemoteTarget::gcs("gcs_conformance") {
        run_remote(target, "conformance");
    }
}
