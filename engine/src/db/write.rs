//! The write path: upserts, the bulk path (`ingest`), deletes, and freezing the active
//! memtable into pending tiers (rotation) and the automatic flush.

use std::collections::HashSet;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use strata_attributes::{Attributes, Record};
use strata_memtable::{MAX_ROWS, Memtable, MemtableError, validate_vector};
use strata_quantize::normalize;

use super::{DROPPED, Db, Inner, Mode, Version, Work, panic_message, segment_number};
use crate::parallel::threads;
use crate::stats::Tally;
use crate::tiers::{Pending, Snapshot};
use crate::{Error, Result};

impl Db {
    /// Inserts `vector` under `id`, replacing any record with that id. Visible to searches on
    /// return; durable after the next [`commit`](Self::commit).
    pub fn upsert(&self, id: u64, vector: &[f32]) -> Result<()> {
        self.inner.upsert_record(id, vector, None)
    }

    /// Upserts `ids[i]` with the `i`-th `dim`-float row of `vectors` (row-major), for every
    /// `i`, inserting on every core. The whole batch is validated first: on any error nothing is
    /// applied. Within a batch, the last row with a given id wins.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert_batch(&[1, 2, 1], &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5])?; // the last row of id 1 wins
    /// assert_eq!((db.len(), db.get(1)?), (2, Some(vec![0.5, 0.5])));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn upsert_batch(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        self.inner.upsert_batch(ids, vectors, None)
    }

    /// The bulk path: upserts the batch (as [`upsert_batch`](Self::upsert_batch) does) and
    /// commits it with every write before it, returning the new version. The rows skip the
    /// memtable's graph: they are written as one new segment, which the background worker then
    /// folds into the largest Vamana segment (or promotes to one), inserting each row into a
    /// graph once. Loading a large file this way costs about one Vamana build, where upserts
    /// cost an HNSW insert per row and then the build.
    ///
    /// The whole batch is validated first: on any error nothing is applied. Within a batch,
    /// the last row with a given id wins. Until the commit returns, the batch is searched by
    /// an exact scan.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// let ids: Vec<u64> = (0..1000).collect();
    /// let rows: Vec<f32> = ids.iter().flat_map(|&i| [i as f32, 1.0]).collect();
    /// let version = db.ingest(&ids, &rows)?; // committed: durable on return
    /// assert_eq!((db.version(), db.len()), (version, 1000));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn ingest(&self, ids: &[u64], vectors: &[f32]) -> Result<Version> {
        let version = self.inner.ingest(ids, vectors, None)?;
        self.inner.stall_while_compaction_is_behind();
        Ok(version)
    }

    /// [`upsert`](Self::upsert) with attributes (any subset of the schema's columns, and a
    /// payload). Attributes the schema lacks, or of the wrong type, are refused and change
    /// nothing.
    pub fn upsert_with(&self, id: u64, vector: &[f32], attributes: &Attributes) -> Result<()> {
        let record = self.inner.record_of(attributes)?;
        self.inner.upsert_record(id, vector, record)
    }

    /// [`upsert_batch`](Self::upsert_batch) with the attributes of each row (`attributes[i]`
    /// for row `i`; as many as `ids`). The whole batch is validated first.
    pub fn upsert_batch_with(
        &self,
        ids: &[u64],
        vectors: &[f32],
        attributes: &[Attributes],
    ) -> Result<()> {
        let records = self.inner.records_of(ids, attributes)?;
        self.inner.upsert_batch(ids, vectors, Some(&records))
    }

    /// [`ingest`](Self::ingest) with the attributes of each row (as many as `ids`).
    pub fn ingest_with(
        &self,
        ids: &[u64],
        vectors: &[f32],
        attributes: &[Attributes],
    ) -> Result<Version> {
        let records = self.inner.records_of(ids, attributes)?;
        let version = self.inner.ingest(ids, vectors, Some(records))?;
        self.inner.stall_while_compaction_is_behind();
        Ok(version)
    }

    /// Replaces the attributes (and payload) of record `id`, keeping its vector; returns
    /// whether the record exists. Costs what an upsert of the same vector costs.
    pub fn update_attributes(&self, id: u64, attributes: &Attributes) -> Result<bool> {
        let record = self.inner.record_of(attributes)?;
        let Some(vector) = self.inner.get(id)? else { return Ok(false) };
        self.inner.upsert_record(id, &vector, record)?;
        Ok(true)
    }

    /// Deletes record `id`; returns whether it existed. Visible to searches on return; durable
    /// after the next commit.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// assert!(db.delete(1)?);  // it existed
    /// assert!(!db.delete(1)?); // nothing left to delete
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn delete(&self, id: u64) -> Result<bool> {
        self.inner.delete(id)
    }

    /// Sets how many rows the active memtable takes before it is frozen into an in-memory tier
    /// (searched, committed by the next commit) and a fresh one is started. Smaller graphs insert
    /// faster; more tiers search slower. Default 1,048,576; clamped to `1..=MAX_ROWS / 2`. Not stored: it applies to this handle.
    pub fn set_memtable_rotate_rows(&self, rows: usize) {
        self.inner.set_memtable_rotate_rows(rows)
    }
}

