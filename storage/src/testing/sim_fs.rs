//! [`SimFs`]: a simulated POSIX file system with a live and a durable image.
//!
//! Every mutating operation (create, write, fsync, rename, link, remove, mkdir, directory fsync)
//! is a numbered step. [`SimFs::crash_at`] makes one step fail and every operation after it fail
//! too, as if the machine lost power there. [`SimFs::crash_image`] then builds what a reboot would
//! find, following the rules applications may rely on and no more:
//!
//! - File data is durable only once the file was fsynced. Unsynced appends are lost, kept, or
//!   torn: a random prefix survives, possibly with a zeroed stretch (blocks allocated but not
//!   written), chosen by a seed.
//! - A directory entry (create, rename, link, remove) is durable only once its directory was
//!   fsynced. Until then the crash may or may not have persisted it: the image applies, per
//!   directory, a prefix (chosen by the seed: none, all, or some) of the entry operations since
//!   the directory's last fsync, in order, as a journaling file system may commit them early. A
//!   protocol that renames a file into place before fsyncing its data is therefore caught: the
//!   rename can survive while the data does not. A file whose directory entry never reached the
//!   image is gone, whatever was fsynced into it.
//!
//! Real file systems often keep more than this (ext4 orders many writes), which is why a
//! protocol can look correct on a laptop and still be wrong: this model keeps only what POSIX
//! promises.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Fs, FsFile, ObjectBytes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir,
}

/// A change to one directory's entries, kept until the directory is fsynced.
#[derive(Debug, Clone)]
enum DirOp {
    Set(PathBuf, Node),
    Remove(PathBuf),
    /// Within one directory: atomic, as rename(2) is.
    Rename(PathBuf, PathBuf),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// What reads see now.
    live: Vec<u8>,
    /// What survives a crash for certain (as of the last fsync).
    durable: Vec<u8>,
}

#[derive(Debug)]
struct SimState {
    inodes: Vec<Inode>,
    /// The namespace reads see.
    live: BTreeMap<PathBuf, Node>,
    /// Each directory's entries as of its last fsync.
    durable: BTreeMap<PathBuf, Node>,
    /// Per directory, the entry operations since its last fsync, in order.
    pending: BTreeMap<PathBuf, Vec<DirOp>>,
    /// Mutating steps taken so far.
    steps: u64,
    crash_at: Option<u64>,
    /// A step that fails with an I/O error but crashes nothing.
    fail_at: Option<u64>,
    crashed: bool,
    /// One line per step, for diagnosing a failed crash test.
    log: Vec<String>,
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl SimState {
    /// Takes one mutating step, or crashes at it.
    fn step(&mut self, what: impl FnOnce() -> String) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        if self.crash_at == Some(self.steps) {
            self.crashed = true;
            self.log.push(format!("#{} CRASH before: {}", self.steps, what()));
            return Err(crashed_error());
        }
        if self.fail_at == Some(self.steps) {
            self.log.push(format!("#{} I/O ERROR instead of: {}", self.steps, what()));
            self.steps += 1;
            return Err(io::Error::other("simulated I/O error"));
        }
        self.log.push(format!("#{} {}", self.steps, what()));
        self.steps += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed { Err(crashed_error()) } else { Ok(()) }
    }

    fn file(&self, path: &Path) -> io::Result<usize> {
        match self.live.get(path) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn require_parent_dir(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent)
                if parent.as_os_str().is_empty() || self.live.get(parent) == Some(&Node::Dir) =>
            {
                Ok(())
            }
            Some(parent) if parent == Path::new("/") => Ok(()),
            _ => Err(not_found(path.parent().unwrap_or(path))),
        }
    }

    fn record(&mut self, dir_of: &Path, op: DirOp) {
        let dir = dir_of.parent().unwrap_or(Path::new("/")).to_owned();
        self.pending.entry(dir).or_default().push(op);
    }

    fn require_absent(&self, path: &Path) -> io::Result<()> {
        if self.live.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
        }
        Ok(())
    }
}

