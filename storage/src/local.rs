//! [`LocalDir`]: objects as files under a directory, read through memory maps.
//!
//! The durability protocol lives here, written against the small [`Fs`] trait so that the same
//! code runs on the real file system ([`StdFs`]) and on the crash simulator
//! (`testing::SimFs`), which checks it at every step:
//!
//! - `put` / `writer`: write a temporary file `.tmp-*` beside the target, fsync it, rename it over
//!   the target, fsync the directory. A crash leaves the old object or the new one, plus at worst
//!   an invisible temporary file.
//! - `put_if_absent`: the same, but the last step is a hard link from the temporary file to the
//!   target, which the kernel refuses atomically if the target exists: exactly one of any number
//!   of racing creators wins, across processes.
//! - New directories are fsynced into their parent before anything is published inside them.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::key::validate_prefix;
use crate::{
    Error, ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage, check_range, validate_key,
};

/// The file-system operations [`LocalDir`] is built on.
///
/// Paths are absolute or relative to the process; [`LocalDir`] passes only paths under its root.
/// The contract is POSIX's: data written to a file is durable only after [`FsFile::sync_all`];
/// a created, renamed, linked or removed directory entry is durable only after
/// [`Fs::sync_dir`] on its parent directory.
pub trait Fs: Send + Sync + fmt::Debug {
    /// An open file being written.
    type File: FsFile;

    /// Creates a new file for writing; fails with `AlreadyExists` if the path exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Renames a file, atomically replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Adds the name `to` for the file `from`; fails with `AlreadyExists` if `to` exists.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file name.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates one directory; fails with `AlreadyExists` if it exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a directory durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The length of a file; `NotFound` for a directory (never an object).
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// True if `path` is a directory; false if it is a file or absent.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Reads `range` of a file (the whole file when `None`) into an aligned buffer, from one
    /// open of the file. `NotFound` for a directory; `UnexpectedEof` if the range passes the end.
    fn read(&self, path: &Path, range: Option<Range<u64>>) -> io::Result<ObjectBytes>;
    /// Maps a whole file read-only, or reads it where mapping is not possible. `NotFound` for a
    /// directory.
    fn map(&self, path: &Path) -> io::Result<ObjectBytes>;
    /// The entries of a directory: names, and whether each is a directory. `NotFound` if absent.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>>;
}

/// A file being written through an [`Fs`].
pub trait FsFile: Send {
    /// Appends `data`.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fsync).
    fn sync_all(&mut self) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

/// A file of [`StdFs`], buffered so small writes do not each become a system call.
#[derive(Debug)]
pub struct StdFile(BufWriter<File>);

const WRITE_BUFFER: usize = 1 << 20;

impl FsFile for StdFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().sync_all()
    }
}

impl Fs for StdFs {
    type File = StdFile;

    fn create_new(&self, path: &Path) -> io::Result<StdFile> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(StdFile(BufWriter::with_capacity(WRITE_BUFFER, file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // Opening a directory read-only and fsyncing it is how POSIX makes its entries durable.
        File::open(path)?.sync_all()
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let metadata = fs::metadata(path)?;
        if metadata.is_dir() {
            return Err(directory_is_not_an_object(path));
        }
        Ok(metadata.len())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match fs::metadata(path) {
            Ok(metadata) => Ok(metadata.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &Path, range: Option<Range<u64>>) -> io::Result<ObjectBytes> {
        let (mut file, len) = open_file(path)?;
        let range = match range {
            Some(range) if range.end > len => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "range past the end"));
            }
            Some(range) => range,
            None => 0..len,
        };
        file.seek(SeekFrom::Start(range.start))?;
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "range exceeds usize"))?;
        ObjectBytes::fill_with(len, |buf| file.read_exact(buf))
    }

    fn map(&self, path: &Path) -> io::Result<ObjectBytes> {
        let (file, len) = open_file(path)?;
        if len == 0 {
            // mmap(2) rejects empty mappings.
            return Ok(ObjectBytes::copy_from_slice(&[]));
        }
        // SAFETY: a mapped file must not change while mapped. Objects are immutable: this crate
        // never writes to a published file, and replacing an object renames a new file over it,
        // which leaves this mapping on the old inode. What remains is a process outside Strata
        // truncating or editing files under the root, which the `LocalDir` docs forbid.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(ObjectBytes::from_mmap(map))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(String, bool)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // Names that are not UTF-8 are not keys this crate wrote; skip them.
            if let Ok(name) = entry.file_name().into_string() {
                entries.push((name, entry.file_type()?.is_dir()));
            }
        }
        Ok(entries)
    }
}

