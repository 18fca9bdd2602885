//! Streamed writes: one PUT for objects up to a part (a whole part included), a multipart
//! upload beyond, and a copy into the cache as the bytes go by, so mapping a just-written
//! segment costs no download.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{MultipartUpload, PutMode, PutPayload};
use tokio::task::JoinHandle;

use super::cache::Contents;
use super::runtime::join;
use super::stats::Request;
use super::{Digest, Framing, ObjectStoreBackend};
use crate::{Error, ObjectWriter, Result};

/// Parts uploading at once; the memory a writer holds is about `(this + 1) * part_size`.
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) struct Writer<'a> {
    backend: &'a ObjectStoreBackend,
    key: String,
    path: Path,
    /// Bytes not yet sent: at most a part. A full part is sent only once more bytes follow,
    /// so an object of exactly one part is a single PUT.
    part: Vec<u8>,
    written: u64,
    /// Started once the first part is full.
    upload: Option<Upload>,
    /// The copy for the cache; dropped (and the cache skipped) if writing it fails.
    copy: Option<CacheCopy>,
    /// A write failed: what was sent is not the object, so it must never be published.
    failed: bool,
    /// `finish` ran (successfully or not); drop has nothing left to clean.
    done: bool,
}

struct Upload {
    /// Taken out while a task completes or aborts it.
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
}

struct CacheCopy {
    temp: PathBuf,
    file: BufWriter<File>,
    digest: Digest,
    size: u64,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(backend: &'a ObjectStoreBackend, key: &str) -> Result<Self> {
        let path = ObjectStoreBackend::path(key)?;
        let copy = backend.cache.as_ref().and_then(|cache| {
            let (temp, file) = cache.temp_file().ok()?;
            Some(CacheCopy { temp, file: BufWriter::new(file), digest: Digest::new(), size: 0 })
        });
        Ok(Writer {
            backend,
            key: key.to_owned(),
            path,
            part: Vec::new(),
            written: 0,
            upload: None,
            copy,
            failed: false,
            done: false,
        })
    }

    fn fail(&mut self, error: Error) -> Error {
        self.failed = true;
        error
    }

    /// Sends `data` as the next part, starting the upload first if needed, and waits for the
    /// oldest part when too many are in flight.
    fn send_part(&mut self, data: Vec<u8>) -> Result<()> {
        let backend = self.backend;
        if self.upload.is_none() {
            let store = Arc::clone(&backend.store);
            let path = self.path.clone();
            backend.count(Request::Post);
            let upload = backend.run("writer", &self.key, async move {
                store.put_multipart_opts(&path, Default::default()).await
            })?;
            self.upload = Some(Upload { upload: Some(upload), in_flight: VecDeque::new() });
        }
        let upload = self.upload.as_mut().expect("started above");
        backend.count(Request::Put);
        let part =
            upload.upload.as_mut().expect("present between calls").put_part(PutPayload::from(data));
        upload.in_flight.push_back(backend.runtime.spawn(part));
        while upload.in_flight.len() > PARTS_IN_FLIGHT {
            let oldest = upload.in_flight.pop_front().expect("non-empty");
            Self::wait_part(backend, &self.key, oldest)?;
        }
        Ok(())
    }