/// A simulated file system; clones share it. See the module docs.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    /// An empty file system holding only the directory `/`.
    pub fn new() -> Self {
        Self::from_namespace(Vec::new(), BTreeMap::new())
    }

    fn from_namespace(inodes: Vec<Inode>, namespace: BTreeMap<PathBuf, Node>) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(SimState {
                inodes,
                live: namespace.clone(),
                durable: namespace,
                pending: BTreeMap::new(),
                steps: 0,
                crash_at: None,
                fail_at: None,
                crashed: false,
                log: Vec::new(),
            })),
        }
    }

    /// Crashes at mutating step number `step` (counted from 0 since this file system was made):
    /// that step does not happen, and it and every later operation fail.
    pub fn crash_at(&self, step: u64) {
        self.state.lock().crash_at = Some(step);
    }

    /// Makes mutating step number `step` fail with an I/O error without taking effect; the file
    /// system carries on (a transient error, not a crash).
    pub fn fail_at(&self, step: u64) {
        self.state.lock().fail_at = Some(step);
    }

    /// Mutating steps taken so far.
    pub fn steps(&self) -> u64 {
        self.state.lock().steps
    }

    /// True once the planned crash happened.
    pub fn has_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// The steps taken, one line each, ending with the crash if there was one.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().log.clone()
    }

    /// What a reboot finds if power is lost now (whether or not a planned crash happened): a new
    /// file system holding only the durable image, with unsynced data torn as `seed` chooses.
    pub fn crash_image(&self, seed: u64) -> SimFs {
        let state = self.state.lock();
        let mut rng = SplitMix64(seed ^ 0xD1B5_4A32_D192_ED03);
        let mut persisted = state.durable.clone();
        for ops in state.pending.values() {
            // None, all, or a random prefix, each about a third of the time.
            let keep = match rng.below(3) {
                0 => 0,
                1 => ops.len(),
                _ => rng.below(ops.len() as u64 + 1) as usize,
            };
            for op in &ops[..keep] {
                match op {
                    DirOp::Set(path, node) => {
                        persisted.insert(path.clone(), *node);
                    }
                    DirOp::Remove(path) => {
                        persisted.remove(path);
                    }
                    DirOp::Rename(from, to) => {
                        if let Some(node) = persisted.remove(from) {
                            persisted.insert(to.clone(), node);
                        }
                    }
                }
            }
        }
        let mut namespace = BTreeMap::new();
        let mut inodes = Vec::new();
        let mut new_ino: HashMap<usize, usize> = HashMap::new();
        // Sorted paths list every parent before its children, so reachability is one pass.
        for (path, node) in &persisted {
            let parent_survives = match path.parent() {
                None => true,
                Some(parent) => {
                    parent == Path::new("/") || namespace.get(parent) == Some(&Node::Dir)
                }
            };
            if !parent_survives {
                continue;
            }
            let node = match *node {
                Node::Dir => Node::Dir,
                Node::File(ino) => Node::File(*new_ino.entry(ino).or_insert_with(|| {
                    let data = torn(
                        &state.inodes[ino],
                        seed ^ (ino as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    inodes.push(Inode { live: data.clone(), durable: data });
                    inodes.len() - 1
                })),
            };
            namespace.insert(path.clone(), node);
        }
        SimFs::from_namespace(inodes, namespace)
    }

    /// Every file path in the live namespace with its contents (for assertions in tests).
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let state = self.state.lock();
        state
            .live
            .iter()
            .filter_map(|(path, node)| match node {
                Node::File(ino) => Some((path.clone(), state.inodes[*ino].live.clone())),
                Node::Dir => None,
            })
            .collect()
    }
}

/// The bytes a crash leaves of an inode. Files are only ever appended to, so the durable bytes
/// are a prefix of the live ones.
fn torn(inode: &Inode, seed: u64) -> Vec<u8> {
    let (durable, live) = (&inode.durable, &inode.live);
    if durable == live {
        return durable.clone();
    }
    debug_assert!(live.starts_with(durable), "append-only files");
    let mut rng = SplitMix64(seed);
    match rng.below(4) {
        0 => durable.clone(),
        1 => live.clone(),
        choice => {
            let cut = durable.len() + rng.below((live.len() - durable.len()) as u64 + 1) as usize;
            let mut data = live[..cut].to_vec();
            if choice == 3 && cut > durable.len() {
                let start = durable.len() + rng.below((cut - durable.len()) as u64) as usize;
                let end = start + rng.below((cut - start) as u64 + 1) as usize;
                data[start..end].fill(0);
            }
            data
        }
    }
}

/// A tiny deterministic generator, so the storage crate needs no `rand`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A file of [`SimFs`] open for writing.
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<SimState>>,
    ino: usize,
    path: PathBuf,
}

impl FsFile for SimFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        state.step(|| format!("write {} bytes to {}", data.len(), self.path.display()))?;
        state.inodes[self.ino].live.extend_from_slice(data);
        Ok(())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        let mut state = self.state.lock();
        state.step(|| format!("fsync {}", self.path.display()))?;
        let inode = &mut state.inodes[self.ino];
        inode.durable = inode.live.clone();
        Ok(())
    }
}

