//! [`ObjectStoreBackend`]: the [`Storage`] trait over `object_store` (Amazon S3 and compatible
//! servers, Google Cloud Storage, and `object_store`'s in-memory and local-file stores), with a
//! local cache directory for mapped objects.
//!
//! The trait is synchronous; the backend owns a small tokio runtime and runs each request on it
//! while the calling thread waits (see `docs/adr/0003-object-store-runtime.md`).
//!
//! How each operation maps to requests (counted by [`ObjectStoreBackend::requests`]):
//!
//! | operation | requests |
//! |---|---|
//! | `put` | a key-clash check (below), one PUT |
//! | `put_if_absent` | a key-clash check, one conditional PUT (`If-None-Match: *`); a refusal is confirmed with a GET |
//! | `writer` | objects up to the part size (inclusive): one PUT at `finish`; larger: a multipart upload (POST, a PUT per part, POST), aborted (DELETE) if the writer fails or is dropped |
//! | `get` | one GET |
//! | `get_range` | one ranged GET, or none if the object is cached |
//! | `map` | one GET on a cache miss, none on a hit |
//! | `size` | one HEAD, or none if the object is cached (cached objects are immutable; a delete by another process is not seen) |
//! | `list` | one LIST per 1,000 objects |
//! | `delete` | one DELETE |
//!
//! Key clashes: object stores happily hold `a/b` and `a/b/c` together, a local directory cannot,
//! and the trait refuses both everywhere so a database copies between backends. A write checks
//! each parent (one HEAD per parent component, once per backend) and lists one object under
//! `key/` (one LIST).

mod cache;
mod errors;
#[cfg(any(feature = "s3", feature = "gcs"))]
mod http;
mod runtime;
mod stats;
mod url;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use parking_lot::Mutex;

use self::cache::{Cache, CacheConfig, Contents};
use self::runtime::Runtime;
pub use self::stats::RequestStats;
use self::stats::{Counters, Request};
pub use self::url::{StorageUrl, open_url};
use crate::bytes::BytesMut;
use crate::framing::{FOOTER_LEN, Footer};
use crate::key::validate_prefix;
use crate::{
    Corruption, Error, ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage, check_range,
    validate_key,
};

/// Default [`ObjectStoreOptions::cache_budget`]: 4 GiB.
pub const DEFAULT_CACHE_BUDGET: u64 = 4 << 30;

/// Default [`ObjectStoreOptions::part_size`]: 8 MiB (S3 and GCS refuse parts under 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The smallest part S3 and GCS accept (except for an upload's last part).
pub const MIN_REMOTE_PART_SIZE: usize = 5 << 20;

/// Settings of an [`ObjectStoreBackend`], built with chained setters from [`Default`].
///
/// Credentials come from the environment unless [`access_key`](Self::access_key) is given: S3
/// reads the usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
/// ...; then web-identity, container or instance credentials), GCS the `GOOGLE_*` ones
/// (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
/// ...). Settings made here override the environment.
#[derive(Debug, Clone)]
pub struct ObjectStoreOptions {
    endpoint: Option<String>,
    allow_http: Option<bool>,
    region: Option<String>,
    access_key: Option<(String, String)>,
    cache_dir: Option<PathBuf>,
    cache_budget: u64,
    verify_cache: bool,
    part_size: usize,
    max_retries: usize,
    retry_timeout: Duration,
    request_timeout: Duration,
    check_bucket: bool,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        ObjectStoreOptions {
            endpoint: None,
            allow_http: None,
            region: None,
            access_key: None,
            cache_dir: None,
            cache_budget: DEFAULT_CACHE_BUDGET,
            verify_cache: false,
            part_size: DEFAULT_PART_SIZE,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(300),
            check_bucket: true,
        }
    }
}

