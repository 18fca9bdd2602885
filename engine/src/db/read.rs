//! The read path: searches over a snapshot of every tier, point reads, what a handle holds,
//! and moving a read-only handle to the newest version.

use std::sync::Arc;

use strata_attributes::{Attributes, Predicate};
use strata_memtable::{MemtableView, validate_vector};
use strata_quantize::{Metric, Neighbor};

use super::{Db, Inner, Mode, Version};
use crate::compaction::{SegmentDetails, SegmentInfo};
use crate::parallel::search_batch;
use crate::snapshot::open_segments;
use crate::stats::Tally;
use crate::tiers::Snapshot as Tiers;
use crate::{Options, Result, SearchParams, Snapshot};

impl Db {
    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.inner.metric()
    }

    /// The committed version this handle's state builds on.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// Live records, committed and not (approximate while writes run).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when no record is live.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The vector of record `id` (normalized, under cosine), if it exists.
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        self.inner.get(id)
    }

    /// The vectors of records `ids`, in order (`None` for an id that does not exist), all read
    /// from one state of the database: a write racing the call is seen by every id or by none.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// assert_eq!(db.get_many(&[1, 2])?, [Some(vec![1.0, 0.0]), None]);
    /// assert!(db.contains(1) && !db.contains(2));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Vec<f32>>>> {
        self.inner.get_many(ids)
    }

    /// The attributes and payload of record `id`, if it exists (a record written without any
    /// has empty attributes).
    pub fn get_attributes(&self, id: u64) -> Result<Option<Attributes>> {
        self.inner.get_attributes(id)
    }

    /// Whether record `id` exists (no vector is read).
    pub fn contains(&self, id: u64) -> bool {
        self.inner.contains(id)
    }

    /// The `k` nearest live records to `query`, nearest first, at default effort.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.inner.search(query, k)
    }

    /// The nearest live records to `query` under `params`, nearest first. Distances are
    /// smaller-is-nearer for every metric (squared L2; negated dot product; 1 - cosine).
    ///
    /// Runs on a snapshot of every tier; never waits for a commit beyond a pointer swap.
    pub fn search_with(&self, query: &[f32], params: SearchParams) -> Result<Vec<Neighbor>> {
        self.inner.search_with(query, params)
    }

    /// Every query of `queries` (`dim` floats each, row-major) under `params`, spread over the
    /// handle's thread pool ([`DbBuilder::threads`](crate::DbBuilder::threads); rayon's global
    /// pool by default); result `i` holds query `i`'s neighbours. Every query is validated
    /// first: a bad one fails the batch as [`Error::InvalidRow`](crate::Error::InvalidRow)
    /// naming it. Each query sees every write acknowledged before the call; for one pinned
    /// version across the batch, use [`Snapshot::search_batch`](crate::Snapshot::search_batch).
    ///
    /// ```
    /// use strata::{Db, Metric, Options, SearchParams};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert_batch(&[1, 2], &[0.0, 0.0, 1.0, 1.0])?;
    /// let hits = db.search_batch(&[0.1, 0.0, 0.9, 1.0], SearchParams::new(1))?;
    /// assert_eq!((hits[0][0].id, hits[1][0].id), (1, 2));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn search_batch(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> Result<Vec<Vec<Neighbor>>> {
        self.inner.search_batch(queries, params)
    }

    /// Every live record of the current committed version, streamed in a stable order:
    /// `self.snapshot().scan()` (see [`Snapshot::scan`]). Uncommitted writes are not in it.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert_batch(&[1, 2], &[1.0, 0.0, 0.0, 1.0])?;
    /// db.commit()?;
    /// let ids: Vec<u64> = db.scan().map(|e| e.map(|e| e.id)).collect::<Result<_, _>>()?;
    /// assert_eq!(ids.len(), 2);
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn scan(&self) -> crate::Scan {
        self.snapshot().scan()
    }

    /// A [`Snapshot`] of this handle's current committed version: it searches, reads and
    /// scans that version while writes, commits and compactions go on. Uncommitted writes are
    /// not in it.
    pub fn snapshot(&self) -> Snapshot {
        let current = self.inner.current_snapshot();
        Snapshot::new(
            Arc::clone(&current.manifest),
            &current.segments,
            self.inner.options.clone(),
            self.inner.pool.clone(),
            Arc::clone(&self.inner.tally),
        )
        .expect("the handle opened its memtable with these options")
    }

    /// A [`Snapshot`] of committed version `version` (time travel), reusing the segments this
    /// handle has open. The version must still be retained (see [`versions`](Self::versions)).
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// let first = db.commit()?;
    /// db.upsert(2, &[0.0, 1.0])?;
    /// db.commit()?;
    /// assert_eq!(db.snapshot_at(first)?.len(), 1);
    /// assert_eq!(db.versions()?.len(), 3); // create, and two commits
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot> {
        let current = self.inner.current_snapshot();
        if version.0 == current.manifest.version {
            // From the state just read: a commit racing this call does not change the answer.
            let tally = Arc::clone(&self.inner.tally);
            let (options, pool) = (self.inner.options.clone(), self.inner.pool.clone());
            return Snapshot::new(
                Arc::clone(&current.manifest),
                &current.segments,
                options,
                pool,
                tally,
            );
        }
        let manifest = strata_manifest::load(&*self.inner.storage, version.0)?;
        let options = Options::from_stored(&manifest.options)?;
        let segments = open_segments(&*self.inner.storage, &manifest, &current.segments, &options)?;
        self.inner.register_segments(&segments);
        let tally = Arc::clone(&self.inner.tally);
        Snapshot::new(Arc::new(manifest), &segments, options, self.inner.pool.clone(), tally)
    }

    /// The error of the last background refresh of a read-only handle opened with
    /// [`DbBuilder::refresh_every`](crate::DbBuilder::refresh_every), while refreshes fail
    /// (the handle keeps the version it has meanwhile).
    pub fn refresh_error(&self) -> Option<Arc<crate::Error>> {
        self.inner.refresh_failure.lock().clone()
    }

    /// Moves a read-only handle to the newest committed version; returns it. Segments already
    /// open stay open.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("v");
    /// let db = Db::create(&path, Options::new(2, Metric::L2))?;
    /// let reader = Db::open_read_only(&path)?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// let version = db.commit()?;
    /// assert!(!reader.contains(1)); // the version it opened
    /// assert_eq!(reader.refresh()?, version);
    /// assert!(reader.contains(1));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn refresh(&self) -> Result<Version> {
        self.inner.refresh()
    }

    /// The committed segments of the current version, oldest first, as the compaction policy
    /// sees them.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.current_snapshot().segment_infos()
    }

    /// Every committed segment of this handle's current version, oldest first, with its file
    /// size, RAM and codes (for tools such as `cargo xtask inspect`).
    pub fn segment_details(&self) -> Vec<SegmentDetails> {
        let snapshot = self.inner.current_snapshot();
        snapshot
            .segment_infos()
            .into_iter()
            .zip(&snapshot.segments)
            .map(|(info, live)| SegmentDetails {
                info,
                live_rows_now: info.rows - live.deleted.count(),
                file_bytes: live.segment.file_bytes(),
                ram_bytes: live.memory_bytes() as u64,
                attribute_bytes: live.segment.columns.memory_bytes() as u64,
                codes: live.segment.codes(),
            })
            .collect()
    }

    /// The options in force (stored in the manifest at create time).
    pub fn options(&self) -> Options {
        self.inner.options.clone()
    }

    /// Bytes this handle holds in RAM: memtables, the id index, and each segment's in-memory
    /// part (a Vamana segment's codes; not the mapped files, which the page cache holds).
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }
}