impl Fs for SimFs {
    type File = SimFile;

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.state.lock();
        state.alive()?;
        state.require_parent_dir(path)?;
        state.require_absent(path)?;
        state.step(|| format!("create {}", path.display()))?;
        state.inodes.push(Inode::default());
        let ino = state.inodes.len() - 1;
        state.live.insert(path.to_owned(), Node::File(ino));
        state.record(path, DirOp::Set(path.to_owned(), Node::File(ino)));
        Ok(SimFile { state: Arc::clone(&self.state), ino, path: path.to_owned() })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.alive()?;
        let ino = state.file(from)?;
        state.require_parent_dir(to)?;
        if state.live.get(to) == Some(&Node::Dir) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, to.display().to_string()));
        }
        if from.parent() != to.parent() {
            // Never needed by LocalDir; modelling it would need cross-directory atomicity.
            return Err(io::Error::new(io::ErrorKind::Unsupported, "rename across directories"));
        }
        state.step(|| format!("rename {} -> {}", from.display(), to.display()))?;
        state.live.remove(from);
        state.live.insert(to.to_owned(), Node::File(ino));
        state.record(to, DirOp::Rename(from.to_owned(), to.to_owned()));
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.alive()?;
        let ino = state.file(from)?;
        state.require_parent_dir(to)?;
        state.require_absent(to)?;
        state.step(|| format!("link {} -> {}", from.display(), to.display()))?;
        state.live.insert(to.to_owned(), Node::File(ino));
        state.record(to, DirOp::Set(to.to_owned(), Node::File(ino)));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.alive()?;
        state.file(path)?;
        state.step(|| format!("remove {}", path.display()))?;
        state.live.remove(path);
        state.record(path, DirOp::Remove(path.to_owned()));
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.alive()?;
        if path == Path::new("/") {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "/"));
        }
        state.require_parent_dir(path)?;
        state.require_absent(path)?;
        state.step(|| format!("mkdir {}", path.display()))?;
        state.live.insert(path.to_owned(), Node::Dir);
        state.record(path, DirOp::Set(path.to_owned(), Node::Dir));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.alive()?;
        if path != Path::new("/") && state.live.get(path) != Some(&Node::Dir) {
            return Err(not_found(path));
        }
        state.step(|| format!("fsync dir {}", path.display()))?;
        let is_child = |p: &Path| p.parent() == Some(path);
        state.durable.retain(|p, _| !is_child(p));
        let children: Vec<_> =
            state.live.iter().filter(|(p, _)| is_child(p)).map(|(p, n)| (p.clone(), *n)).collect();
        state.durable.extend(children);
        state.pending.remove(path);
        Ok(())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let state = self.state.lock();
        state.alive()?;
        let ino = state.file(path)?;
        Ok(state.inodes[ino].live.len() as u64)
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        let state = self.state.lock();
        state.alive()?;
        Ok(path == Path::new("/") || state.live.get(path) == Some(&Node::Dir))
    }

    fn read(&self, path: &Path, range: Option<Range<u64>>) -> io::Result<ObjectBytes> {
        let state = self.state.lock();
        state.alive()?;
        let data = &state.inodes[state.file(path)?].live;
        let range = range.unwrap_or(0..data.len() as u64);
        let bytes = data.get(range.start as usize..range.end as usize).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "range past end of file")
        })?;
        Ok(ObjectBytes::copy_from_slice(bytes))
    }

    fn map(&self, path: &Path) -> io::Result<ObjectBytes> {
        self.read(path, None)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>> {
        let state = self.state.lock();
        state.alive()?;
        if path != Path::new("/") && state.live.get(path) != Some(&Node::Dir) {
            return Err(not_found(path));
        }
        Ok(state
            .live
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .filter_map(|(p, node)| {
                let name = p.file_name()?.to_str()?.to_owned();
                Some((name, *node == Node::Dir))
            })
            .collect())
    }
}

/// Drives crash tests: runs `scenario` once to count its steps, then once for every step with a
/// crash planned there, and hands each crash image (one per seed in `seeds`) to `check` together
/// with the step number and what the scenario returned.
///
/// `scenario` gets a fresh [`SimFs`] and must return normally even when its operations fail
/// (collect what was acknowledged, stop at the first error); `check` asserts what must hold after
/// reboot. A `check` that panics names the step; [`SimFs::log`] of the crashed run says what
/// happened before it.
pub fn for_each_crash_point<R>(
    seeds: Range<u64>,
    mut scenario: impl FnMut(&SimFs) -> R,
    mut check: impl FnMut(SimFs, u64, &R),
) {
    let dry_run = SimFs::new();
    scenario(&dry_run);
    let steps = dry_run.steps();
    // One extra run with no crash at all: the scenario's end state must hold too.
    for crash_step in 0..=steps {
        for seed in seeds.clone() {
            let fs = SimFs::new();
            if crash_step < steps {
                fs.crash_at(crash_step);
            }
            let outcome = scenario(&fs);
            check(fs.crash_image(seed), crash_step, &outcome);
        }
    }
}