impl ObjectStoreOptions {
    /// The defaults: no cache directory, 8 MiB parts, 10 retries within 3 minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server to talk to instead of the provider's (an S3-compatible server such as MinIO or
    /// moto, a GCS emulator), e.g. `http://127.0.0.1:9000`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Allows plain `http://` endpoints (a local test server). Off unless set here or in
    /// `AWS_ALLOW_HTTP`.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = Some(allow);
        self
    }

    /// The S3 region (default: `AWS_REGION`, else `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static S3 credentials (an access key id and its secret), instead of the environment's.
    pub fn access_key(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.access_key = Some((id.into(), secret.into()));
        self
    }

    /// A local directory where mapped objects (segments) are cached between uses and across
    /// restarts. Without one, `map` reads objects into memory on every call. Each store gets
    /// its own subdirectory; nothing else may write under the directory while it is in use
    /// (a cached file changed underneath a mapping is undefined behaviour for any mmap).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The most bytes the cache keeps (default 4 GiB). Files currently mapped are never
    /// evicted; an object that cannot fit is read into memory instead of being cached. Backends
    /// of one process on the same store and directory share one cache, under the budget of the
    /// first to open it.
    pub fn cache_budget(mut self, bytes: u64) -> Self {
        self.cache_budget = bytes;
        self
    }

    /// Checks the whole checksum of a cached file the first time this process maps it, when an
    /// earlier process downloaded it (default off: the length and the footer are checked, and
    /// formats check their own sections). Downloads are always verified as they arrive.
    pub fn verify_cache(mut self, verify: bool) -> Self {
        self.verify_cache = verify;
        self
    }

    /// Bytes per multipart part, and the largest object a streamed write sends as one PUT
    /// (default 8 MiB; S3 and GCS need at least 5 MiB).
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Retries of a failed request (connection errors, timeouts, 5xx, throttling) with
    /// exponential backoff (default 10).
    pub fn max_retries(mut self, retries: usize) -> Self {
        self.max_retries = retries;
        self
    }

    /// Time after which a request is not retried any more (default 3 minutes).
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    /// Time limit of one HTTP request, body included (default 5 minutes).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether opening a bucket lists it once to report a missing bucket or refused credentials
    /// at once (default on).
    pub fn check_bucket(mut self, check: bool) -> Self {
        self.check_bucket = check;
        self
    }

    fn validate(&self, location: &str) -> Result<()> {
        let invalid = |reason: &str| {
            Err(Error::InvalidLocation { location: location.to_owned(), reason: reason.to_owned() })
        };
        if self.part_size == 0 {
            return invalid("part_size must be positive");
        }
        if self.cache_dir.as_ref().is_some_and(|dir| dir.as_os_str().is_empty()) {
            return invalid("cache_dir is empty");
        }
        Ok(())
    }
}

/// A [`Storage`] over an `object_store` store; see the module docs for the requests each
/// operation costs.
///
/// Open one with [`open_url`] (`s3://bucket/prefix`, `gs://bucket/prefix`, `memory://`),
/// [`ObjectStoreBackend::open`], or [`ObjectStoreBackend::new`] around any store.
///
/// Durability is the store's: a put is durable when the store acknowledges it. Atomicity: puts
/// and completed multipart uploads publish whole objects; an unfinished, failed or dropped
/// streamed write publishes nothing (its multipart upload is aborted).
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    location: String,
    // Dropped after `store`, whose connection pool may hold tasks on it.
    runtime: Runtime,
    cache: Option<Arc<Cache>>,
    counters: Arc<Counters>,
    /// False when the HTTP layer counts requests on the wire instead.
    count_calls: bool,
    part_size: usize,
    /// Keys known to be directories of other keys: their clash check needs no HEAD.
    known_dirs: Mutex<HashSet<String>>,
}

impl fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreBackend")
            .field("location", &self.location)
            .field("cache", &self.cache.as_ref().map(|cache| cache.root()))
            .finish_non_exhaustive()
    }
}

/// Distinguishes in-memory stores of one process in cache namespaces.
static MEMORY_STORES: AtomicU64 = AtomicU64::new(0);

/// How a backend is assembled (see the constructors).
struct Parts {
    store: Arc<dyn ObjectStore>,
    location: String,
    counters: Arc<Counters>,
    count_calls: bool,
    /// The store dies with the process: so may its cache.
    ephemeral: bool,
}