impl Inner {
    pub(crate) fn current_snapshot(&self) -> Arc<Tiers> {
        Arc::clone(&self.snapshot.read())
    }

    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn metric(&self) -> Metric {
        self.metric
    }

    pub(crate) fn version(&self) -> Version {
        Version(self.snapshot.read().manifest.version)
    }

    pub(crate) fn len(&self) -> usize {
        // No rotation may move rows from the memtable into the index between the two reads.
        let _gate = self.write_gate.read();
        let snapshot = Arc::clone(&self.snapshot.read());
        let live_in_index = self.index.lock().len();
        snapshot.active.len() + live_in_index
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        Ok(self.get_many(&[id])?.pop().flatten())
    }

    pub(crate) fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Vec<f32>>>> {
        self.read_many(
            ids,
            |snapshot, segment, row| snapshot.vector_of(segment, row),
            |active, id| active.get(id).map(<[f32]>::to_vec),
        )
    }

    pub(crate) fn get_attributes(&self, id: u64) -> Result<Option<Attributes>> {
        let record = self.read_many(
            &[id],
            |snapshot, segment, row| snapshot.record_of(segment, row),
            |active, id| active.get_with_record(id).map(|(_, r)| r.cloned().unwrap_or_default()),
        )?;
        Ok(record.into_iter().next().flatten().map(|r| r.to_attributes(&self.options.attributes)))
    }

    /// What `from_tier` (for a record in a pending tier or segment) or `from_active` (in the
    /// active memtable) reads of each of `ids`, all from one state of the database.
    fn read_many<T>(
        &self,
        ids: &[u64],
        from_tier: impl Fn(&Tiers, u64, u32) -> Result<Option<T>>,
        from_active: impl Fn(&MemtableView, u64) -> Option<T>,
    ) -> Result<Vec<Option<T>>> {
        // Under the gate no rotation moves records between the memtable and the index. The
        // index is read first: an upsert adds the new version to the memtable before it takes
        // the old one out of the index, so a record is always in one place or the other.
        // Locations and snapshot are read together (snapshot lock first, as everywhere): a
        // compaction swaps both at once, and a location only makes sense in its snapshot.
        let _gate = self.write_gate.read();
        let (locations, snapshot) = {
            let snapshot = self.snapshot.read();
            let index = self.index.lock();
            let locations: Vec<_> = ids.iter().map(|&id| index.get(id)).collect();
            (locations, Arc::clone(&snapshot))
        };
        ids.iter()
            .zip(locations)
            .map(|(&id, location)| {
                if let Some(location) = location
                    && let Some(found) =
                        from_tier(&snapshot, location.segment.into(), location.row)?
                {
                    return Ok(Some(found));
                }
                Ok(from_active(&snapshot.active, id))
            })
            .collect()
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        // As in `get_many`: the gate keeps a record in the index or the memtable; a location in
        // the index is a live row (deletes take ids out of it).
        let _gate = self.write_gate.read();
        let active = Arc::clone(&self.snapshot.read().active);
        self.index.lock().get(id).is_some() || active.get(id).is_some()
    }

