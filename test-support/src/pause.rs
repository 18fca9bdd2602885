//! A storage wrapper that stops a caller on one read, so a test can run something else at
//! exactly that point (a GC while a compaction holds a file, a commit while it reads deletes).

use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_storage::{ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage};

/// Forwards every call to the wrapped store. Armed with [`pause_after_map`] or
/// [`pause_before_get`], the first matching read tells the test ([`Pause::wait`] returns) and
/// blocks until the test says go ([`Pause::resume`]). One pause per store.
///
/// [`pause_after_map`]: Self::pause_after_map
/// [`pause_before_get`]: Self::pause_before_get
#[derive(Debug)]
pub struct PausingStore {
    inner: Arc<dyn Storage>,
    map_prefix: Mutex<Option<String>>,
    get_prefix: Mutex<Option<String>>,
    reached: Mutex<Option<Sender<()>>>,
    go: Mutex<Option<Receiver<()>>>,
}

/// The test's side of a [`PausingStore`].
#[derive(Debug)]
pub struct Pause {
    reached: Receiver<()>,
    go: Sender<()>,
}

impl Pause {
    /// Blocks until the store has paused a caller.
    pub fn wait(&self) {
        self.reached.recv().expect("the paused caller is gone");
    }

    /// Lets the paused caller go on.
    pub fn resume(&self) {
        self.go.send(()).expect("the paused caller is gone");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PausingStore {
    /// A pausing store over `inner`, and the handle that waits for and ends its pause.
    pub fn new(inner: Arc<dyn Storage>) -> (Arc<PausingStore>, Pause) {
        let (reached_tx, reached) = channel();
        let (go, go_rx) = channel();
        let store = PausingStore {
            inner,
            map_prefix: Mutex::new(None),
            get_prefix: Mutex::new(None),
            reached: Mutex::new(Some(reached_tx)),
            go: Mutex::new(Some(go_rx)),
        };
        (Arc::new(store), Pause { reached, go })
    }

    /// The next `map` of a key starting with `prefix` maps, then pauses.
    pub fn pause_after_map(&self, prefix: &str) {
        *lock(&self.map_prefix) = Some(prefix.to_owned());
    }

    /// The next `get` of a key starting with `prefix` pauses before it reads.
    pub fn pause_before_get(&self, prefix: &str) {
        *lock(&self.get_prefix) = Some(prefix.to_owned());
    }

    /// Pauses if `key` matches the armed `prefix` (disarming it).
    fn pause_on(&self, prefix: &Mutex<Option<String>>, key: &str) {
        let hit = {
            let mut prefix = lock(prefix);
            let hit = prefix.as_deref().is_some_and(|p| key.starts_with(p));
            if hit {
                *prefix = None;
            }
            hit
        };
        if hit {
            let reached = lock(&self.reached).take().expect("one pause per store");
            reached.send(()).expect("the test is gone");
            let go = lock(&self.go).take().expect("one pause per store");
            go.recv().expect("the test is gone");
        }
    }
}

impl Storage for PausingStore {
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put_if_absent(key, data)
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        self.inner.writer(key)
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        self.pause_on(&self.get_prefix, key);
        self.inner.get(key)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        self.inner.get_range(key, range)
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        let bytes = self.inner.map(key)?;
        self.pause_on(&self.map_prefix, key);
        Ok(bytes)
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.inner.size(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
}