    fn wait_part(
        backend: &ObjectStoreBackend,
        key: &str,
        part: JoinHandle<object_store::Result<()>>,
    ) -> Result<()> {
        match join(part) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(backend.error("write", key, e)),
            Err(panic) => {
                Err(Error::Io { op: "write", key: key.to_owned(), source: io::Error::other(panic) })
            }
        }
    }

    /// Waits for every part in flight; the first error wins.
    fn drain(&mut self) -> Result<()> {
        let mut result = Ok(());
        while let Some(part) = self.upload.as_mut().and_then(|u| u.in_flight.pop_front()) {
            let outcome = Self::wait_part(self.backend, &self.key, part);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Abandons a started multipart upload: its parts are never assembled into an object.
    fn abort(&mut self) {
        let _ = self.drain();
        if let Some(mut upload) = self.upload.take().and_then(|mut u| u.upload.take()) {
            self.backend.count(Request::Delete);
            // Best effort: a store keeps parts of an upload nobody aborted only until its
            // lifecycle rules reap them; they never become an object.
            let _ = self.backend.runtime.run(async move { upload.abort().await });
        }
    }

    fn discard_copy(&mut self) {
        if let Some(copy) = self.copy.take() {
            drop(copy.file);
            let _ = std::fs::remove_file(&copy.temp);
        }
    }

    fn publish(&mut self) -> Result<()> {
        let key = self.key.clone();
        let backend = self.backend;
        if self.upload.is_none() {
            backend.check_clash("finish", &key)?;
            let data = std::mem::take(&mut self.part);
            return backend.put_opts("finish", &key, &data, PutMode::Overwrite);
        }
        let last = std::mem::take(&mut self.part);
        if !last.is_empty() {
            self.send_part(last)?;
        }
        self.drain()?;
        backend.check_clash("finish", &key)?;
        let mut upload =
            self.upload.as_mut().and_then(|u| u.upload.take()).expect("started, not yet taken");
        backend.count(Request::Post);
        let completed = backend.runtime.run(async move { upload.complete().await.map(drop) });
        match completed {
            Ok(Ok(())) => {
                self.upload = None;
                Ok(())
            }
            Ok(Err(e)) => match backend.error("finish", &key, e) {
                // S3 can answer 500 to a completion it applied; `object_store` retries it and
                // the retry finds no such upload any more (404 NoSuchUpload). That is no proof
                // the object was not written, so it must not read as `NotFound` ("the write did
                // not happen"): the outcome is unknown.
                e @ (Error::NotFound { .. } | Error::AlreadyExists { .. }) => Err(backend
                    .unknown_outcome(
                        "finish",
                        &key,
                        "completing the multipart upload answered that it does not exist \
                         (an earlier attempt may have completed it)",
                        Some(e),
                    )),
                e => Err(e),
            },
            Err(panic) => Err(Error::Io { op: "finish", key, source: io::Error::other(panic) }),
        }
    }

    /// Hands the finished copy to the cache, if it holds the whole object and fits.
    fn cache_copy(&mut self) {
        let (Some(cache), Some(copy)) = (self.backend.cache.as_ref(), self.copy.take()) else {
            return;
        };
        let CacheCopy { temp, file, digest, size } = copy;
        let synced = file.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all());
        let reservation = cache.reserve(size);
        let (Ok(()), Some(reservation), true) =
            (synced, reservation, size == self.written && size > 0)
        else {
            let _ = std::fs::remove_file(&temp);
            return;
        };
        let (crc32, framing) = digest.finish();
        let contents = Contents { size, crc32, framed: framing == Framing::Valid };
        if matches!(framing, Framing::Mismatch { .. }) {
            // The writer's own bytes fail their footer: leave judging that to the readers.
            let _ = std::fs::remove_file(&temp);
            return;
        }
        let _key = cache.lock_key(&self.key);
        let _ = cache.publish(&self.key, reservation, &temp, contents, true);
    }
}

impl CacheCopy {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.digest.update(data);
        self.size += data.len() as u64;
        Ok(())
    }
}

impl ObjectWriter for Writer<'_> {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Io {
                op: "write",
                key: self.key.clone(),
                source: io::Error::other("an earlier write to this object failed"),
            });
        }
        if let Some(copy) = self.copy.as_mut()
            && copy.write(data).is_err()
        {
            self.discard_copy();
        }
        self.written += data.len() as u64;
        let part_size = self.backend.part_size;
        let mut data = data;
        while !data.is_empty() {
            if self.part.len() == part_size {
                // More bytes follow a full part: the object is a multipart upload.
                let full = std::mem::replace(&mut self.part, Vec::with_capacity(part_size));
                if let Err(e) = self.send_part(full) {
                    return Err(self.fail(e));
                }
            }
            let take = (part_size - self.part.len()).min(data.len());
            self.part.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.done = true;
        if self.failed {
            self.abort();
            self.discard_copy();
            return Err(Error::Io {
                op: "finish",
                key: self.key.clone(),
                source: io::Error::other("an earlier write to this object failed"),
            });
        }
        // The cached copy goes before the request (a failed publish may still have replaced the
        // object) and again after it (a concurrent `map` may have cached the old one meanwhile).
        self.backend.invalidate(&self.key);
        let published = self.publish();
        self.backend.invalidate(&self.key);
        if let Err(e) = published {
            self.abort();
            self.discard_copy();
            return Err(e);
        }
        self.backend.note_object(&self.key);
        self.cache_copy();
        Ok(self.written)
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.abort();
        }
        self.discard_copy();
    }
}