impl ObjectStoreBackend {
    /// A backend over any `object_store` store (wrap it in a `PrefixStore` for a prefix).
    /// `location` names it in errors and names its cache namespace, so it must identify the
    /// store's contents (two different stores with one location would share cached objects).
    /// Requests are counted per call, as S3 would see them.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        location: impl Into<String>,
        options: &ObjectStoreOptions,
    ) -> Result<Self> {
        let parts = Parts {
            store,
            location: location.into(),
            counters: Arc::default(),
            count_calls: true,
            ephemeral: false,
        };
        Self::assemble(parts, Runtime::new(), options)
    }

    /// A backend over a new, empty `object_store` in-memory store.
    pub fn memory(options: &ObjectStoreOptions) -> Result<Self> {
        let n = MEMORY_STORES.fetch_add(1, Ordering::Relaxed);
        let location = format!("memory://{}-{n}", std::process::id());
        Self::memory_store(Arc::new(object_store::memory::InMemory::new()), location, options)
    }

    fn memory_store(
        store: Arc<dyn ObjectStore>,
        location: String,
        options: &ObjectStoreOptions,
    ) -> Result<Self> {
        let parts =
            Parts { store, location, counters: Arc::default(), count_calls: true, ephemeral: true };
        Self::assemble(parts, Runtime::new(), options)
    }

    /// A backend for `url`: `s3://bucket/prefix`, `gs://bucket/prefix` or `memory://[name]`
    /// (see [`StorageUrl`]). Local paths are refused here; [`open_url`] opens them as a
    /// [`crate::LocalDir`].
    pub fn open(url: &str, options: &ObjectStoreOptions) -> Result<Self> {
        url::open_backend(&StorageUrl::parse(url)?, url, options)
    }

    fn assemble(
        parts: Parts,
        runtime: std::io::Result<Runtime>,
        options: &ObjectStoreOptions,
    ) -> Result<Self> {
        options.validate(&parts.location)?;
        let runtime =
            runtime.map_err(|e| Error::io("start object-store runtime", &parts.location, e))?;
        let cache = match &options.cache_dir {
            Some(dir) => {
                let config = CacheConfig {
                    dir: dir.clone(),
                    namespace: namespace(&parts.location),
                    budget: options.cache_budget,
                    verify: options.verify_cache,
                    ephemeral: parts.ephemeral,
                };
                // Not `Error::io`: a cache's ENOENT is no "object not found".
                let cache = Cache::open(&config).map_err(|source| Error::Io {
                    op: "open cache",
                    key: dir.display().to_string(),
                    source,
                })?;
                Some(cache)
            }
            None => None,
        };
        Ok(ObjectStoreBackend {
            store: parts.store,
            location: parts.location,
            runtime,
            cache,
            counters: parts.counters,
            count_calls: parts.count_calls,
            part_size: options.part_size,
            known_dirs: Mutex::new(HashSet::new()),
        })
    }

    /// Requests sent to the store so far (see [`RequestStats`]). A `map` served by the cache
    /// costs none.
    pub fn requests(&self) -> RequestStats {
        self.counters.stats()
    }

    /// The store's location, e.g. `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The underlying `object_store` store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Bytes in this backend's cache directory (0 without one).
    pub fn cache_used(&self) -> u64 {
        self.cache.as_ref().map_or(0, |cache| cache.used())
    }

    /// The directory holding this store's cached objects, if it has a cache.
    pub fn cache_root(&self) -> Option<&std::path::Path> {
        self.cache.as_ref().map(|cache| cache.root())
    }

    fn count(&self, request: Request) {
        if self.count_calls {
            self.counters.add(request);
        }
    }

    fn count_n(&self, request: Request, n: u64) {
        for _ in 0..n {
            self.count(request);
        }
    }

    fn error(&self, op: &'static str, key: &str, error: object_store::Error) -> Error {
        errors::from_store(&self.location, op, key, error)
    }

    /// Runs a request on the runtime and maps its error.
    fn run<T, F>(&self, op: &'static str, key: &str, future: F) -> Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let _span = tracing::debug_span!("strata.object_store", op, key).entered();
        let started = std::time::Instant::now();
        let outcome = match self.runtime.run(future) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(op, key, e)),
            Err(panic) => {
                Err(Error::Io { op, key: key.to_owned(), source: io::Error::other(panic) })
            }
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match &outcome {
            Ok(_) => tracing::debug!(elapsed_us, "request done"),
            // A missing object is an answer (create-if-absent, GC), not a failure.
            Err(error) if error.is_not_found() || error.is_already_exists() => {
                tracing::debug!(elapsed_us, %error, "request answered")
            }
            Err(error) => tracing::warn!(elapsed_us, %error, "request failed"),
        }
        outcome
    }

    fn path(key: &str) -> Result<Path> {
        Path::parse(key).map_err(|_| Error::InvalidKey {
            key: key.to_owned(),
            reason: "not a valid object-store path",
        })
    }

    /// Lists the store under `dir` (all of it for `None`), in the store's order.
    fn list_raw(
        &self,
        op: &'static str,
        dir: Option<&str>,
    ) -> Result<Vec<object_store::ObjectMeta>> {
        let path = dir.map(Self::path).transpose()?;
        let store = Arc::clone(&self.store);
        let listed = self.run(op, dir.unwrap_or(""), async move {
            let dir = path;
            let mut stream = store.list(dir.as_ref());
            let mut out = Vec::new();
            while let Some(meta) = stream.next().await {
                out.push(meta?);
            }
            Ok(out)
        });
        // One request per page of 1,000, even an empty one (S3's page size).
        let pages = listed.as_ref().map_or(1, |metas| metas.len().div_ceil(1000).max(1));
        self.count_n(Request::List, pages as u64);
        listed
    }

    /// Whether any object lies under `key/`: one listing request for at most one object.
    fn has_children(&self, key: &str) -> Result<bool> {
        let dir = Self::path(key)?;
        let store = Arc::clone(&self.store);
        let child_prefix = format!("{key}/");
        self.count(Request::List);
        self.run("list", key, async move {
            let mut stream = store.list(Some(&dir));
            while let Some(meta) = stream.next().await {
                // Some stores list a file given as the prefix; only what is below it counts.
                if meta?.location.as_ref().starts_with(&child_prefix) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    fn head(&self, op: &'static str, key: &str) -> Result<object_store::ObjectMeta> {
        let path = Self::path(key)?;
        let store = Arc::clone(&self.store);
        self.count(Request::Head);
        self.run(op, key, async move { store.head(&path).await })
    }

    /// Refuses a key that is a parent "directory" of an existing key, or has an existing key as
    /// a parent (see the module docs).
    fn check_clash(&self, op: &'static str, key: &str) -> Result<()> {
        for (slash, _) in key.match_indices('/') {
            let parent = &key[..slash];
            if self.known_dirs.lock().contains(parent) {
                continue;
            }
            match self.head(op, parent) {
                Ok(_) => return Err(Error::KeyConflict { key: key.to_owned() }),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if self.has_children(key)? {
            return Err(Error::KeyConflict { key: key.to_owned() });
        }
        Ok(())
    }

    /// Remembers that the object `key` exists: its parents are directories, and it is no
    /// directory itself any more (it may have been one whose children were deleted since), so a
    /// later write under it HEADs it again and finds the clash.
    fn note_object(&self, key: &str) {
        let mut dirs = self.known_dirs.lock();
        for (slash, _) in key.match_indices('/') {
            if !dirs.contains(&key[..slash]) {
                dirs.insert(key[..slash].to_owned());
            }
        }
        dirs.remove(key);
    }

    /// The error of a write whose outcome is unknown (the trait's failure rules): anything but
    /// `NotFound` / `AlreadyExists` / `KeyConflict` / `InvalidKey`, whose meaning is "the write did
    /// not happen". `cause` (if any) says what failed; a `Remote` cause keeps its kind.
    fn unknown_outcome(
        &self,
        op: &'static str,
        key: &str,
        what: &str,
        cause: Option<Error>,
    ) -> Error {
        let kind = match &cause {
            Some(Error::Remote { kind, .. }) => *kind,
            _ => crate::RemoteErrorKind::Other,
        };
        let message = match cause {
            Some(cause) => format!("{what}; the write may have taken effect: {cause}"),
            None => format!("{what}; the write may have taken effect"),
        };
        Error::Remote {
            store: self.location.clone(),
            op,
            key: key.to_owned(),
            kind,
            source: message.into(),
        }
    }

    /// The conditional PUT of `put_if_absent`, and the confirmation of a refusal.
    ///
    /// A refusal (412, or 409 for a conditional write racing another in flight) is not taken at
    /// its word: the object is read back. Another object there is a real loss
    /// (`AlreadyExists`). Our own bytes there mean our create took effect and its answer was
    /// lost: S3 can answer 500 to a request it applied, `object_store` retries it, and the retry
    /// is refused by our own object; reporting `AlreadyExists` then would tell the real winner it
    /// lost. No object at all means the refusal was a 409 against a create that itself failed:
    /// the create is tried again, a few times, then its outcome is reported unknown. A failed
    /// confirmation is an unknown outcome too, never `AlreadyExists`.
    fn create(&self, key: &str, data: &[u8]) -> Result<()> {
        const ATTEMPTS: u32 = 5;
        let op = "put_if_absent";
        let mut attempts = 0;
        loop {
            attempts += 1;
            let refused = match self.put_opts(op, key, data, PutMode::Create) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_already_exists() => e,
                Err(e) => return Err(e),
            };
            match self.holds(op, key, data) {
                Ok(Some(false)) => return Err(refused),
                Ok(Some(true)) => return Ok(()),
                Ok(None) if attempts < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(20 << attempts));
                }
                Ok(None) => {
                    let what = format!(
                        "the store refused the create {attempts} times as existing, yet no \
                         object was found"
                    );
                    return Err(self.unknown_outcome(op, key, &what, None));
                }
                Err(e) => {
                    let what = "the store refused the create as existing, and reading the \
                                object back to confirm it failed";
                    return Err(self.unknown_outcome(op, key, what, Some(e)));
                }
            }
        }
    }

    /// Whether the object `key` holds exactly `data` (`None`: there is no object). One GET,
    /// whose body is read only if the sizes match.
    fn holds(&self, op: &'static str, key: &str, data: &[u8]) -> Result<Option<bool>> {
        let reply = match self.start_get(op, key, None) {
            Ok(reply) => reply,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if reply.meta.size != data.len() as u64 {
            return Ok(Some(false));
        }
        let download = self.get_to_heap(op, key, reply)?;
        Ok(Some(download.sink.into_bytes()[..] == *data))
    }

    /// Drops any cached copy of `key`: it was replaced or deleted.
    fn invalidate(&self, key: &str) {
        if let Some(cache) = &self.cache {
            let _key = cache.lock_key(key);
            cache.remove(key);
        }
    }

    fn put_opts(&self, op: &'static str, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        let path = Self::path(key)?;
        let store = Arc::clone(&self.store);
        let payload = PutPayload::from(data.to_vec());
        self.count(Request::Put);
        self.run(op, key, async move {
            store.put_opts(&path, payload, PutOptions::from(mode)).await.map(drop)
        })
    }

    /// Sends a GET (of `range`, or the whole object), returning once the reply's headers are in.
    fn start_get(
        &self,
        op: &'static str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<GetResult> {
        let path = Self::path(key)?;
        let store = Arc::clone(&self.store);
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        self.count(Request::Get);
        self.run(op, key, async move { store.get_opts(&path, options).await })
    }

    /// Streams a GET's body into `sink` on the runtime, checking it as it arrives.
    fn receive(
        &self,
        op: &'static str,
        key: &str,
        reply: GetResult,
        sink: Sink,
    ) -> Result<Download> {
        self.receive_into(op, key, reply, sink).map_err(|failure| match failure {
            Failure::Store(e) => self.error(op, key, e),
            // Not `Error::io`: the sink (memory, a cache file) failing says nothing about the
            // object, so an ENOENT of the cache directory must not read as "not found".
            Failure::Sink(source) => Error::Io { op, key: key.to_owned(), source },
            Failure::Other(e) => e,
        })
    }

    /// [`receive`](Self::receive), telling the sink's failures apart.
    fn receive_into(
        &self,
        op: &'static str,
        key: &str,
        reply: GetResult,
        sink: Sink,
    ) -> std::result::Result<Download, Failure> {
        let object_size = reply.meta.size;
        let range = reply.range.clone();
        let expected = range.end - range.start;
        let task = async move {
            let whole = range.start == 0 && range.end == object_size;
            let mut digest = whole.then(Digest::new);
            let mut sink = sink;
            let mut received = 0u64;
            let mut stream = reply.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(Failure::Store)?;
                // Blocking writes to the cache file on a worker: page-cache writes of one chunk,
                // far shorter than the network wait they follow.
                sink.write(received, &chunk).map_err(Failure::Sink)?;
                if let Some(digest) = digest.as_mut() {
                    digest.update(&chunk);
                }
                received += chunk.len() as u64;
            }
            Ok((sink, received, digest))
        };
        let (sink, received, digest) = match self.runtime.run(task) {
            Ok(Ok(done)) => done,
            Ok(Err(failure)) => return Err(failure),
            Err(panic) => {
                return Err(Failure::Other(Error::Io {
                    op,
                    key: key.to_owned(),
                    source: io::Error::other(panic),
                }));
            }
        };
        if received != expected {
            return Err(Failure::Other(Error::Io {
                op,
                key: key.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the store sent {received} bytes of {expected}"),
                ),
            }));
        }
        let (crc32, framing) = digest.map_or((0, Framing::Raw), Digest::finish);
        Ok(Download { object_size, sink, crc32, framing })
    }

    /// Reads a whole object into memory.
    fn get_to_heap(&self, op: &'static str, key: &str, reply: GetResult) -> Result<Download> {
        let len = usize::try_from(reply.meta.size).map_err(|_| Error::Io {
            op,
            key: key.to_owned(),
            source: io::Error::new(io::ErrorKind::OutOfMemory, "object exceeds the address space"),
        })?;
        self.receive(op, key, reply, Sink::Heap(BytesMut::zeroed(len)))
    }

    /// `map` through the cache: a hit maps the cached file; a miss downloads once (whatever
    /// the number of threads asking), verifies and caches the object, then maps it.
    fn map_cached(&self, cache: &Cache, key: &str) -> Result<ObjectBytes> {
        let _key = cache.lock_key(key);
        if let Some(bytes) = cache.lookup(key) {
            return Ok(bytes);
        }
        // A download that fails its checksum is retried once; twice means the object is bad.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reply = self.start_get("map", key, None)?;
            let size = reply.meta.size;
            let reservation = if size == 0 { None } else { cache.reserve(size) };
            let fetched = match reservation {
                // Too large for the budget (or empty): served from memory, not cached.
                None => self.heap_download(key, reply),
                Some(reservation) => self.cache_download(cache, key, reply, reservation),
            };
            match fetched {
                Ok(bytes) => return Ok(bytes),
                Err(Error::Corrupt { .. }) if attempts < 2 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A `map` answered from memory: the whole object, verified.
    fn heap_download(&self, key: &str, reply: GetResult) -> Result<ObjectBytes> {
        let download = self.get_to_heap("map", key, reply)?;
        download.check(key)?;
        Ok(download.sink.into_bytes())
    }

    /// Downloads `reply` into a new cache file, publishes and maps it. When the cache itself
    /// fails (its directory was removed and cannot be made again, a full disk), the object is
    /// served from memory instead: a local cache problem never fails a `map` of an object the
    /// store holds.
    fn cache_download(
        &self,
        cache: &Cache,
        key: &str,
        reply: GetResult,
        reservation: cache::Reservation<'_>,
    ) -> Result<ObjectBytes> {
        let (temp, file) = match cache.temp_file() {
            Ok(made) => made,
            Err(_) => {
                drop(reservation);
                return self.heap_download(key, reply);
            }
        };
        let download = match self.receive_into("map", key, reply, Sink::File(BufWriter::new(file)))
        {
            Ok(download) => download,
            Err(failure) => {
                let _ = std::fs::remove_file(&temp);
                return match failure {
                    Failure::Sink(_) => {
                        drop(reservation);
                        self.start_get("map", key, None)
                            .and_then(|reply| self.heap_download(key, reply))
                    }
                    Failure::Store(e) => Err(self.error("map", key, e)),
                    Failure::Other(e) => Err(e),
                };
            }
        };
        if let Err(e) = download.check(key) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let contents = download.contents();
        let cached = download
            .sink
            .finish_file()
            .and_then(|()| cache.publish(key, reservation, &temp, contents, true))
            .and_then(|()| {
                cache.lookup(key).ok_or_else(|| {
                    io::Error::other("the cached copy vanished right after it was written")
                })
            });
        match cached {
            Ok(bytes) => Ok(bytes),
            Err(_) => {
                let _ = std::fs::remove_file(&temp);
                self.start_get("map", key, None).and_then(|reply| self.heap_download(key, reply))
            }
        }
    }

    /// Answers a failed or short range read: `RangeOutOfBounds` if the range passes the end.
    fn range_error(&self, key: &str, range: &Range<u64>, error: Error) -> Error {
        if error.is_not_found() {
            return error;
        }
        match self.head("get_range", key) {
            Ok(meta) => check_range(key, range, meta.size).err().unwrap_or(error),
            Err(_) => error,
        }
    }
}

/// The cache namespace of a location: readable, and unique through a hash of the whole string.
fn namespace(location: &str) -> String {
    let readable: String = location
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(64)
        .collect();
    // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
    let hash = location
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{readable}-{hash:016x}")
}

/// Where a download goes.
enum Sink {
    Heap(BytesMut),
    File(BufWriter<File>),
}

impl Sink {
    fn write(&mut self, offset: u64, chunk: &[u8]) -> io::Result<()> {
        match self {
            Sink::Heap(buf) => {
                let buf = buf.as_mut_slice();
                let start = offset as usize;
                let end = start + chunk.len();
                if end > buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the store sent more bytes than the object's size",
                    ));
                }
                buf[start..end].copy_from_slice(chunk);
                Ok(())
            }
            Sink::File(file) => file.write_all(chunk),
        }
    }

    fn into_bytes(self) -> ObjectBytes {
        match self {
            Sink::Heap(buf) => buf.freeze(),
            Sink::File(_) => unreachable!("file downloads are published to the cache"),
        }
    }

    /// Flushes and syncs a cache file, so a crash never leaves a named file with lost pages.
    fn finish_file(self) -> io::Result<()> {
        match self {
            Sink::File(file) => file.into_inner().map_err(|e| e.into_error())?.sync_all(),
            Sink::Heap(_) => Ok(()),
        }
    }
}

