//! The simulated file system keeps exactly what POSIX promises across a crash.

use std::path::Path;

use strata_storage::testing::SimFs;
use strata_storage::{Fs, FsFile};

fn read(fs: &SimFs, path: &str) -> Option<Vec<u8>> {
    fs.read(Path::new(path), None).ok().map(|b| b.to_vec())
}

#[test]
fn synced_file_in_synced_directory_survives() {
    let fs = SimFs::new();
    fs.create_dir(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let mut file = fs.create_new(Path::new("/d/f")).unwrap();
    file.write_all(b"hello").unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    for seed in 0..16 {
        assert_eq!(read(&fs.crash_image(seed), "/d/f").as_deref(), Some(&b"hello"[..]));
    }
}

#[test]
fn unsynced_data_is_lost_or_torn() {
    let fs = SimFs::new();
    let mut file = fs.create_new(Path::new("/f")).unwrap();
    file.write_all(b"durable").unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    file.write_all(b" and not yet").unwrap();
    let outcomes: Vec<_> = (0..64).map(|seed| read(&fs.crash_image(seed), "/f").unwrap()).collect();
    assert!(outcomes.iter().all(|o| o.starts_with(b"durable") && o.len() <= 19));
    assert!(outcomes.iter().any(|o| o == b"durable"), "sometimes lost");
    assert!(outcomes.iter().any(|o| o == b"durable and not yet"), "sometimes kept");
    assert!(
        outcomes.iter().any(|o| o.len() > 7 && o.len() < 19 || o.contains(&0)),
        "sometimes torn"
    );
}

#[test]
fn unsynced_directory_entries_may_or_may_not_survive() {
    let fs = SimFs::new();
    let mut file = fs.create_new(Path::new("/a")).unwrap();
    file.write_all(b"x").unwrap();
    file.sync_all().unwrap();
    let outcomes: Vec<_> = (0..64).map(|seed| read(&fs.crash_image(seed), "/a")).collect();
    assert!(outcomes.contains(&None), "created but directory not synced: sometimes lost");
    assert!(outcomes.contains(&Some(b"x".to_vec())), "and sometimes kept early");

    fs.sync_dir(Path::new("/")).unwrap();
    fs.rename(Path::new("/a"), Path::new("/b")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let image = fs.crash_image(seed);
        let state = (read(&image, "/a"), read(&image, "/b"));
        assert!(
            state == (Some(b"x".to_vec()), None) || state == (None, Some(b"x".to_vec())),
            "a rename is atomic: {state:?}"
        );
        seen.insert(state.0.is_some());
    }
    assert_eq!(seen.len(), 2, "an unsynced rename is sometimes undone, sometimes kept");
    fs.sync_dir(Path::new("/")).unwrap();
    for seed in 0..16 {
        let image = fs.crash_image(seed);
        assert_eq!((read(&image, "/a"), read(&image, "/b")), (None, Some(b"x".to_vec())), "synced");
    }
}

#[test]
fn files_in_an_unsynced_directory_may_be_lost() {
    let fs = SimFs::new();
    fs.create_dir(Path::new("/d")).unwrap();
    let mut file = fs.create_new(Path::new("/d/f")).unwrap();
    file.write_all(b"x").unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    let outcomes: Vec<_> = (0..64).map(|seed| read(&fs.crash_image(seed), "/d/f")).collect();
    assert!(outcomes.contains(&None), "/d itself was never synced into /");
    assert!(outcomes.iter().all(|o| o.is_none() || o.as_deref() == Some(&b"x"[..])));
}

#[test]
fn a_planned_crash_stops_everything() {
    let fs = SimFs::new();
    fs.crash_at(1);
    fs.create_dir(Path::new("/d")).unwrap();
    assert!(fs.create_dir(Path::new("/e")).is_err(), "the crash step fails");
    assert!(fs.has_crashed());
    assert!(fs.read_dir(Path::new("/")).is_err(), "reads fail after the crash");
    assert_eq!(fs.steps(), 1);
    assert!(fs.log().last().unwrap().contains("CRASH"));
    for seed in 0..16 {
        let entries = fs.crash_image(seed).read_dir(Path::new("/")).unwrap();
        assert!(entries.iter().all(|(name, _)| name == "d"), "only the step before the crash");
    }
}