/// A directory where an object was asked for: reads see no object there.
fn directory_is_not_an_object(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} is a directory", path.display()))
}

/// Opens a regular file for reading, with its length.
fn open_file(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(directory_is_not_an_object(path));
    }
    Ok((file, metadata.len()))
}

/// Prefix of temporary files; keys cannot start a component with '.', so these never collide
/// with objects and `list` skips them.
const TEMP_PREFIX: &str = ".tmp-";

/// Objects stored as files under a root directory.
///
/// The key `a/b/c` is the file `ROOT/a/b/c`. Reads of whole objects go through `map` (an mmap)
/// or `get` (a read into an aligned buffer). Files under the root must not be modified by other
/// programs while a database is open: a mapped file truncated underneath a reader is undefined
/// behaviour for any mmap-based store.
///
/// See the module docs for the durability protocol. Crash leftovers are temporary files named
/// `.tmp-*`, which [`Storage::list`] never shows.
pub struct LocalDir<F: Fs = StdFs> {
    fs: F,
    root: PathBuf,
    /// Directories known to exist durably (created and fsynced into their parents).
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

/// Process-wide, so two stores on one root in one process never pick the same temporary name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl<F: Fs> fmt::Debug for LocalDir<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDir").field("root", &self.root).field("fs", &self.fs).finish()
    }
}

impl LocalDir<StdFs> {
    /// Opens the directory `root` on the real file system, creating it (and its missing parents,
    /// durably) if needed.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = std::path::absolute(root.as_ref())
            .map_err(|e| Error::io("open", &root.as_ref().display().to_string(), e))?;
        Self::with_fs(StdFs, root)
    }
}

impl LocalDir<StdFs> {
    /// Opens the directory `root`, which must exist ([`Error::NotFound`] otherwise): for
    /// opening a database, where a mistyped path should not create an empty directory.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(Error::NotFound { key: root.display().to_string() });
        }
        Self::open(root)
    }

    /// Takes an exclusive advisory lock on the file `name` in the root (created if missing),
    /// held until the returned guard drops; [`Error::Locked`] if another handle (in this or
    /// another process) holds it. Writers use it to stay alone on a directory.
    pub fn lock(&self, name: &str) -> Result<DirLock> {
        let path = self.path_of(name)?;
        let key = || path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("lock", &key(), e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: key() }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &key(), e)),
        }
    }
}

