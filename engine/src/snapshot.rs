//! `Snapshot`: one committed version, searched, read and scanned while writers go on (the way
//! a redb or fjall read transaction reads), and time travel to an older version.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use strata_attributes::{Attributes, Schema};
use strata_manifest::{DeletionVector, Manifest};
use strata_memtable::{Memtable, Params, validate_vector};
use strata_quantize::{Metric, Neighbor};
use strata_storage::Storage;

use crate::bitmap::AtomicBitmap;
use crate::db::Version;
use crate::parallel::{Pool, search_batch};
use crate::segment::Segment;
use crate::stats::Tally;
use crate::tiers::{self, LiveSegment};
use crate::{Options, Result, SearchParams};

/// One committed version of a database, pinned: searches, point reads and scans all see
/// exactly its records, whatever writers, commits, compactions and garbage collection do
/// meanwhile. Uncommitted writes of the writer handle are not part of it (as a read
/// transaction does not see an open write transaction).
///
/// From [`Db::snapshot`](crate::Db::snapshot) (the handle's current version),
/// [`Db::snapshot_at`](crate::Db::snapshot_at), or [`Db::open_at`](crate::Db::open_at) (time
/// travel without a handle). Cheap to clone (an `Arc`); `Send + Sync`. Taking one copies each
/// segment's committed deletion bits (a bit per row) and holds its segments open: while it
/// lives, the writer's garbage collection spares their files, so drop snapshots you are done
/// with.
///
/// ```
/// use strata::{Db, Metric, Options};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
/// db.upsert(1, &[1.0, 0.0])?;
/// db.commit()?;
/// let snapshot = db.snapshot();
/// db.delete(1)?;
/// db.commit()?;
/// assert!(snapshot.contains(1)?); // still there in the pinned version
/// assert_eq!(snapshot.search(&[1.0, 0.0], 1)?[0].id, 1);
/// assert!(!db.contains(1));
/// # Ok::<(), strata::Error>(())
/// ```
#[derive(Clone)]
pub struct Snapshot {
    tiers: Arc<tiers::Snapshot>,
    options: Arc<Options>,
    pool: Pool,
    /// The handle's running totals (searches count there), or its own.
    tally: Arc<Tally>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version())
            .field("segments", &self.tiers.segments.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// One live record, as [`Snapshot::scan`] yields it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The record's id.
    pub id: u64,
    /// Its vector (normalized, under cosine).
    pub vector: Vec<f32>,
    /// Its attributes and payload (empty for a record written without any).
    pub attributes: Attributes,
}

impl Snapshot {
    /// A snapshot of `manifest`'s version over `segments` (opened for it; their committed
    /// deletion vectors are that version's).
    pub(crate) fn new(
        manifest: Arc<Manifest>,
        segments: &[Arc<LiveSegment>],
        options: Options,
        pool: Pool,
        tally: Arc<Tally>,
    ) -> Result<Snapshot> {
        let segments = segments
            .iter()
            .map(|live| {
                Arc::new(LiveSegment {
                    record: live.record.clone(),
                    segment: Arc::clone(&live.segment),
                    // Private bits: the writer's deletes after this version never reach them.
                    deleted: Arc::new(AtomicBitmap::from_deletion_vector(&live.committed)),
                    committed: Arc::clone(&live.committed),
                })
            })
            .collect();
        // Searches go through the tiers' code, which reads an active memtable: an empty one
        // (it allocates its rows on first insert, and none ever comes).
        let active = Arc::new(Memtable::new(options.dim, options.metric, Params::default())?);
        let tiers = tiers::Snapshot { manifest, active, pending: Vec::new(), segments };
        Ok(Snapshot { tiers: Arc::new(tiers), options: Arc::new(options), pool, tally })
    }

    /// Opens version `manifest` of the database in `storage` on its own (time travel).
    pub(crate) fn load(
        storage: Arc<dyn Storage>,
        manifest: Manifest,
        pool: Pool,
    ) -> Result<Snapshot> {
        let options = Options::from_stored(&manifest.options)?;
        let segments = open_segments(&*storage, &manifest, &[], &options)?;
        Snapshot::new(Arc::new(manifest), &segments, options, pool, Arc::default())
    }

    /// The version it pins.
    pub fn version(&self) -> Version {
        Version(self.tiers.manifest.version)
    }

