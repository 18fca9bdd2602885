//! The local cache of mapped objects: a directory of downloaded (or just uploaded) objects that
//! `map` serves as memory maps, under a size budget.
//!
//! Layout: `<cache dir>/<namespace>/<key>~<size>-<crc32 hex><f|r>`, one file per object, where
//! the namespace names the store (bucket and prefix), `crc32` is that of the whole object and
//! `f` marks an object ending with a framing footer (`r`: raw). `~` never occurs in keys, so a
//! name cannot clash with a key's directory. Files arrive whole: written as `.tmp-*` beside the
//! root, synced, then renamed; a restart rebuilds the index from the names.
//!
//! Checks: a download is verified as it streams (its length, and the body checksum of a framed
//! object). A hit checks the file's length and, for framed objects, that the footer is intact;
//! with `verify`, the first hit in a process on a file an earlier process left also checks the
//! whole file's crc32. Damage found that way removes the entry and the object is downloaded again.
//!
//! Eviction is least recently used, over files that nothing maps: every mapping holds a pin
//! (an `Arc` inside its `ObjectBytes`), and an entry whose pin is alive is never evicted, so the
//! budget bounds the files not in use plus those in use. A download that cannot fit even after
//! evicting everything unpinned is not cached (the caller reads it into memory instead).
//!
//! Replacing or deleting an object through the backend removes its entry at once, even while it
//! is mapped: that relies on POSIX semantics (an unlinked file's pages stay valid for existing
//! maps). Strata never replaces an object it maps, so this only matters for other users.
//!
//! One `Cache` serves every backend of a process on the same directory and namespace (they share
//! the index, pins and budget). Processes sharing a directory each enforce the budget alone; an
//! entry another process evicted is simply downloaded again.
//!
//! Ephemeral caches (of in-memory stores, which die with their process) start empty: opening one
//! wipes whatever an earlier process with the same pid left, and the last handle removes the
//! directory, under the registry lock so a concurrent open of the same namespace keeps its own.
//!
//! A cache directory removed from under a running process (a temporary-file cleaner) is made
//! again on the next download; a cache that keeps failing serves objects from memory instead.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::bytes::Pin;
use crate::framing::{FOOTER_LEN, Footer};
use crate::{ObjectBytes, validate_key};

const TEMP_PREFIX: &str = ".tmp-";

/// Temporary files older than this are leftovers of a crashed process, not downloads in flight.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Caches alive in this process, by namespace directory.
static CACHES: LazyLock<Mutex<HashMap<PathBuf, Weak<Cache>>>> = LazyLock::new(Default::default);

/// Process-wide, so no two writers pick the same temporary name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The settings of one cache namespace.
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    /// The directory shared by every namespace.
    pub(crate) dir: PathBuf,
    /// This store's subdirectory name.
    pub(crate) namespace: String,
    /// Bytes of cached files at most.
    pub(crate) budget: u64,
    /// Check the whole crc32 of files found from an earlier process on first use.
    pub(crate) verify: bool,
    /// Remove the namespace directory when the cache drops (a store that dies with the process).
    pub(crate) ephemeral: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Cache {
    root: PathBuf,
    budget: u64,
    verify: bool,
    ephemeral: bool,
    state: Mutex<State>,
    /// Keys a thread is loading or invalidating: one download per key at a time.
    busy: Mutex<HashSet<String>>,
    busy_changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Bytes of the files in `entries`.
    used: u64,
    /// Bytes promised to downloads in flight.
    reserved: u64,
    /// Access clock for LRU order.
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    path: PathBuf,
    size: u64,
    crc32: u32,
    framed: bool,
    last_use: u64,
    /// The file's contents were checked in this process (downloaded, or verified on first use).
    verified: bool,
    /// Alive while a mapping of the file is.
    pin: Weak<PinToken>,
}

#[derive(Debug)]
struct PinToken;

/// What a finished download or upload hands the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Contents {
    pub(crate) size: u64,
    pub(crate) crc32: u32,
    pub(crate) framed: bool,
}

/// Space promised to one download; released on drop unless the file was published.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    cache: &'a Cache,
    size: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.cache.state.lock().reserved -= self.size;
    }
}

