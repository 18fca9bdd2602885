//! Crash consistency of the local-directory protocol, on the simulated file system.
//!
//! A scenario of puts, creates, streamed writes and deletes runs with a crash planned at every
//! file-system step in turn; each crash image is reopened and every object must hold a value the
//! contract allows: what the last acknowledged write put there, or for the write in flight, the
//! old value or the new one, never a torn one. Naive protocols that skip a step must be caught by
//! the same checker, which shows the checker can fail.

use std::collections::BTreeMap;
use std::path::Path;

use strata_storage::testing::{SimFs, for_each_crash_point};
use strata_storage::{Fs, FsFile, LocalDir, Storage};

/// The values each key may hold after a crash; `None` means absent.
#[derive(Debug, Default, Clone)]
struct Allowed(BTreeMap<String, Vec<Option<Vec<u8>>>>);

impl Allowed {
    fn current(&self, key: &str) -> Vec<Option<Vec<u8>>> {
        self.0.get(key).cloned().unwrap_or_else(|| vec![None])
    }

    /// A write to `key` is starting: until acknowledged, old and new values are both allowed.
    fn begin(&mut self, key: &str, new: Option<Vec<u8>>) {
        let mut values = self.current(key);
        values.push(new);
        self.0.insert(key.to_owned(), values);
    }

    fn acknowledge(&mut self, key: &str, new: Option<Vec<u8>>) {
        self.0.insert(key.to_owned(), vec![new]);
    }
}

