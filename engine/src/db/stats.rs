//! What a handle holds and has done: `stats`, `counters`, and the version history.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Db, Inner, Version};
use crate::Result;
use crate::compaction::{SegmentDetails, SegmentKind};
use crate::stats::{
    CompactionStats, Counters, KindStats, MemtableStats, PlannedCompaction, RamStats, Stats,
};

/// One stored version, as [`Db::versions`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The version.
    pub version: Version,
    /// When it was committed.
    pub committed_at: SystemTime,
    /// Live records in it.
    pub records: u64,
    /// Its segments.
    pub segments: usize,
}

impl Db {
    /// Running totals since the handle opened (searches, upserts, deletes, commits,
    /// compactions, collections, bytes written): a few atomic loads, cheap enough to scrape
    /// on every metrics tick.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// db.search(&[1.0, 0.0], 1)?;
    /// let counters = db.counters();
    /// assert_eq!((counters.upserts, counters.searches), (1, 1));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn counters(&self) -> Counters {
        self.inner.tally.read()
    }

    /// A full report: records and deleted rows, memtables, segments (each, and summed by kind
    /// with their codes), RAM by part, bytes on disk, stored versions, compaction (planned,
    /// running, the last one's duration, a persisting error) and the counters. Lists the
    /// stored versions (one LIST request on an object store); meant for tools and dashboards,
    /// not for every request.
    ///
    /// ```
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// db.upsert(1, &[1.0, 0.0])?;
    /// db.commit()?;
    /// let stats = db.stats()?;
    /// assert_eq!((stats.records, stats.segments.len(), stats.counters.commits), (1, 1, 1));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats> {
        self.inner.stats(self.segment_details())
    }

    /// Every committed version still stored, oldest first, with its commit time and size (time
    /// travel targets: [`snapshot_at`](Self::snapshot_at), [`Db::open_at`],
    /// [`Db::open_as_of`]). Reads each version's manifest.
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        let storage = &*self.inner.storage;
        strata_manifest::list_versions(storage)?
            .into_iter()
            .map(|version| {
                let manifest = strata_manifest::load(storage, version)?;
                Ok(VersionInfo {
                    version: Version(version),
                    committed_at: UNIX_EPOCH + Duration::from_millis(manifest.committed_at_ms),
                    records: manifest.segments.iter().map(|s| s.live_rows()).sum(),
                    segments: manifest.segments.len(),
                })
            })
            .collect()
    }
}

impl Inner {
    fn stats(&self, segments: Vec<SegmentDetails>) -> Result<Stats> {
        let versions_kept = strata_manifest::list_versions(&*self.storage)?.len();
        let snapshot = self.current_snapshot();
        let memtables = MemtableStats {
            active_rows: snapshot.active.len() as u64,
            pending_tiers: snapshot.pending.len(),
            pending_rows: snapshot.pending.iter().map(|p| p.len() as u64).sum(),
            bytes: (snapshot.active.memory_bytes()
                + snapshot.pending.iter().map(|p| p.memory_bytes()).sum::<usize>())
                as u64,
        };
        let deleted_in_segments: u64 = segments.iter().map(|s| s.info.rows - s.live_rows_now).sum();
        let deleted_pending: u64 = snapshot.pending.iter().map(|p| p.deleted.count()).sum();
        let bitmaps: usize = snapshot.segments.iter().map(|s| s.deleted.memory_bytes()).sum();
        let attributes: u64 = segments.iter().map(|s| s.attribute_bytes).sum();
        let segment_ram: u64 = segments.iter().map(|s| s.ram_bytes).sum();
        let ram = {
            let id_index = self.index.lock().memory_bytes() as u64;
            let segment_codes = segment_ram - attributes;
            let mut ram = RamStats {
                memtables: memtables.bytes,
                id_index,
                segment_codes,
                attributes,
                deletion_bitmaps: bitmaps as u64,
                total: 0,
            };
            ram.total =
                ram.memtables + id_index + segment_codes + attributes + ram.deletion_bitmaps;
            ram
        };
        let by_kind = [SegmentKind::Flat, SegmentKind::Vamana]
            .into_iter()
            .filter_map(|kind| {
                let of_kind: Vec<&SegmentDetails> =
                    segments.iter().filter(|s| s.info.kind == kind).collect();
                if of_kind.is_empty() {
                    return None;
                }
                let mut codecs: Vec<String> =
                    of_kind.iter().filter_map(|s| s.codes.clone()).collect();
                codecs.sort();
                codecs.dedup();
                Some(KindStats {
                    kind,
                    segments: of_kind.len(),
                    rows: of_kind.iter().map(|s| s.info.rows).sum(),
                    live_rows: of_kind.iter().map(|s| s.live_rows_now).sum(),
                    file_bytes: of_kind.iter().map(|s| s.file_bytes).sum(),
                    ram_bytes: of_kind.iter().map(|s| s.ram_bytes).sum(),
                    codecs,
                })
            })
            .collect();
        let disk_bytes = snapshot
            .manifest
            .segments
            .iter()
            .map(|r| r.files.iter().map(|f| f.size).sum::<u64>() + r.deletes.map_or(0, |d| d.size))
            .sum();
        let infos = snapshot.segment_infos();
        let planned =
            self.policy.read().plan(&infos, &self.options.policy_settings()).map(|plan| {
                PlannedCompaction {
                    inputs: plan.inputs.len(),
                    live_rows: infos
                        .iter()
                        .filter(|i| plan.inputs.contains(&i.id))
                        .map(|i| i.live_rows)
                        .sum(),
                    output: plan.output,
                }
            });
        let compaction = CompactionStats {
            background: self.options.background_compaction && self.work.lock().is_some(),
            running: self.compaction_lock.is_locked(),
            planned,
            last: self.last_compaction.lock().clone(),
            error: self.compaction_failure.lock().clone(),
        };
        Ok(Stats {
            version: Version(snapshot.manifest.version),
            versions_kept,
            records: self.len() as u64,
            deleted_rows: deleted_in_segments + deleted_pending,
            memtables,
            segments,
            by_kind,
            ram,
            disk_bytes,
            compaction,
            counters: self.tally.read(),
        })
    }
}