impl Inner {
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.mode == Mode::ReadOnly {
            return Err(Error::ReadOnly);
        }
        if let Some(poison) = &*self.poisoned.lock() {
            return Err(Error::Poisoned { cause: Arc::clone(&poison.cause) });
        }
        Ok(())
    }

    /// `attributes` checked against the schema (`None`: nothing to store).
    pub(crate) fn record_of(&self, attributes: &Attributes) -> Result<Option<Record>> {
        let record = Record::from_attributes(&self.options.attributes, attributes)?;
        Ok((!record.is_empty()).then_some(record))
    }

    /// The records of a batch of `rows` rows, all checked before any is applied.
    fn records_of(&self, ids: &[u64], attributes: &[Attributes]) -> Result<Vec<Option<Record>>> {
        if attributes.len() != ids.len() {
            let (ids, attributes) = (ids.len(), attributes.len());
            return Err(Error::InvalidAttributeBatch { ids, attributes });
        }
        attributes
            .iter()
            .enumerate()
            .map(|(row, a)| {
                self.record_of(a).map_err(|source| Error::InvalidRow {
                    row,
                    id: Some(ids[row]),
                    source: Box::new(source),
                })
            })
            .collect()
    }

    pub(crate) fn upsert_record(
        &self,
        id: u64,
        vector: &[f32],
        record: Option<Record>,
    ) -> Result<()> {
        self.check_writable()?;
        validate_vector(self.dim, self.metric, vector)?;
        self.rotate_if_full()?;
        let _gate = self.write_gate.read();
        let active = Arc::clone(&self.snapshot.read().active);
        active.upsert_with(id, vector, record)?;
        self.index.lock().delete(id);
        Tally::add(&self.tally.upserts, 1);
        drop(_gate);
        // Memory is summed every 256 rows: exact enough, and off the per-write path.
        if active.rows().is_multiple_of(256) {
            self.flush_if_full()?;
        }
        Ok(())
    }

    /// Checks a writable handle and a whole batch (row count, every vector) before any of it
    /// is applied.
    fn check_batch(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        self.check_writable()?;
        if ids.len().checked_mul(self.dim) != Some(vectors.len()) {
            let (ids, floats, dim) = (ids.len(), vectors.len(), self.dim);
            return Err(Error::InvalidBatch { ids, floats, dim });
        }
        for (row, vector) in vectors.chunks_exact(self.dim).enumerate() {
            validate_vector(self.dim, self.metric, vector).map_err(|source| Error::InvalidRow {
                row,
                id: Some(ids[row]),
                source: Box::new(source.into()),
            })?;
        }
        Ok(())
    }

    pub(crate) fn upsert_batch(
        &self,
        ids: &[u64],
        vectors: &[f32],
        records: Option<&[Option<Record>]>,
    ) -> Result<()> {
        self.check_batch(ids, vectors)?;
        // Rows whose id appears again later in the batch are skipped: the last one wins.
        let mut seen = HashSet::with_capacity(ids.len());
        let mut superseded = vec![false; ids.len()];
        for (i, id) in ids.iter().enumerate().rev() {
            superseded[i] = !seen.insert(*id);
        }
        const CHUNK: usize = 4096;
        let threads = threads(&self.pool);
        for start in (0..ids.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(ids.len());
            self.rotate_if_full()?;
            let _gate = self.write_gate.read();
            let active = Arc::clone(&self.snapshot.read().active);
            // Each worker inserts its rows in order and reports how far it got, so the index
            // forgets exactly the old versions of rows that were inserted, even on an error.
            let insert = |rows: std::ops::Range<usize>| -> (usize, Result<()>) {
                for i in rows.clone() {
                    if superseded[i] {
                        continue;
                    }
                    let vector = &vectors[i * self.dim..(i + 1) * self.dim];
                    let record = records.and_then(|r| r[i].clone());
                    if let Err(e) = active.upsert_with(ids[i], vector, record) {
                        return (i, Err(e.into()));
                    }
                }
                (rows.end, Ok(()))
            };
            let workers = threads.min((end - start).div_ceil(256)).max(1);
            let per = (end - start).div_ceil(workers);
            let ranges: Vec<_> = (start..end).step_by(per).map(|s| s..(s + per).min(end)).collect();
            let outcomes: Vec<(std::ops::Range<usize>, usize, Result<()>)> = if workers == 1 {
                let (done, result) = insert(start..end);
                vec![(start..end, done, result)]
            } else {
                // Scoped threads, sized by the handle's pool but not run on it: the write gate
                // is held here, and a rayon thread waiting on its own jobs runs other queued
                // jobs meanwhile, one of which may ask for the gate exclusively (a rotation, a
                // commit) on this very thread.
                std::thread::scope(|scope| {
                    let handles: Vec<_> =
                        ranges.iter().map(|range| scope.spawn(|| insert(range.clone()))).collect();
                    ranges
                        .iter()
                        .zip(handles)
                        .map(|(range, handle)| match handle.join() {
                            Ok((done, result)) => (range.clone(), done, result),
                            // Which rows went in is unknown: the handle must not commit.
                            Err(panic) => {
                                let panicked = Error::Panicked {
                                    during: "upsert_batch",
                                    message: panic_message(&*panic),
                                };
                                let cause = self.poison(panicked, false);
                                (range.clone(), range.start, Err(Error::Poisoned { cause }))
                            }
                        })
                        .collect()
                })
            };
            let mut index = self.index.lock();
            let mut first_error = None;
            for (range, done, result) in outcomes {
                for &id in &ids[range.start..done] {
                    index.delete(id);
                }
                if let (Err(e), None) = (result, &first_error) {
                    first_error = Some(e);
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            drop(index);
            drop(_gate);
            let inserted = superseded[start..end].iter().filter(|&&s| !s).count();
            Tally::add(&self.tally.upserts, inserted as u64);
            self.flush_if_full()?;
        }
        Ok(())
    }

    pub(crate) fn ingest(
        &self,
        ids: &[u64],
        vectors: &[f32],
        records: Option<Vec<Option<Record>>>,
    ) -> Result<Version> {
        self.check_batch(ids, vectors)?;
        // Segment rows are u32 and DROPPED marks a dropped row.
        let max = DROPPED as usize - 1;
        if ids.len() > max {
            return Err(Error::BatchTooLarge { rows: ids.len(), max });
        }
        // The last row of each id wins, as in `upsert_batch`.
        let mut seen = HashSet::with_capacity(ids.len());
        let mut keep = vec![false; ids.len()];
        for (i, id) in ids.iter().enumerate().rev() {
            keep[i] = seen.insert(*id);
        }
        drop(seen);
        let live = keep.iter().filter(|&&k| k).count();
        let mut batch_ids = Vec::with_capacity(live);
        let mut batch_vectors = Vec::with_capacity(live * self.dim);
        let mut records = records;
        let mut batch_records = Vec::with_capacity(if records.is_some() { live } else { 0 });
        for (i, row) in vectors.chunks_exact(self.dim).enumerate().filter(|(i, _)| keep[*i]) {
            batch_ids.push(ids[i]);
            if let Some(records) = &mut records {
                batch_records.push(records[i].take());
            }
            let start = batch_vectors.len();
            batch_vectors.extend_from_slice(row);
            if self.metric.needs_normalization() {
                normalize(&mut batch_vectors[start..]).map_err(|_| MemtableError::ZeroVector)?;
            }
        }
        if batch_ids.is_empty() {
            return self.commit();
        }
        Tally::add(&self.tally.upserts, batch_ids.len() as u64);
        {
            // Earlier writes go into an earlier tier (the rotation), the batch into its own:
            // visible first, then the old versions hidden, as an upsert does, so a search never
            // misses a record.
            let _gate = self.write_gate.write();
            self.rotate_locked()?;
            let segment_id = {
                let mut next_id = self.next_segment_id.lock();
                let id = *next_id;
                *next_id += 1;
                id
            };
            let number = segment_number(segment_id)?;
            let pending = Arc::new(Pending::batch(
                segment_id,
                self.dim,
                self.metric,
                batch_ids,
                batch_vectors,
                batch_records,
            ));
            {
                let mut snapshot = self.snapshot.write();
                let mut next = (**snapshot).clone();
                next.pending.push(Arc::clone(&pending));
                *snapshot = Arc::new(next);
            }
            let mut index = self.index.lock();
            for &id in &pending.ids {
                index.delete(id);
            }
            index.add_segment(number, Arc::clone(&pending.deleted), pending.ids.iter().copied());
        }
        self.commit()
    }

    pub(crate) fn delete(&self, id: u64) -> Result<bool> {
        self.check_writable()?;
        let _gate = self.write_gate.read();
        let active = Arc::clone(&self.snapshot.read().active);
        let in_memtable = active.delete(id)?;
        let elsewhere = self.index.lock().delete(id);
        let deleted = in_memtable || elsewhere;
        Tally::add(&self.tally.deletes, u64::from(deleted));
        Ok(deleted)
    }

    pub(crate) fn set_memtable_rotate_rows(&self, rows: usize) {
        self.rotate_rows.store(rows.clamp(1, MAX_ROWS / 2), Ordering::Relaxed);
    }

    /// Freezes the active memtable into a pending tier once it holds enough rows.
    fn rotate_if_full(&self) -> Result<()> {
        let limit = self.rotate_rows.load(Ordering::Relaxed);
        if self.snapshot.read().active.rows() < limit {
            return Ok(());
        }
        let _gate = self.write_gate.write();
        if self.snapshot.read().active.rows() >= limit {
            self.rotate_locked()?;
        }
        Ok(())
    }

    /// Freezes the active memtable (the caller holds the write gate exclusively). Returns the
    /// new pending tier, if the memtable held any live row.
    pub(super) fn rotate_locked(&self) -> Result<Option<Arc<Pending>>> {
        let mut snapshot = self.snapshot.write();
        if snapshot.active.rows() == 0 {
            return Ok(None);
        }
        let fresh = Arc::new(Memtable::new(self.dim, self.metric, self.params)?);
        let mut next = (**snapshot).clone();
        let old = std::mem::replace(&mut next.active, fresh);
        let pending = if old.is_empty() {
            None
        } else {
            let mut next_id = self.next_segment_id.lock();
            let segment_id = *next_id;
            let number = segment_number(segment_id)?;
            *next_id += 1;
            let pending = Arc::new(Pending::freeze(&old, segment_id));
            self.index.lock().add_segment(
                number,
                Arc::clone(&pending.deleted),
                pending.ids.iter().copied(),
            );
            next.pending.push(Arc::clone(&pending));
            Some(pending)
        };
        *snapshot = Arc::new(next);
        Ok(pending)
    }

    /// Bytes the memtables hold (active and frozen), for the automatic flush.
    fn memtable_bytes(&self, snapshot: &Snapshot) -> usize {
        snapshot.active.memory_bytes()
            + snapshot.pending.iter().map(|p| p.memory_bytes()).sum::<usize>()
    }

    /// After a write: past the automatic flush budget, queue a commit for the worker; past
    /// twice the budget (the worker is behind), commit in this thread.
    fn flush_if_full(&self) -> Result<()> {
        let Some(budget) = self.options.auto_flush_bytes else { return Ok(()) };
        let snapshot = self.current_snapshot();
        let bytes = self.memtable_bytes(&snapshot) as u64;
        if bytes <= budget {
            return Ok(());
        }
        let worker = self.work.lock().is_some();
        if worker && bytes <= budget.saturating_mul(2) {
            if !self.flush_queued.swap(true, Ordering::AcqRel) {
                self.wake(Work::Flush);
            }
            return Ok(());
        }
        self.commit().map(drop)
    }
}