/// An exclusive lock on a file, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<F: Fs> LocalDir<F> {
    /// Opens the directory `root` through `fs`, creating it durably if needed. `root` should be
    /// absolute.
    pub fn with_fs(fs: F, root: impl Into<PathBuf>) -> Result<Self> {
        let store = LocalDir { fs, root: root.into(), durable_dirs: Mutex::new(HashSet::new()) };
        let root = store.root.clone();
        store.ensure_dir(&root).map_err(|e| Error::io("open", &root.display().to_string(), e))?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file system this store runs on.
    pub fn fs(&self) -> &F {
        &self.fs
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Makes `dir` and its missing ancestors exist durably: each directory this call creates is
    /// fsynced into its parent before the call returns.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        // Held across create and sync: a second writer must not publish into a directory whose
        // own entry is not yet durable.
        let mut durable = self.durable_dirs.lock();
        if durable.contains(dir) {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut cursor = Some(dir);
        while let Some(path) = cursor {
            if durable.contains(path) {
                break;
            }
            missing.push(path);
            cursor = path.parent().filter(|parent| !parent.as_os_str().is_empty());
        }
        // Create from the outermost down; an existing directory may still have an entry that is
        // not durable (a crash in an earlier process), so its parent is synced all the same.
        for path in missing.into_iter().rev() {
            match self.fs.create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !self.fs.is_dir(path)? {
                        return Err(io::Error::new(
                            io::ErrorKind::NotADirectory,
                            format!("{} is a file, not a directory", path.display()),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.fs.sync_dir(parent)?;
            }
            durable.insert(path.to_owned());
        }
        Ok(())
    }

    /// Creates a new temporary file beside `target`. The name holds the process id and a
    /// counter; a leftover from a crashed process with a recycled id only means another try.
    fn create_temp(&self, target: &Path) -> io::Result<(PathBuf, F::File)> {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("object");
        let mut attempts = 0;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp =
                target.with_file_name(format!("{TEMP_PREFIX}{name}-{}-{n}", std::process::id()));
            match self.fs.create_new(&temp) {
                Ok(file) => return Ok((temp, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(io::Error::other("no free temporary file name"));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn parent_of(target: &Path) -> &Path {
        target.parent().expect("object paths are under the root")
    }

    /// Deletes the temporary files that writers killed mid-write left under the root (a
    /// crash between creating a `.tmp-*` file and renaming it over its target); returns their
    /// count and bytes. Only for the holder of the directory's writer lock: another live
    /// writer's temporary files would go too.
    pub fn remove_temporaries(&self) -> Result<(u64, u64)> {
        let mut removed = (0, 0);
        self.remove_temporaries_in(&self.root, &mut removed)?;
        Ok(removed)
    }

    fn remove_temporaries_in(&self, dir: &Path, removed: &mut (u64, u64)) -> Result<()> {
        let key = || dir.display().to_string();
        let entries = match self.fs.read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", &key(), e)),
        };
        for (name, is_dir) in entries {
            let path = dir.join(&name);
            if is_dir {
                self.remove_temporaries_in(&path, removed)?;
            } else if name.starts_with(TEMP_PREFIX) {
                let size = self.fs.file_len(&path).unwrap_or(0);
                match self.fs.remove_file(&path) {
                    Ok(()) => *removed = (removed.0 + 1, removed.1 + size),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &path.display().to_string(), e)),
                }
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path, key_prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<()> {
        let entries = match self.fs.read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", key_prefix, e)),
        };
        for (name, is_dir) in entries {
            if name.starts_with('.') {
                continue;
            }
            let key = format!("{key_prefix}{name}");
            if is_dir {
                self.list_dir(&dir.join(&name), &format!("{key}/"), out)?;
            } else if validate_key(&key).is_ok() {
                let size =
                    self.fs.file_len(&dir.join(&name)).map_err(|e| Error::io("list", &key, e))?;
                out.push(ObjectMeta { key, size });
            }
        }
        Ok(())
    }
}

impl<F: Fs> Storage for LocalDir<F> {
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        let target = self.path_of(key)?;
        // Cheap early answer for the common losing case; the hard link below is what decides.
        if self.fs.file_len(&target).is_ok() {
            return Err(Error::AlreadyExists { key: key.to_owned() });
        }
        let mut writer = LocalWriter::create(self, key, target)?;
        writer.write_all(data)?;
        writer.publish(Publish::CreateNew).map(drop)
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        let target = self.path_of(key)?;
        Ok(Box::new(LocalWriter::create(self, key, target)?))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        let path = self.path_of(key)?;
        self.fs.read(&path, None).map_err(|e| Error::io("get", key, e))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        let path = self.path_of(key)?;
        if range.start > range.end {
            check_range(key, &range, self.size(key)?)?;
        }
        // One open serves the bounds check and the read, so a concurrent replacement cannot
        // mix two versions.
        match self.fs.read(&path, Some(range.clone())) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                check_range(key, &range, self.size(key)?)?;
                Err(Error::io("get_range", key, e))
            }
            result => result.map_err(|e| Error::io("get_range", key, e)),
        }
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        let path = self.path_of(key)?;
        self.fs.map(&path).map_err(|e| Error::io("map", key, e))
    }

    fn size(&self, key: &str) -> Result<u64> {
        let path = self.path_of(key)?;
        self.fs.file_len(&path).map_err(|e| Error::io("size", key, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        // Walk only the deepest directory the prefix names in full.
        let (dir_part, start) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], self.root.join(&prefix[..i])),
            None => ("", self.root.clone()),
        };
        let mut out = Vec::new();
        self.list_dir(&start, dir_part, &mut out)?;
        out.retain(|meta| meta.key.starts_with(prefix));
        out.sort_unstable();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match self.fs.remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", key, e)),
        }
    }
}

/// Streams to a temporary file; `finish` syncs it and renames it into place.
struct LocalWriter<'a, F: Fs> {
    store: &'a LocalDir<F>,
    key: String,
    target: PathBuf,
    temp: PathBuf,
    /// `None` once the file is closed.
    file: Option<F::File>,
    written: u64,
    /// The temporary file has been handed on (renamed or returned); drop must not remove it.
    temp_kept: bool,
    /// A write failed: what the file holds is not the object, so it must not be published.
    failed: bool,
}