/// Why a download failed.
enum Failure {
    /// The store (the request or the body stream).
    Store(object_store::Error),
    /// Writing to the sink: memory, or a cache file.
    Sink(io::Error),
    /// Anything else, already mapped.
    Other(Error),
}

/// Whether a whole object ends with a framing footer, and if so whether its body matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No self-consistent footer: nothing more to check.
    Raw,
    /// A footer whose body checksum holds.
    Valid,
    /// A footer whose body checksum does not hold.
    Mismatch { recorded: u32, actual: u32 },
}

struct Download {
    object_size: u64,
    sink: Sink,
    crc32: u32,
    framing: Framing,
}

impl Download {
    fn check(&self, key: &str) -> Result<()> {
        match self.framing {
            Framing::Mismatch { recorded, actual } => Err(Error::Corrupt {
                object: key.to_owned(),
                corruption: Corruption::BodyChecksum { recorded, actual },
            }),
            Framing::Raw | Framing::Valid => Ok(()),
        }
    }

    fn contents(&self) -> Contents {
        Contents {
            size: self.object_size,
            crc32: self.crc32,
            framed: self.framing == Framing::Valid,
        }
    }
}

/// Checksums of a whole object as it streams, whatever its length: crc32 of everything, crc32
/// of all but the last [`FOOTER_LEN`] bytes (the body, if those are a footer), and those bytes.
struct Digest {
    len: u64,
    all: crc32fast::Hasher,
    body: crc32fast::Hasher,
    /// The last `held_len` bytes seen, not yet in `body`.
    held: [u8; FOOTER_LEN],
    held_len: usize,
}

