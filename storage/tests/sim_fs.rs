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
fn directory_entries_need_a_directory_sync() {
    let fs = SimFs::new();
    let mut file = fs.create_new(Path::new("/a")).unwrap();
    file.write_all(b"x").unwrap();
    file.sync_all().unwrap();
    assert_eq!(read(&fs.crash_image(0), "/a"), None, "created but directory not synced");
    fs.sync_dir(Path::new("/")).unwrap();
    fs.rename(Path::new("/a"), Path::new("/b")).unwrap();
    let image = fs.crash_image(0);
    assert_eq!(
        (read(&image, "/a"), read(&image, "/b")),
        (Some(b"x".to_vec()), None),
        "rename undone"
    );
    fs.sync_dir(Path::new("/")).unwrap();
    let image = fs.crash_image(0);
    assert_eq!(
        (read(&image, "/a"), read(&image, "/b")),
        (None, Some(b"x".to_vec())),
        "rename kept"
    );
}

#[test]
fn files_in_an_unsynced_directory_are_lost() {
    let fs = SimFs::new();
    fs.create_dir(Path::new("/d")).unwrap();
    let mut file = fs.create_new(Path::new("/d/f")).unwrap();
    file.write_all(b"x").unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(Path::new("/d")).unwrap();
    assert_eq!(read(&fs.crash_image(0), "/d/f"), None, "/d itself was never synced into /");
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
    let image = fs.crash_image(0);
    assert!(image.read_dir(Path::new("/")).unwrap().is_empty(), "nothing was synced");
}