    pub(crate) fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.search_with(query, SearchParams::new(k))
    }

    pub(crate) fn search_with(&self, query: &[f32], params: SearchParams) -> Result<Vec<Neighbor>> {
        validate_vector(self.dim, self.metric, query)?;
        let predicate = params.predicate(&self.options.attributes)?;
        Tally::add(&self.tally.searches, 1);
        self.search_from(self.current_snapshot(), query, params, predicate.as_ref())
    }

    /// [`search_with`](Self::search_with) starting from `snapshot`, which may be stale by the
    /// time it is searched.
    pub(super) fn search_from(
        &self,
        mut snapshot: Arc<Tiers>,
        query: &[f32],
        params: SearchParams,
        predicate: Option<&Predicate>,
    ) -> Result<Vec<Neighbor>> {
        loop {
            let hits = snapshot.search(query, &params, predicate)?;
            // Deletion bitmaps are shared by every snapshot; memtables are not. If a rotation
            // replaced this snapshot's active memtable meanwhile, an upsert may have hidden the
            // old version this search skipped and put the new one in a memtable the snapshot
            // does not hold. The upsert inserted after it saw the new snapshot and set the bit
            // (AcqRel) after inserting; the search read the bit (Acquire), so this second read
            // sees the new active memtable, and the search runs again on the newer snapshot.
            // A retry needs a rotation during the search, so this rarely loops.
            let now = Arc::clone(&self.snapshot.read());
            if Arc::ptr_eq(&now.active, &snapshot.active) {
                return Ok(hits);
            }
            snapshot = now;
        }
    }

    pub(crate) fn search_batch(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let predicate = params.predicate(&self.options.attributes)?;
        let snapshot = self.current_snapshot();
        let hits = search_batch(&self.pool, self.dim, self.metric, queries, |query| {
            self.search_from(Arc::clone(&snapshot), query, params.clone(), predicate.as_ref())
        })?;
        Tally::add(&self.tally.searches, hits.len() as u64);
        Ok(hits)
    }

    pub(crate) fn refresh(&self) -> Result<Version> {
        if self.mode != Mode::ReadOnly {
            return Ok(self.version());
        }
        let _commit = self.commit_lock.lock();
        let newest = strata_manifest::load_latest(&*self.storage)?;
        let current = Arc::clone(&self.snapshot.read());
        if newest.version > current.manifest.version {
            let _span = tracing::debug_span!("strata.refresh", to = newest.version).entered();
            self.install_manifest(newest, &current.segments)?;
            tracing::debug!(version = self.version().0, "refreshed");
        }
        Ok(self.version())
    }

    pub(super) fn memory_bytes(&self) -> usize {
        let snapshot = self.current_snapshot();
        let memtables: usize = snapshot.active.memory_bytes()
            + snapshot.pending.iter().map(|p| p.memory_bytes()).sum::<usize>();
        let segments: usize = snapshot.segments.iter().map(|s| s.memory_bytes()).sum();
        memtables + segments + self.index.lock().memory_bytes()
    }
}

#[cfg(test)]
mod race_tests {
    use strata_storage::MemoryStore;

    use super::*;

    /// A search that took its snapshot before a commit, and reads the tiers after a later
    /// upsert of a committed id: the old version's deletion bit is visible (bitmaps are shared)
    /// but the new version sits in a memtable the old snapshot does not hold. The retry in
    /// `search_from` must still find the record.
    #[test]
    fn a_stale_snapshot_is_retried_after_a_rotation() {
        let db = Db::create_in(Arc::new(MemoryStore::new()), Options::new(2, Metric::L2)).unwrap();
        db.upsert(1, &[1.0, 0.0]).unwrap();
        db.upsert(2, &[2.0, 0.0]).unwrap();
        db.commit().unwrap();
        db.upsert(3, &[3.0, 0.0]).unwrap();
        let held = db.inner.current_snapshot();
        db.commit().unwrap();
        db.upsert(1, &[1.5, 0.0]).unwrap();
        let stale = held.search(&[1.0, 0.0], &SearchParams::exact(10), None).unwrap();
        assert!(!stale.iter().any(|n| n.id == 1), "the stale snapshot alone misses id 1");
        let hits = db.inner.search_from(held, &[1.0, 0.0], SearchParams::exact(10), None).unwrap();
        let ids: Vec<u64> = hits.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3], "{hits:?}");
    }
}