impl Digest {
    fn new() -> Self {
        Digest {
            len: 0,
            all: crc32fast::Hasher::new(),
            body: crc32fast::Hasher::new(),
            held: [0; FOOTER_LEN],
            held_len: 0,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.all.update(chunk);
        self.len += chunk.len() as u64;
        if chunk.len() >= FOOTER_LEN {
            self.body.update(&self.held[..self.held_len]);
            let (body, tail) = chunk.split_at(chunk.len() - FOOTER_LEN);
            self.body.update(body);
            self.held.copy_from_slice(tail);
            self.held_len = FOOTER_LEN;
        } else {
            // Keep the last FOOTER_LEN bytes of held + chunk; older ones join the body.
            let overflow = (self.held_len + chunk.len()).saturating_sub(FOOTER_LEN);
            self.body.update(&self.held[..overflow]);
            self.held.copy_within(overflow..self.held_len, 0);
            self.held_len -= overflow;
            self.held[self.held_len..self.held_len + chunk.len()].copy_from_slice(chunk);
            self.held_len += chunk.len();
        }
    }

    fn finish(self) -> (u32, Framing) {
        let framing = match Footer::recognize(self.len, &self.held[..self.held_len]) {
            None => Framing::Raw,
            Some(footer) => {
                let actual = self.body.finalize();
                let recorded = footer.body_crc32.get();
                if actual == recorded {
                    Framing::Valid
                } else {
                    Framing::Mismatch { recorded, actual }
                }
            }
        };
        (self.all.finalize(), framing)
    }
}

impl Storage for ObjectStoreBackend {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        validate_key(key)?;
        self.check_clash("put", key)?;
        // The cached copy goes before the request (a failed put may still have replaced the
        // object) and again after it (a concurrent `map` may have cached the old one meanwhile).
        self.invalidate(key);
        let sent = self.put_opts("put", key, data, PutMode::Overwrite);
        self.invalidate(key);
        sent?;
        self.note_object(key);
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        validate_key(key)?;
        self.check_clash("put_if_absent", key)?;
        // Invalidated around the request as in `put`: whatever the outcome, an object cached
        // under the key (deleted since by another process) is not what the key holds.
        self.invalidate(key);
        let created = self.create(key, data);
        self.invalidate(key);
        created?;
        self.note_object(key);
        Ok(())
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        validate_key(key)?;
        Ok(Box::new(writer::Writer::new(self, key)?))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        validate_key(key)?;
        let reply = self.start_get("get", key, None)?;
        Ok(self.get_to_heap("get", key, reply)?.sink.into_bytes())
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        validate_key(key)?;
        // A cached copy that cannot be read (its file vanished or failed) is no answer about
        // the object: the store is asked instead.
        if let Some(cache) = &self.cache
            && range.start <= range.end
            && let Some(Ok(bytes)) = cache.read_range(key, &range)
        {
            return Ok(bytes);
        }
        if range.start >= range.end {
            // Nothing to fetch (an HTTP range cannot be empty); still a bounds check.
            let size = self.size(key)?;
            check_range(key, &range, size)?;
            return Ok(ObjectBytes::copy_from_slice(&[]));
        }
        let reply = match self.start_get("get_range", key, Some(range.clone())) {
            Ok(reply) => reply,
            Err(e) => return Err(self.range_error(key, &range, e)),
        };
        if reply.range != range {
            // The store clamped the range to the object's end.
            check_range(key, &range, reply.meta.size)?;
        }
        let len = (range.end - range.start) as usize;
        match self.receive("get_range", key, reply, Sink::Heap(BytesMut::zeroed(len))) {
            Ok(download) => Ok(download.sink.into_bytes()),
            Err(e) => Err(self.range_error(key, &range, e)),
        }
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        validate_key(key)?;
        match &self.cache {
            Some(cache) => self.map_cached(cache, key),
            None => self.get(key),
        }
    }