    /// When that version was committed.
    pub fn committed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.tiers.manifest.committed_at_ms)
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.options.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.options.metric
    }

    /// The options the database was created with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Live records in this version.
    pub fn len(&self) -> usize {
        self.tiers
            .segments
            .iter()
            .map(|s| (s.committed.rows() - s.committed.deleted()) as usize)
            .sum()
    }

    /// True when the version holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` nearest records to `query`, nearest first, at default effort.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>> {
        self.search_with(query, SearchParams::new(k))
    }

    /// The nearest records to `query` under `params` (as [`Db::search_with`](crate::Db::search_with)).
    pub fn search_with(&self, query: &[f32], params: SearchParams) -> Result<Vec<Neighbor>> {
        validate_vector(self.options.dim, self.options.metric, query)?;
        let predicate = params.predicate(&self.options.attributes)?;
        Tally::add(&self.tally.searches, 1);
        self.tiers.search(query, &params, predicate.as_ref())
    }

    /// Every query of `queries` (`dim` floats each, one after the other) under `params`, on
    /// the handle's thread pool; result `i` is query `i`'s (as
    /// [`Db::search_batch`](crate::Db::search_batch)).
    pub fn search_batch(
        &self,
        queries: &[f32],
        params: SearchParams,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let predicate = params.predicate(&self.options.attributes)?;
        let (dim, metric) = (self.options.dim, self.options.metric);
        let hits = search_batch(&self.pool, dim, metric, queries, |query| {
            self.tiers.search(query, &params, predicate.as_ref())
        })?;
        Tally::add(&self.tally.searches, hits.len() as u64);
        Ok(hits)
    }

    /// The vector of record `id` in this version, if it exists there.
    pub fn get(&self, id: u64) -> Result<Option<Vec<f32>>> {
        match self.locate(id) {
            Some((live, row)) => Ok(Some(live.segment.vector(row)?.to_vec())),
            None => Ok(None),
        }
    }

    /// The vectors of `ids`, in order (`None` where an id is not in this version).
    pub fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Vec<f32>>>> {
        ids.iter().map(|&id| self.get(id)).collect()
    }

    /// The attributes and payload of record `id`, if it exists in this version.
    pub fn get_attributes(&self, id: u64) -> Result<Option<Attributes>> {
        match self.locate(id) {
            Some((live, row)) => {
                Ok(Some(live.segment.record(row)?.to_attributes(&self.options.attributes)))
            }
            None => Ok(None),
        }
    }

    /// Whether record `id` exists in this version (no vector is read).
    pub fn contains(&self, id: u64) -> Result<bool> {
        Ok(self.locate(id).is_some())
    }

    /// Every live record of this version, streamed: segment by segment (oldest first), rows in
    /// file order. The order is the same each time the same version is scanned. Reads one
    /// vector at a time (mapped, or a sector read for a Vamana segment); the iterator owns
    /// what it reads, so it may outlive the snapshot and move between threads.
    pub fn scan(&self) -> Scan {
        Scan {
            tiers: Arc::clone(&self.tiers),
            schema: self.options.attributes.clone(),
            segment: 0,
            row: 0,
        }
    }

    /// The segment and row that hold `id` in this version. A version holds each id in at most
    /// one live row: a commit that writes a new version of a record deletes the old row in the
    /// same version.
    fn locate(&self, id: u64) -> Option<(&LiveSegment, u32)> {
        self.tiers.segments.iter().rev().find_map(|live| {
            let row = live.segment.rows_with_id(id).find(|&row| !live.deleted.contains(row))?;
            Some((&**live, row))
        })
    }
}

/// The iterator of [`Snapshot::scan`]: `Ok(entry)` per live record; an `Err` (a damaged
/// sector, say) ends it.
pub struct Scan {
    tiers: Arc<tiers::Snapshot>,
    schema: Schema,
    segment: usize,
    row: u32,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan").field("segment", &self.segment).field("row", &self.row).finish()
    }
}

impl Iterator for Scan {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        loop {
            let live = self.tiers.segments.get(self.segment)?;
            let rows = live.segment.rows();
            if u64::from(self.row) >= rows {
                self.segment += 1;
                self.row = 0;
                continue;
            }
            let row = self.row;
            self.row += 1;
            if live.deleted.contains(row) {
                continue;
            }
            let entry = read_entry(&live.segment, row, &self.schema);
            if entry.is_err() {
                self.segment = self.tiers.segments.len();
            }
            return Some(entry);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left: u64 =
            self.tiers.segments.iter().skip(self.segment).map(|s| s.segment.rows()).sum();
        (0, usize::try_from(left).ok())
    }
}

fn read_entry(segment: &Segment, row: u32, schema: &Schema) -> Result<Entry> {
    let vector = segment.vector(row)?.to_vec();
    let attributes = if segment.has_attributes() {
        segment.record(row)?.to_attributes(schema)
    } else {
        Attributes::default()
    };
    Ok(Entry { id: segment.id(row), vector, attributes })
}

/// Opens every segment of `manifest`, reusing those in `reuse` that are the same files (and
/// their committed deletion vectors, when unchanged), reading the deletion vectors of the rest.
/// Reads no vector block.
pub(crate) fn open_segments(
    storage: &dyn Storage,
    manifest: &Manifest,
    reuse: &[Arc<LiveSegment>],
    options: &Options,
) -> Result<Vec<Arc<LiveSegment>>> {
    let mut segments = Vec::with_capacity(manifest.segments.len());
    for record in &manifest.segments {
        let reused = reuse
            .iter()
            .find(|live| live.record.id == record.id && live.record.files == record.files);
        let segment = match reused {
            Some(live) => Arc::clone(&live.segment),
            None => Arc::new(Segment::open(
                storage,
                record,
                options.dim,
                options.metric,
                &options.attributes,
            )?),
        };
        let (deleted, committed) = match reused {
            Some(live) if live.record.deletes == record.deletes => {
                (Arc::clone(&live.deleted), Arc::clone(&live.committed))
            }
            _ => {
                let deletes: DeletionVector = strata_manifest::read_deletes(storage, record)?;
                (Arc::new(AtomicBitmap::from_deletion_vector(&deletes)), Arc::new(deletes))
            }
        };
        let record = record.clone();
        segments.push(Arc::new(LiveSegment { record, segment, deleted, committed }));
    }
    Ok(segments)
}