impl<'a, F: Fs> LocalWriter<'a, F> {
    fn create(store: &'a LocalDir<F>, key: &str, target: PathBuf) -> Result<Self> {
        store
            .ensure_dir(LocalDir::<F>::parent_of(&target))
            .map_err(|e| Error::io("create directory", key, e))?;
        let (temp, file) = store.create_temp(&target).map_err(|e| Error::io("create", key, e))?;
        Ok(LocalWriter {
            store,
            key: key.to_owned(),
            target,
            temp,
            file: Some(file),
            written: 0,
            temp_kept: false,
            failed: false,
        })
    }

    fn file(&mut self) -> &mut F::File {
        self.file.as_mut().expect("open until published")
    }

    /// Syncs the temporary file, moves it to the target name and syncs the directory.
    fn publish(mut self, how: Publish) -> Result<u64> {
        let key = self.key.clone();
        if self.failed {
            return Err(Error::Io {
                op: "finish",
                key,
                source: io::Error::other("an earlier write to this object failed"),
            });
        }
        self.file().sync_all().map_err(|e| Error::io("fsync", &key, e))?;
        self.file = None;
        let fs = &self.store.fs;
        match how {
            Publish::Replace => {
                fs.rename(&self.temp, &self.target).map_err(|e| Error::io("rename", &key, e))?;
                self.temp_kept = true;
            }
            Publish::CreateNew => {
                // Dropping `self` removes the temporary name whether or not the link won.
                if let Err(e) = fs.hard_link(&self.temp, &self.target) {
                    // A directory at the key is a clash, not another writer's object.
                    let is_dir = fs.is_dir(&self.target).unwrap_or(false);
                    if e.kind() == io::ErrorKind::AlreadyExists && is_dir {
                        return Err(Error::KeyConflict { key });
                    }
                    return Err(Error::io("link", &key, e));
                }
            }
        }
        fs.sync_dir(LocalDir::<F>::parent_of(&self.target))
            .map_err(|e| Error::io("fsync directory", &key, e))?;
        Ok(self.written)
    }
}

/// How a finished temporary file takes its key.
#[derive(Clone, Copy)]
enum Publish {
    /// Rename over any existing object.
    Replace,
    /// Hard-link, failing if an object exists.
    CreateNew,
}

impl<F: Fs> ObjectWriter for LocalWriter<'_, F> {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if let Err(e) = self.file().write_all(data) {
            self.failed = true;
            return Err(Error::io("write", &self.key, e));
        }
        self.written += data.len() as u64;
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        self.publish(Publish::Replace)
    }
}

impl<F: Fs> Drop for LocalWriter<'_, F> {
    fn drop(&mut self) {
        if !self.temp_kept {
            self.file = None;
            // Best effort: a leftover temporary file is invisible and harmless.
            let _ = self.store.fs.remove_file(&self.temp);
        }
    }
}
