//! What a handle reports about itself: `Db::stats` (a full picture, for tools such as
//! `cargo xtask inspect`) and `Db::counters` (cheap running totals, to scrape).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::Version;
use crate::compaction::{SegmentDetails, SegmentKind};

/// Running totals of a handle since it opened: read them with
/// [`Db::counters`](crate::Db::counters) as often as you like (a few atomic loads) and export
/// them to your metrics system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Queries searched (a batch counts each query), on the handle and its snapshots.
    pub searches: u64,
    /// Records upserted (batches and ingests count each row).
    pub upserts: u64,
    /// Records deleted.
    pub deletes: u64,
    /// Commits that wrote a version (the handle's, its automatic flushes' and ingests').
    pub commits: u64,
    /// Compactions that published their output.
    pub compactions: u64,
    /// Garbage collections that ran.
    pub gcs: u64,
    /// Bytes of segment files, deletion vectors and manifests this handle wrote.
    pub bytes_written: u64,
}

/// The atomics behind [`Counters`].
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) searches: AtomicU64,
    pub(crate) upserts: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) gcs: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
}

impl Tally {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Counters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            searches: load(&self.searches),
            upserts: load(&self.upserts),
            deletes: load(&self.deletes),
            commits: load(&self.commits),
            compactions: load(&self.compactions),
            gcs: load(&self.gcs),
            bytes_written: load(&self.bytes_written),
        }
    }
}

/// Everything [`Db::stats`](crate::Db::stats) reports: one consistent look at the handle.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// The committed version the handle's state builds on.
    pub version: Version,
    /// Versions stored (what garbage collection keeps for time travel and readers).
    pub versions_kept: usize,
    /// Live records, committed and not.
    pub records: u64,
    /// Rows still stored but deleted or superseded (compaction drops them).
    pub deleted_rows: u64,
    /// Writes not yet in a segment.
    pub memtables: MemtableStats,
    /// Every committed segment, oldest first.
    pub segments: Vec<SegmentDetails>,
    /// The segments summed by kind (flat, then Vamana; kinds without segments left out).
    pub by_kind: Vec<KindStats>,
    /// Bytes held in RAM, by part.
    pub ram: RamStats,
    /// Bytes of the current version's files: segments and deletion vectors.
    pub disk_bytes: u64,
    /// Compaction: what is planned, running and last done.
    pub compaction: CompactionStats,
    /// Running totals since the handle opened.
    pub counters: Counters,
}

/// Rows not yet written to a segment: the active memtable and pending tiers (frozen memtables
/// and ingested batches waiting for a commit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemtableStats {
    /// Live records in the active memtable.
    pub active_rows: u64,
    /// Pending tiers.
    pub pending_tiers: usize,
    /// Rows in pending tiers (deleted ones included).
    pub pending_rows: u64,
    /// Bytes all of them hold.
    pub bytes: u64,
}

/// The segments of one kind, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindStats {
    /// The kind.
    pub kind: SegmentKind,
    /// Segments of it.
    pub segments: usize,
    /// Rows, deleted ones included.
    pub rows: u64,
    /// Live rows.
    pub live_rows: u64,
    /// Bytes of their files.
    pub file_bytes: u64,
    /// Bytes they hold in RAM.
    pub ram_bytes: u64,
    /// The codes they keep in RAM (`"sq8"`, `"rabitq4"`, ...), each once.
    pub codecs: Vec<String>,
}

/// Bytes held in RAM (mapped files are the page cache's and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RamStats {
    /// Memtables: the active one and pending tiers (vectors, graphs, attributes).
    pub memtables: u64,
    /// The id index (id -> segment and row for every committed record).
    pub id_index: u64,
    /// Segments' in-memory parts: codes and their tables, id orders.
    pub segment_codes: u64,
    /// Segments' attribute columns and their indexes.
    pub attributes: u64,
    /// Deletion bitmaps.
    pub deletion_bitmaps: u64,
    /// The sum.
    pub total: u64,
}

/// Compaction state.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// Whether this handle compacts in the background.
    pub background: bool,
    /// A compaction is running now.
    pub running: bool,
    /// What the policy would merge next, if anything: the queue.
    pub planned: Option<PlannedCompaction>,
    /// The last compaction this handle published.
    pub last: Option<CompactionRun>,
    /// The error of the last compaction, while compactions keep failing before they publish.
    pub error: Option<String>,
}

/// A compaction the policy plans.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedCompaction {
    /// Segments it merges.
    pub inputs: usize,
    /// Their live rows.
    pub live_rows: u64,
    /// The kind of its output.
    pub output: SegmentKind,
}

/// A compaction that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionRun {
    /// Segments it merged.
    pub inputs: usize,
    /// Rows of its output.
    pub output_rows: u64,
    /// The kind of its output.
    pub output: SegmentKind,
    /// From its start to its publish.
    pub duration: Duration,
    /// When it published.
    pub finished: SystemTime,
}