/// Holds a key busy (see [`Cache::lock_key`]).
#[derive(Debug)]
pub(crate) struct KeyGuard<'a> {
    cache: &'a Cache,
    key: String,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.cache.busy.lock().remove(&self.key);
        self.cache.busy_changed.notify_all();
    }
}

impl Cache {
    /// The cache of `config`'s namespace: the one already open in this process, or a new one
    /// indexed from the files on disk.
    pub(crate) fn open(config: &CacheConfig) -> io::Result<Arc<Cache>> {
        fs::create_dir_all(&config.dir)?;
        let root = fs::canonicalize(&config.dir)?.join(&config.namespace);
        let mut caches = CACHES.lock();
        caches.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = caches.get(&root).and_then(Weak::upgrade) {
            return Ok(cache);
        }
        if config.ephemeral {
            // The store died with an earlier process, and so did this namespace's contents:
            // files found here were left by a crashed process whose pid this one reuses (store
            // names carry the pid), and describe a different store.
            match fs::remove_dir_all(&root) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::create_dir_all(&root)?;
        let cache = Arc::new(Cache {
            root: root.clone(),
            budget: config.budget,
            verify: config.verify,
            ephemeral: config.ephemeral,
            state: Mutex::new(State::default()),
            busy: Mutex::new(HashSet::new()),
            busy_changed: Condvar::new(),
        });
        if let Err(e) = cache.scan() {
            // Dropping the cache takes the registry lock: release it first.
            drop(caches);
            drop(cache);
            return Err(e);
        }
        caches.insert(root, Arc::downgrade(&cache));
        Ok(cache)
    }

    /// The namespace directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes of cached files.
    pub(crate) fn used(&self) -> u64 {
        self.state.lock().used
    }

    /// Indexes the files an earlier process left, oldest use first, then trims to the budget.
    fn scan(&self) -> io::Result<()> {
        let mut found = Vec::new();
        self.scan_dir(&self.root, "", &mut found)?;
        found.sort_by_key(|(_, _, modified)| *modified);
        let mut state = self.state.lock();
        for (key, entry, _) in found {
            state.tick += 1;
            let entry = Entry { last_use: state.tick, ..entry };
            state.used += entry.size;
            // The same key twice (replaced by another process): keep the newer file.
            if let Some(old) = state.entries.insert(key, entry) {
                state.used -= old.size;
                remove_file(&old.path);
            }
        }
        self.make_room(&mut state, 0);
        Ok(())
    }

    fn scan_dir(
        &self,
        dir: &Path,
        prefix: &str,
        found: &mut Vec<(String, Entry, SystemTime)>,
    ) -> io::Result<()> {
        for dirent in fs::read_dir(dir)? {
            let dirent = dirent?;
            let Ok(name) = dirent.file_name().into_string() else { continue };
            let path = dirent.path();
            let metadata = dirent.metadata()?;
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if metadata.is_dir() {
                self.scan_dir(&path, &format!("{prefix}{name}/"), found)?;
            } else if name.starts_with(TEMP_PREFIX) {
                if modified.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                    remove_file(&path);
                }
            } else if let Some((base, contents)) = parse_name(&name) {
                let key = format!("{prefix}{base}");
                if validate_key(&key).is_err() {
                    continue;
                }
                if metadata.len() != contents.size {
                    remove_file(&path); // a torn copy: the name promises another length
                    continue;
                }
                let entry = Entry {
                    path,
                    size: contents.size,
                    crc32: contents.crc32,
                    framed: contents.framed,
                    last_use: 0,
                    verified: false,
                    pin: Weak::new(),
                };
                found.push((key, entry, modified));
            }
        }
        Ok(())
    }