    fn size(&self, key: &str) -> Result<u64> {
        validate_key(key)?;
        if let Some(size) = self.cache.as_ref().and_then(|cache| cache.size_of(key)) {
            return Ok(size);
        }
        self.head("size", key).map(|meta| meta.size)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        // Stores list whole path segments; list the deepest directory the prefix names in full
        // and filter by the string prefix.
        let dir = prefix.rfind('/').map(|slash| &prefix[..slash]);
        let listed = self.list_raw("list", dir).map_err(|e| match e {
            // Listing an existing bucket never answers "not found".
            Error::NotFound { key } => Error::Remote {
                store: self.location.clone(),
                op: "list",
                key: key.clone(),
                kind: crate::RemoteErrorKind::MissingBucket,
                source: format!("listing {key:?} answered \"not found\"").into(),
            },
            e => e,
        })?;
        let mut out: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|meta| meta.location.as_ref().starts_with(prefix))
            .filter(|meta| validate_key(meta.location.as_ref()).is_ok())
            .map(|meta| ObjectMeta { key: meta.location.as_ref().to_owned(), size: meta.size })
            .collect();
        out.sort_unstable();
        for meta in &out {
            self.note_object(&meta.key);
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let path = Self::path(key)?;
        let store = Arc::clone(&self.store);
        self.count(Request::Delete);
        match self.run("delete", key, async move { store.delete(&path).await }) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.invalidate(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{FormatId, frame};

    const FORMAT: FormatId =
        FormatId { magic: *b"STRATEST", major: 1, minor: 0, known_features: 0 };

    fn digest_of(data: &[u8], chunk: usize) -> (u32, Framing) {
        let mut digest = Digest::new();
        for piece in data.chunks(chunk.max(1)) {
            digest.update(piece);
        }
        digest.finish()
    }

    #[test]
    fn digest_recognizes_framed_objects_in_any_chunking() {
        let framed = frame(&FORMAT, 0, &(0..500u32).map(|i| i as u8).collect::<Vec<_>>());
        for chunk in [1, 7, 31, 32, 33, 64, 531, 532, 10_000] {
            let (crc, framing) = digest_of(&framed, chunk);
            assert_eq!(crc, crc32fast::hash(&framed), "chunk {chunk}");
            assert_eq!(framing, Framing::Valid, "chunk {chunk}");
        }
        let mut flipped = framed.clone();
        flipped[100] ^= 1;
        assert!(matches!(digest_of(&flipped, 64).1, Framing::Mismatch { .. }));
        // A damaged footer no longer recognizes as one: the object counts as raw.
        let mut bad_footer = framed.clone();
        let last = bad_footer.len() - 1;
        bad_footer[last] ^= 1;
        assert_eq!(digest_of(&bad_footer, 64).1, Framing::Raw);
        for raw in [&b""[..], b"short", &[7u8; 100]] {
            assert_eq!(digest_of(raw, 16), (crc32fast::hash(raw), Framing::Raw));
        }
    }

    #[test]
    fn namespaces_are_readable_and_distinct() {
        let a = namespace("s3://bucket/db");
        assert!(a.starts_with("s3___bucket_db-"), "{a}");
        assert_ne!(a, namespace("s3://bucket/db2"));
        assert_ne!(namespace("s3://a/b_c"), namespace("s3://a/b/c"));
        assert!(namespace(&"x".repeat(500)).len() < 100);
    }

    #[test]
    fn options_are_validated() {
        let bad = ObjectStoreOptions::new().part_size(0);
        assert!(matches!(ObjectStoreBackend::memory(&bad), Err(Error::InvalidLocation { .. })));
        let bad = ObjectStoreOptions::new().cache_dir("");
        assert!(matches!(ObjectStoreBackend::memory(&bad), Err(Error::InvalidLocation { .. })));
    }
}
