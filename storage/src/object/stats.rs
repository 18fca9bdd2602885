//! Counting the requests a backend sends to its object store.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests sent to an object store, by kind, as an S3 bill would count them.
///
/// Over HTTP (S3, GCS) every request on the wire is counted, retries included. Over
/// `object_store`'s in-memory and local stores each call is counted as the request S3 would
/// receive for it, so the same tests hold both: a whole or ranged read is a `get`, a put or an
/// uploaded part a `put`, starting or completing a multipart upload a `post`, a size query a
/// `head`, each page of a listing a `list`, a delete or an aborted upload a `delete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RequestStats {
    /// Object reads, whole or ranged.
    pub get: u64,
    /// Object writes: single puts and multipart parts.
    pub put: u64,
    /// Multipart uploads started or completed.
    pub post: u64,
    /// Metadata queries.
    pub head: u64,
    /// Listing pages.
    pub list: u64,
    /// Deletes and aborted uploads.
    pub delete: u64,
}

impl RequestStats {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.post + self.head + self.list + self.delete
    }

    /// Requests that write: `put + post` (what "PUTs" means in a bar on commit cost).
    pub fn writes(&self) -> u64 {
        self.put + self.post
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            get: self.get - earlier.get,
            put: self.put - earlier.put,
            post: self.post - earlier.post,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
        }
    }
}

/// The kinds [`RequestStats`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Get,
    Put,
    Post,
    Head,
    List,
    Delete,
}

/// Shared, lock-free counters behind [`RequestStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters([AtomicU64; 6]);

impl Counters {
    pub(crate) fn add(&self, request: Request) {
        self.0[request as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> RequestStats {
        let n = |request: Request| self.0[request as usize].load(Ordering::Relaxed);
        RequestStats {
            get: n(Request::Get),
            put: n(Request::Put),
            post: n(Request::Post),
            head: n(Request::Head),
            list: n(Request::List),
            delete: n(Request::Delete),
        }
    }
}