    /// Waits until no other thread holds `key`, then holds it until the guard drops.
    pub(crate) fn lock_key(&self, key: &str) -> KeyGuard<'_> {
        let mut busy = self.busy.lock();
        while busy.contains(key) {
            self.busy_changed.wait(&mut busy);
        }
        busy.insert(key.to_owned());
        KeyGuard { cache: self, key: key.to_owned() }
    }

    /// The object's size if it is cached (no check beyond the index).
    pub(crate) fn size_of(&self, key: &str) -> Option<u64> {
        self.state.lock().entries.get(key).map(|entry| entry.size)
    }

    /// The cached object, mapped and pinned; `None` if it is not cached or its file failed a
    /// check (the entry is then dropped, so the caller downloads it again). Hold the key.
    pub(crate) fn lookup(&self, key: &str) -> Option<ObjectBytes> {
        let (bytes, check_crc) = {
            let mut state = self.state.lock();
            state.tick += 1;
            let tick = state.tick;
            let entry = state.entries.get_mut(key)?;
            // Open and map under the lock, so eviction cannot remove the file in between.
            let Some(map) = map_file(&entry.path, entry.size) else {
                self.forget(&mut state, key);
                return None;
            };
            let pin: Pin = match entry.pin.upgrade() {
                Some(pin) => pin,
                None => {
                    let pin = Arc::new(PinToken);
                    entry.pin = Arc::downgrade(&pin);
                    pin
                }
            };
            entry.last_use = tick;
            let check_crc = (self.verify && !entry.verified).then_some(entry.crc32);
            let bytes = ObjectBytes::from_mmap_pinned(map, Some(pin));
            let intact = !entry.framed || footer_intact(&bytes);
            if !intact {
                drop(bytes);
                self.forget(&mut state, key);
                return None;
            }
            (bytes, check_crc)
        };
        if let Some(crc32) = check_crc {
            // Reading the whole file, outside the lock; the pin keeps it from eviction.
            let intact = crc32fast::hash(&bytes) == crc32;
            let mut state = self.state.lock();
            if !intact {
                drop(bytes);
                self.forget(&mut state, key);
                return None;
            }
            if let Some(entry) = state.entries.get_mut(key) {
                entry.verified = true;
            }
        }
        Some(bytes)
    }

    /// Reads `range` of the cached object from its file; `None` if it is not cached (or its file
    /// is gone). The range must be within the object.
    pub(crate) fn read_range(
        &self,
        key: &str,
        range: &Range<u64>,
    ) -> Option<io::Result<ObjectBytes>> {
        let path = {
            let state = self.state.lock();
            let entry = state.entries.get(key)?;
            if range.end > entry.size {
                return None; // the caller's remote read reports the range error
            }
            entry.path.clone()
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget(&mut self.state.lock(), key);
                return None;
            }
            Err(e) => return Some(Err(e)),
        };
        let len = (range.end - range.start) as usize;
        Some(
            file.seek(SeekFrom::Start(range.start))
                .and_then(|_| ObjectBytes::fill_with(len, |buf| file.read_exact(buf))),
        )
    }

    /// Promises `size` bytes to a download, evicting unpinned files as needed; `None` if the
    /// object cannot fit.
    pub(crate) fn reserve(&self, size: u64) -> Option<Reservation<'_>> {
        let mut state = self.state.lock();
        if !self.make_room(&mut state, size) {
            return None;
        }
        state.reserved += size;
        Some(Reservation { cache: self, size })
    }

    /// Evicts least recently used unpinned files until `size` more bytes fit in the budget.
    fn make_room(&self, state: &mut State, size: u64) -> bool {
        if size > self.budget {
            return false;
        }
        while state.used + state.reserved + size > self.budget {
            let victim = state
                .entries
                .iter()
                .filter(|(_, entry)| entry.pin.strong_count() == 0)
                .min_by_key(|(_, entry)| entry.last_use)
                .map(|(key, _)| key.clone());
            match victim {
                Some(key) => self.forget(state, &key),
                None => return false,
            }
        }
        true
    }

    /// Drops an entry and removes its file.
    fn forget(&self, state: &mut State, key: &str) {
        if let Some(entry) = state.entries.remove(key) {
            state.used -= entry.size;
            remove_file(&entry.path);
        }
    }

    /// Removes the object's entry, mapped or not (the object was replaced or deleted). Hold the
    /// key.
    pub(crate) fn remove(&self, key: &str) {
        self.forget(&mut self.state.lock(), key);
    }

    /// A new temporary file in the namespace directory, which is made again if it was removed
    /// (a temporary-file cleaner, an operator): the cache recovers instead of failing forever.
    pub(crate) fn temp_file(&self) -> io::Result<(PathBuf, File)> {
        let mut remade = false;
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = self.root.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !remade => {
                    remade = true;
                    fs::create_dir_all(&self.root)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Publishes the synced temporary file `temp` as the cached copy of `key`, in the space
    /// `reservation` holds. Hold the key. On error the temporary file is removed.
    pub(crate) fn publish(
        &self,
        key: &str,
        reservation: Reservation<'_>,
        temp: &Path,
        contents: Contents,
        verified: bool,
    ) -> io::Result<()> {
        let path = self.path_of(key, contents);
        let moved =
            path.parent().map_or(Ok(()), fs::create_dir_all).and_then(|()| fs::rename(temp, &path));
        if let Err(e) = moved {
            remove_file(temp);
            return Err(e);
        }
        let mut state = self.state.lock();
        match state.entries.get(key) {
            // Same contents, same name: the rename replaced the old file, which must stay.
            Some(old) if old.path == path => {
                let old = state.entries.remove(key).expect("just found");
                state.used -= old.size;
            }
            _ => self.forget(&mut state, key),
        }
        state.tick += 1;
        let entry = Entry {
            path,
            size: contents.size,
            crc32: contents.crc32,
            framed: contents.framed,
            last_use: state.tick,
            verified,
            pin: Weak::new(),
        };
        state.entries.insert(key.to_owned(), entry);
        state.used += contents.size;
        // The reservation becomes the entry's share of the budget.
        state.reserved -= reservation.size;
        std::mem::forget(reservation);
        Ok(())
    }

    fn path_of(&self, key: &str, contents: Contents) -> PathBuf {
        let kind = if contents.framed { 'f' } else { 'r' };
        self.root.join(format!("{key}~{}-{:08x}{kind}", contents.size, contents.crc32))
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if self.ephemeral {
            // Under the registry lock: once the last handle let go, another thread may already
            // have opened a new cache on this namespace, whose directory must stay.
            let caches = CACHES.lock();
            if caches.get(&self.root).is_some_and(|cache| cache.strong_count() > 0) {
                return;
            }
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Best effort: a file that cannot be removed is at worst an orphan a later scan retries.
fn remove_file(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Parses `<base>~<size>-<crc32 hex><f|r>`.
fn parse_name(name: &str) -> Option<(&str, Contents)> {
    let (base, meta) = name.rsplit_once('~')?;
    let (size, rest) = meta.split_once('-')?;
    let (crc, kind) = rest.split_at_checked(8)?;
    let framed = match kind {
        "f" => true,
        "r" => false,
        _ => return None,
    };
    let contents =
        Contents { size: size.parse().ok()?, crc32: u32::from_str_radix(crc, 16).ok()?, framed };
    Some((base, contents))
}

/// Maps a cached file if its length is the recorded one.
fn map_file(path: &Path, size: u64) -> Option<memmap2::Mmap> {
    let file = File::open(path).ok()?;
    if size == 0 || file.metadata().ok()?.len() != size {
        return None;
    }
    // SAFETY: a mapped file must not change while mapped. Cache files are written whole under a
    // temporary name and renamed into place, and never written again: replacing an entry
    // renames a new file over the name or unlinks it, which leaves this mapping on the old
    // inode. Only a process outside Strata editing the cache directory could break this, which
    // the `ObjectStoreOptions::cache_dir` docs forbid.
    unsafe { memmap2::Mmap::map(&file) }.ok()
}

/// True if the object's last bytes are a self-consistent framing footer.
fn footer_intact(bytes: &[u8]) -> bool {
    let len = bytes.len();
    len >= FOOTER_LEN && Footer::recognize(len as u64, &bytes[len - FOOTER_LEN..]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let contents = Contents { size: 1234, crc32: 0xdead_beef, framed: true };
        let cache_name = format!("seg-1.flat~{}-{:08x}f", contents.size, contents.crc32);
        let (base, parsed) = parse_name(&cache_name).unwrap();
        assert_eq!(base, "seg-1.flat");
        assert_eq!((parsed.size, parsed.crc32, parsed.framed), (1234, 0xdead_beef, true));
        for bad in ["x", "x~12", "x~12-zz", "x~12-0000000", "x~12-00000000q", "x~a-00000000r"] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }
}
