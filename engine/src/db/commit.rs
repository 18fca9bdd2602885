//! Commits: the cut (freeze the active memtable, take every segment's deletes), the new
//! segment files and deletion vectors, the manifest, and the snapshot swap after it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_attributes::Record;
use strata_manifest::keys::{manifest_key, segment_file_key};
use strata_manifest::{FileRecord, Manifest, SegmentKind, SegmentRecord};
use strata_segment_flat::FlatWriter;

use super::{DELETES_WRITERS, Db, Inner, Version, Work, segment_number};
use crate::segment::attribute_sections;
use crate::stats::Tally;
use crate::tiers::{LiveSegment, Snapshot};
use crate::{Error, Result};

impl Db {
    /// Makes every write before it durable, atomically, and returns the new version (or the
    /// current one when there is nothing to commit).
    ///
    /// Writes from other threads may run during a commit; each is in this version or the next,
    /// whole. A commit that fails before it writes the manifest (a full disk while writing a
    /// segment, say) changes nothing: its writes stay pending and searchable, and a later
    /// commit (once space is freed) makes them durable. If the manifest write itself fails,
    /// or anything after it, the outcome on storage is unknown and the handle is poisoned (see
    /// [`Error::Poisoned`]): storage then holds the previous version or this one, never a mix.
    ///
    /// ```
    /// use strata::{Db, Metric, Options, Version};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?; // version 1
    /// db.upsert(1, &[1.0, 0.0])?;
    /// assert_eq!(db.commit()?, Version(2));
    /// assert_eq!(db.commit()?, Version(2)); // nothing new: the same version
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn commit(&self) -> Result<Version> {
        let version = self.inner.commit()?;
        self.inner.stall_while_compaction_is_behind();
        Ok(version)
    }
}

impl Inner {
    pub(crate) fn commit(&self) -> Result<Version> {
        self.check_writable()?;
        let _commit = self.commit_lock.lock();
        // The cut: freeze the active memtable and take every segment's deletes as of now.
        let (snapshot, cut_deletes) = {
            let _gate = self.write_gate.write();
            self.rotate_locked()?;
            let snapshot = Arc::clone(&self.snapshot.read());
            let pending: Vec<_> =
                snapshot.pending.iter().map(|p| p.deleted.to_deletion_vector()).collect();
            let segments: Vec<_> = snapshot
                .segments
                .iter()
                .map(|s| s.is_dirty().then(|| s.deleted.to_deletion_vector()))
                .collect();
            (snapshot, (pending, segments))
        };
        let (pending_deletes, segment_deletes) = cut_deletes;
        if snapshot.pending.is_empty() && segment_deletes.iter().all(Option::is_none) {
            return Ok(Version(snapshot.manifest.version));
        }
        let base = snapshot.manifest.version;
        let span = tracing::info_span!("strata.commit", base);
        let _entered = span.enter();
        let started = std::time::Instant::now();
        tracing::debug!(
            pending_tiers = snapshot.pending.len(),
            changed_deletion_vectors = segment_deletes.iter().flatten().count(),
            "cut"
        );
        let mut published = false;
        match self.write_version(&snapshot, &pending_deletes, &segment_deletes, &mut published) {
            Ok(version) => {
                let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                tracing::info!(version = version.0, elapsed_ms, "committed");
                self.wake(Work::Compact);
                Ok(version)
            }
            // Nothing a reader could see was written: the objects written so far are garbage
            // (GC removes them), and the next commit writes them again. A conflict fences the
            // handle off all the same.
            Err(error) if !published && !matches!(error, Error::Conflict { .. }) => {
                tracing::warn!(%error, "commit failed before publishing: writes stay pending");
                Err(error)
            }
            Err(error) => Err(self.poison_publish(error)),
        }
    }

