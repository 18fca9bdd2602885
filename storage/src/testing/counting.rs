//! [`CountingStorage`]: counts operations and bytes through the seam.

use std::ops::Range;

use parking_lot::Mutex;

use super::Op;
use crate::{ObjectBytes, ObjectMeta, ObjectWriter, Result, Storage};

/// Operation counts and byte totals; compare two with [`IoStats::since`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    ops: [u64; Op::ALL.len()],
    /// Bytes handed to writes (`put`, `put_if_absent`, `write_all`).
    pub bytes_written: u64,
    /// Bytes returned by reads (`get`, `get_range`, `map`).
    pub bytes_read: u64,
}

impl IoStats {
    /// How many operations of kind `op`.
    pub fn count(&self, op: Op) -> u64 {
        self.ops[op.index()]
    }

    /// All operations that change the store.
    pub fn writes(&self) -> u64 {
        Op::ALL.iter().filter(|op| op.is_write()).map(|&op| self.count(op)).sum()
    }

    /// All operations that only read.
    pub fn reads(&self) -> u64 {
        Op::ALL.iter().filter(|op| !op.is_write()).map(|&op| self.count(op)).sum()
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &IoStats) -> IoStats {
        let mut delta = *self;
        for (d, e) in delta.ops.iter_mut().zip(earlier.ops) {
            *d -= e;
        }
        delta.bytes_written -= earlier.bytes_written;
        delta.bytes_read -= earlier.bytes_read;
        delta
    }

    fn record(&mut self, op: Op) {
        self.ops[op.index()] += 1;
    }
}

/// Wraps a store and counts every operation (attempted, whether or not it succeeds) and every
/// byte moved.
#[derive(Debug)]
pub struct CountingStorage<S> {
    inner: S,
    stats: Mutex<IoStats>,
}

impl<S: Storage> CountingStorage<S> {
    /// Counts operations on `inner`.
    pub fn new(inner: S) -> Self {
        CountingStorage { inner, stats: Mutex::new(IoStats::default()) }
    }

    /// The totals so far.
    pub fn stats(&self) -> IoStats {
        *self.stats.lock()
    }

    /// Zeroes the totals.
    pub fn reset(&self) {
        *self.stats.lock() = IoStats::default();
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn record(&self, op: Op, written: usize) {
        let mut stats = self.stats.lock();
        stats.record(op);
        stats.bytes_written += written as u64;
    }

    fn record_read(&self, result: Result<ObjectBytes>) -> Result<ObjectBytes> {
        if let Ok(bytes) = &result {
            self.stats.lock().bytes_read += bytes.len() as u64;
        }
        result
    }
}

impl<S: Storage> Storage for CountingStorage<S> {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.record(Op::Put, data.len());
        self.inner.put(key, data)
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<()> {
        self.record(Op::PutIfAbsent, data.len());
        self.inner.put_if_absent(key, data)
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        self.record(Op::CreateWriter, 0);
        let inner = self.inner.writer(key)?;
        Ok(Box::new(CountingWriter { stats: &self.stats, inner }))
    }

    fn get(&self, key: &str) -> Result<ObjectBytes> {
        self.record(Op::Get, 0);
        self.record_read(self.inner.get(key))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBytes> {
        self.record(Op::GetRange, 0);
        self.record_read(self.inner.get_range(key, range))
    }

    fn map(&self, key: &str) -> Result<ObjectBytes> {
        self.record(Op::Map, 0);
        self.record_read(self.inner.map(key))
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.record(Op::Size, 0);
        self.inner.size(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.record(Op::List, 0);
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.record(Op::Delete, 0);
        self.inner.delete(key)
    }
}

struct CountingWriter<'a> {
    stats: &'a Mutex<IoStats>,
    inner: Box<dyn ObjectWriter + 'a>,
}

impl ObjectWriter for CountingWriter<'_> {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        {
            let mut stats = self.stats.lock();
            stats.record(Op::Write);
            stats.bytes_written += data.len() as u64;
        }
        self.inner.write_all(data)
    }

    fn bytes_written(&self) -> u64 {
        self.inner.bytes_written()
    }

    fn finish(self: Box<Self>) -> Result<u64> {
        self.stats.lock().record(Op::Finish);
        self.inner.finish()
    }
}