enum Step {
    Put(&'static str, Vec<u8>),
    Create(&'static str, Vec<u8>),
    /// `put_if_absent` on an existing key: must fail and change nothing.
    CreateExisting(&'static str, Vec<u8>),
    Stream(&'static str, Vec<Vec<u8>>),
    Delete(&'static str),
}

fn bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(13) ^ salt).collect()
}

fn steps() -> Vec<Step> {
    vec![
        Step::Put("seg/000001.flat", bytes(3000, 1)),
        Step::Create("manifest/00000001", bytes(100, 2)),
        Step::Stream("seg/000002.flat", (0..4).map(|i| bytes(700, 10 + i)).collect()),
        Step::Create("manifest/00000002", bytes(120, 3)),
        Step::CreateExisting("manifest/00000002", bytes(90, 4)),
        Step::Put("seg/000001.flat", bytes(2000, 5)),
        Step::Delete("seg/000002.flat"),
        Step::Put("deep/a/b/c", bytes(10, 6)),
    ]
}

/// Runs the steps until one fails; returns what may be on disk afterwards.
fn scenario(fs: &SimFs) -> Allowed {
    let mut allowed = Allowed::default();
    let Ok(store) = LocalDir::with_fs(fs.clone(), "/db") else { return allowed };
    for step in steps() {
        let (key, new, result) = match step {
            Step::Put(key, data) => {
                allowed.begin(key, Some(data.clone()));
                (key, Some(data.clone()), store.put(key, &data))
            }
            Step::Create(key, data) => {
                allowed.begin(key, Some(data.clone()));
                (key, Some(data.clone()), store.put_if_absent(key, &data))
            }
            Step::CreateExisting(key, data) => {
                let result = store.put_if_absent(key, &data);
                match result {
                    Err(e) if e.is_already_exists() => continue,
                    Err(_) => return allowed,
                    Ok(()) => panic!("put_if_absent on an existing key succeeded"),
                }
            }
            Step::Stream(key, chunks) => {
                let whole: Vec<u8> = chunks.concat();
                allowed.begin(key, Some(whole.clone()));
                let result = (|| {
                    let mut writer = store.writer(key)?;
                    for chunk in &chunks {
                        writer.write_all(chunk)?;
                    }
                    writer.finish().map(drop)
                })();
                (key, Some(whole), result)
            }
            Step::Delete(key) => {
                // Deletes need not be durable: the old value stays allowed.
                allowed.begin(key, None);
                match store.delete(key) {
                    Ok(()) => continue,
                    Err(_) => return allowed,
                }
            }
        };
        match result {
            Ok(()) => allowed.acknowledge(key, new),
            Err(_) => return allowed,
        }
    }
    allowed
}

/// Reopens the image and returns the first broken rule, if any.
fn violation(image: SimFs, allowed: &Allowed) -> Option<String> {
    let store = match LocalDir::with_fs(image, "/db") {
        Ok(store) => store,
        Err(e) => return Some(format!("reopen failed: {e}")),
    };
    for (key, values) in &allowed.0 {
        let found = match store.get(key) {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Some(format!("{key}: read failed: {e}")),
        };
        if !values.contains(&found) {
            return Some(format!(
                "{key}: found {:?} bytes, allowed {:?}",
                found.as_ref().map(Vec::len),
                values.iter().map(|v| v.as_ref().map(Vec::len)).collect::<Vec<_>>()
            ));
        }
    }
    for meta in store.list("").expect("list") {
        if !allowed.0.contains_key(&meta.key) {
            return Some(format!("unexpected object {}", meta.key));
        }
    }
    None
}

#[test]
fn local_dir_survives_a_crash_at_every_step() {
    let mut points = 0;
    for_each_crash_point(0..6, scenario, |image, step, allowed| {
        points += 1;
        if let Some(problem) = violation(image, allowed) {
            panic!("crash at step {step}: {problem}");
        }
    });
    assert!(points > 6 * 40, "the scenario has many steps ({points} crash images)");
}

#[test]
fn acknowledged_writes_survive_power_loss() {
    let fs = SimFs::new();
    let allowed = scenario(&fs);
    assert!(!fs.has_crashed());
    for seed in 0..32 {
        assert_eq!(violation(fs.crash_image(seed), &allowed), None, "seed {seed}");
    }
}

/// The ways a put can be written wrongly, each missing or misordering one step of the protocol.
#[derive(Debug, Clone, Copy)]
enum Naive {
    /// Temporary file renamed into place without fsyncing its data.
    NoFileSync,
    /// Synced and renamed, but the directory entry never fsynced.
    NoDirSync,
    /// Written in place at the final name, synced, directory never synced.
    InPlace,
    /// Renamed into place first, data fsynced after: the rename can persist before the data.
    RenameBeforeFsync,
    /// Create-if-absent that links before fsyncing the data.
    LinkBeforeFsync,
}

fn naive_put(fs: &SimFs, how: Naive, path: &str, data: &[u8]) -> std::io::Result<()> {
    let path = Path::new(path);
    let temp = path.with_extension("tmp");
    let dir = path.parent().unwrap();
    match how {
        Naive::NoFileSync => {
            fs.create_new(&temp)?.write_all(data)?;
            fs.rename(&temp, path)?;
            fs.sync_dir(dir)
        }
        Naive::NoDirSync => {
            let mut file = fs.create_new(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            fs.rename(&temp, path)
        }
        Naive::InPlace => {
            let mut file = fs.create_new(path)?;
            file.write_all(data)?;
            file.sync_all()
        }
        Naive::RenameBeforeFsync => {
            let mut file = fs.create_new(&temp)?;
            file.write_all(data)?;
            fs.rename(&temp, path)?;
            file.sync_all()?;
            fs.sync_dir(dir)
        }
        Naive::LinkBeforeFsync => {
            let mut file = fs.create_new(&temp)?;
            file.write_all(data)?;
            fs.hard_link(&temp, path)?;
            file.sync_all()?;
            fs.sync_dir(dir)
        }
    }
}

#[test]
fn the_checker_catches_protocols_that_skip_or_misorder_a_step() {
    let data = bytes(5000, 9);
    for how in [
        Naive::NoFileSync,
        Naive::NoDirSync,
        Naive::InPlace,
        Naive::RenameBeforeFsync,
        Naive::LinkBeforeFsync,
    ] {
        let mut caught = 0;
        let scenario = |fs: &SimFs| {
            let mut allowed = Allowed::default();
            // The root is created and synced first, as LocalDir::with_fs does.
            if fs.create_dir(Path::new("/db")).is_err() || fs.sync_dir(Path::new("/")).is_err() {
                return allowed;
            }
            allowed.begin("object", Some(data.clone()));
            if naive_put(fs, how, "/db/object", &data).is_ok() {
                allowed.acknowledge("object", Some(data.clone()));
            }
            allowed
        };
        for_each_crash_point(0..8, scenario, |image, _, allowed| {
            // The naive protocols leave their temporary file behind: only the object counts.
            let store = LocalDir::with_fs(image, "/db").expect("reopen");
            let found = store.get("object").ok().map(|b| b.to_vec());
            if !allowed.current("object").contains(&found) {
                caught += 1;
            }
        });
        assert!(caught > 0, "{how:?}: a torn or lost object after a crash must be caught");
    }
}