    fn write_version(
        &self,
        snapshot: &Snapshot,
        pending_deletes: &[strata_manifest::DeletionVector],
        segment_deletes: &[Option<strata_manifest::DeletionVector>],
        published: &mut bool,
    ) -> Result<Version> {
        let storage = &*self.storage;
        let base = &snapshot.manifest;
        let version = base.version + 1;
        // A writer whose base version was collected fell behind: stop before writing anything.
        self.check_base_exists(version - 1)?;
        let mut records = Vec::with_capacity(base.segments.len() + snapshot.pending.len());
        let deletes_stage = tracing::debug_span!("deletion_vectors").entered();
        // Changed deletion vectors are independent objects, each durable on its own (an fsync
        // pair locally, a request on an object store): write them concurrently.
        let changed: Vec<(usize, &strata_manifest::DeletionVector)> = segment_deletes
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .filter(|(i, d)| d.deleted() < snapshot.segments[*i].record.rows)
            .collect();
        let mut written: Vec<Option<strata_manifest::DeletesRecord>> =
            vec![None; snapshot.segments.len()];
        let lanes = changed.len().min(DELETES_WRITERS);
        if lanes > 0 {
            let results: Vec<Result<Vec<(usize, strata_manifest::DeletesRecord)>>> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..lanes)
                        .map(|lane| {
                            let changed = &changed;
                            scope.spawn(move || {
                                changed
                                    .iter()
                                    .skip(lane)
                                    .step_by(lanes)
                                    .map(|&(i, deletes)| {
                                        let id = snapshot.segments[i].record.id;
                                        strata_manifest::write_deletes(
                                            storage, id, version, self.tag, deletes,
                                        )
                                        .map(|record| (i, record))
                                        .map_err(Error::from)
                                    })
                                    .collect()
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("writer thread panicked")).collect()
                });
            for lane in results {
                for (i, record) in lane? {
                    written[i] = Some(record);
                }
            }
        }
        for ((live, deletes), record) in snapshot.segments.iter().zip(segment_deletes).zip(written)
        {
            if deletes.as_ref().is_some_and(|d| d.deleted() == live.record.rows) {
                continue; // Every row deleted: the segment leaves the database.
            }
            let mut record_now = live.record.clone();
            if record.is_some() {
                record_now.deletes = record;
            }
            records.push(record_now);
        }
        drop(deletes_stage);
        let segments_stage =
            tracing::debug_span!("segments", tiers = snapshot.pending.len()).entered();
        let mut flushed = Vec::new();
        for (pending, deletes) in snapshot.pending.iter().zip(pending_deletes) {
            let rows = pending.len() as u64;
            if deletes.deleted() == rows {
                flushed.push((Arc::clone(pending), None, deletes));
                continue;
            }
            let key = segment_file_key(pending.segment_id, self.tag, SegmentKind::Flat, 0);
            let mut writer = FlatWriter::new(storage, &key, self.dim, self.metric, rows)?;
            for (row, &id) in pending.ids.iter().enumerate() {
                writer.push(id, pending.vector(row as u32))?;
            }
            if pending.has_records() {
                let records: Vec<Record> = (0..rows as u32)
                    .map(|row| pending.record(row).cloned().unwrap_or_default())
                    .collect();
                writer.set_attributes(attribute_sections(&self.options.attributes, &records));
            }
            let written = writer.finish()?;
            let deletes_now = deletes;
            let deletes = (deletes.deleted() > 0)
                .then(|| {
                    strata_manifest::write_deletes(
                        storage,
                        pending.segment_id,
                        version,
                        self.tag,
                        deletes,
                    )
                })
                .transpose()?;
            let record = SegmentRecord {
                id: pending.segment_id,
                tag: self.tag,
                kind: SegmentKind::Flat,
                rows,
                files: vec![FileRecord { size: written.size, crc32: written.crc32 }],
                deletes,
            };
            flushed.push((Arc::clone(pending), Some(record.clone()), deletes_now));
            records.push(record);
        }
        drop(segments_stage);
        let manifest = self.next_manifest(base, records);
        let _publish_stage = tracing::debug_span!("publish", version).entered();
        // From here on a failure may have published the version.
        *published = true;
        strata_manifest::commit(storage, &manifest)?;
        // Create-if-absent fences writers racing on one version, but not one that slept while
        // another committed and garbage-collected past it: its "new" version would be older than
        // the newest and never read. GC keeps a suffix of the history, so if our base version
        // still exists, no version after it was ever collected, and ours is the newest.
        self.check_base_exists(version - 1)?;

        let written: u64 = flushed
            .iter()
            .filter_map(|(_, record, _)| record.as_ref())
            .flat_map(|record| &record.files)
            .map(|file| file.size)
            .sum::<u64>()
            + manifest
                .segments
                .iter()
                .filter_map(|record| record.deletes.filter(|d| d.generation == version))
                .map(|deletes| deletes.size)
                .sum::<u64>()
            + manifest.encode().len() as u64;
        Tally::add(&self.tally.commits, 1);
        Tally::add(&self.tally.bytes_written, written);

        // Committed. Open the new segments (a map; no vector is read) and swap the snapshot.
        let mut new_segments = Vec::with_capacity(flushed.len());
        for (pending, record, deletes) in &flushed {
            if let Some(record) = record {
                let segment = Arc::new(self.open_segment(record)?);
                new_segments.push(Arc::new(LiveSegment {
                    record: record.clone(),
                    segment,
                    deleted: Arc::clone(&pending.deleted),
                    committed: Arc::new((*deletes).clone()),
                }));
            } else {
                self.index.lock().drop_segment(segment_number(pending.segment_id)?);
            }
        }
        self.register_segments(&new_segments);
        let mut guard = self.snapshot.write();
        let mut next = (**guard).clone();
        next.pending.retain(|p| !flushed.iter().any(|(f, ..)| Arc::ptr_eq(p, f)));
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for record in &manifest.segments {
            let live = next
                .segments
                .iter()
                .chain(&new_segments)
                .find(|live| live.record.id == record.id)
                .expect("every committed segment is open");
            segments.push(if live.record == *record {
                Arc::clone(live)
            } else {
                // Its deletion vector changed: the one this commit wrote is what it now holds.
                let written = snapshot
                    .segments
                    .iter()
                    .position(|s| s.record.id == record.id)
                    .and_then(|i| segment_deletes[i].clone());
                Arc::new(LiveSegment {
                    record: record.clone(),
                    segment: Arc::clone(&live.segment),
                    deleted: Arc::clone(&live.deleted),
                    committed: written.map_or_else(|| Arc::clone(&live.committed), Arc::new),
                })
            });
        }
        for gone in
            next.segments.iter().filter(|s| !manifest.segments.iter().any(|r| r.id == s.record.id))
        {
            self.index.lock().drop_segment(segment_number(gone.record.id)?);
        }
        next.segments = segments;
        next.manifest = Arc::new(manifest);
        *guard = Arc::new(next);
        Ok(Version(version))
    }

    /// The version after `base` holding `records` (sorted here by id, oldest first).
    pub(crate) fn next_manifest(
        &self,
        base: &Manifest,
        mut records: Vec<SegmentRecord>,
    ) -> Manifest {
        records.sort_by_key(|r| r.id);
        Manifest {
            version: base.version + 1,
            committed_at_ms: now_ms().max(base.committed_at_ms),
            options: base.options.clone(),
            next_segment_id: *self.next_segment_id.lock(),
            segments: records,
        }
    }

    /// `Conflict` if the manifest of `base` is gone: garbage collection removed it, so other
    /// writers committed versions after it (one stat, whatever the history's length).
    pub(crate) fn check_base_exists(&self, base: u64) -> Result<()> {
        match self.storage.size(&manifest_key(base)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let newest = strata_manifest::list_versions(&*self.storage)?;
                Err(Error::Conflict { version: newest.last().copied().unwrap_or(base + 1) })
            }
            Err(e) => Err(e.into()),
        }
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
