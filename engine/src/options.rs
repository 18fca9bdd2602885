//! Database options (fixed at create time and stored in the manifest) and search parameters.

use std::time::Duration;

use strata_attributes::{AttrType, AttributeError, Schema};
use strata_manifest::{CompactionSettings as Stored, StoredColumn, StoredOptions};
use strata_memtable::MAX_ROWS;
use strata_quantize::{CodecKind, Metric};

use strata_segment_diskann::BuildOptions;

use crate::compaction::PolicySettings;
use crate::{Error, Result};

/// How a database is created. Stored in its manifest: every later open uses the same values.
///
/// ```
/// use strata::{Metric, Options};
/// let options = Options::new(768, Metric::Cosine).hnsw_m(24).keep_versions(5);
/// assert_eq!(options.dim(), 768);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub(crate) dim: usize,
    pub(crate) metric: Metric,
    pub(crate) hnsw_m: usize,
    pub(crate) hnsw_ef_construction: usize,
    pub(crate) keep_versions: u32,
    pub(crate) keep_for: Duration,
    pub(crate) compaction_threshold: usize,
    pub(crate) diskann_min_rows: u64,
    pub(crate) deleted_rewrite_permille: u16,
    pub(crate) vamana_codec: Option<CodecKind>,
    /// `None`: the Vamana build's default for the dimension.
    pub(crate) vamana_max_degree: Option<usize>,
    pub(crate) compaction_memory_mib: u32,
    pub(crate) auto_flush_bytes: Option<u64>,
    pub(crate) background_compaction: bool,
    pub(crate) attributes: Schema,
}

const DEFAULT_THRESHOLD: usize = 4;
const DEFAULT_DISKANN_MIN_ROWS: u64 = 2048;
const DEFAULT_DELETED_REWRITE_PERMILLE: u16 = 300;
const DEFAULT_COMPACTION_MEMORY_MIB: u32 = 2048;
const DEFAULT_AUTO_FLUSH_BYTES: u64 = 256 << 20;

/// Vamana segments smaller than this keep SQ8 codes unless a codec is configured.
pub(crate) const SQ8_BELOW_ROWS: u64 = 32_768;

impl Options {
    /// Options for `dim`-dimensional vectors compared by `metric`, with every other setting at
    /// its default.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Options {
            dim,
            metric,
            hnsw_m: 16,
            hnsw_ef_construction: 200,
            keep_versions: 10,
            keep_for: Duration::ZERO,
            compaction_threshold: DEFAULT_THRESHOLD,
            diskann_min_rows: DEFAULT_DISKANN_MIN_ROWS,
            deleted_rewrite_permille: DEFAULT_DELETED_REWRITE_PERMILLE,
            vamana_codec: None,
            vamana_max_degree: None,
            compaction_memory_mib: DEFAULT_COMPACTION_MEMORY_MIB,
            auto_flush_bytes: Some(DEFAULT_AUTO_FLUSH_BYTES),
            background_compaction: true,
            attributes: Schema::new(),
        }
    }

    /// The attribute columns every record may carry (each optional per record; records may
    /// also carry an opaque payload without any). Stored in the manifest: a database opened
    /// later keeps them. Default: none.
    ///
    /// ```
    /// use strata::{Metric, Options, Schema};
    /// let options = Options::new(4, Metric::L2).attributes(Schema::new().u64("ts").keyword("lang"));
    /// assert_eq!(options.schema().len(), 2);
    /// ```
    pub fn attributes(mut self, schema: Schema) -> Self {
        self.attributes = schema;
        self
    }

    /// The attribute schema.
    pub fn schema(&self) -> &Schema {
        &self.attributes
    }

    /// HNSW links per node in the memtable (level 0 keeps twice as many). Default 16.
    #[must_use]
    pub fn hnsw_m(mut self, m: usize) -> Self {
        self.hnsw_m = m;
        self
    }

    /// HNSW candidate list size while inserting into the memtable. Default 200.
    #[must_use]
    pub fn hnsw_ef_construction(mut self, ef: usize) -> Self {
        self.hnsw_ef_construction = ef;
        self
    }

    /// Retention: garbage collection keeps the newest `n` versions (at least 1). Default 10.
    #[must_use]
    pub fn keep_versions(mut self, n: u32) -> Self {
        self.keep_versions = n;
        self
    }

    /// Retention: garbage collection also keeps every version committed within `age` of the
    /// moment it runs (stored in whole seconds, rounded up). Default zero (count-based
    /// retention only).
    #[must_use]
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.keep_for = age;
        self
    }

    /// Compaction: how many segments of a similar size accumulate before a background merge
    /// combines them (size-tiered). Lower keeps fewer segments (faster searches) at the cost of
    /// rewriting rows more often. Default 4; at least 2.
    #[must_use]
    pub fn compaction_threshold(mut self, segments: usize) -> Self {
        self.compaction_threshold = segments;
        self
    }

    /// Compaction: merged outputs with at least this many live rows become Vamana (DiskANN)
    /// segments, with quantized codes in RAM and vectors on disk; smaller ones stay flat
    /// (exact scans). Default 2,048: a flat scan of more rows costs more than a Vamana search
    /// (measured at 128-d, docs/BENCHMARKS.md). At least 256.
    #[must_use]
    pub fn diskann_min_rows(mut self, rows: u64) -> Self {
        self.diskann_min_rows = rows;
        self
    }

    /// Compaction: a segment with more than this fraction of its rows deleted is rewritten
    /// without them. Default 0.3; in `(0, 1]` (1 never rewrites).
    #[must_use]
    pub fn deleted_rewrite_fraction(mut self, fraction: f64) -> Self {
        self.deleted_rewrite_permille = (fraction.clamp(0.0, 1.0) * 1000.0).round() as u16;
        self
    }

    /// The codes Vamana segments keep in RAM: RaBitQ (`CodecKind::RaBitQ { bits }`, `bits` per
    /// coordinate of the dimension rounded up to 64, plus 16 bytes, 8 for 1 bit; the default
    /// from 32,768 rows takes 4 bits, 2 from 512 dimensions), residual PQ (`CodecKind::Rpq`),
    /// PQ, SQ8 (`dim` bytes, the default below 32,768 rows) or INT4 (`dim / 2`). Finer codes
    /// need fewer disk reads per query and more RAM.
    #[must_use]
    pub fn vamana_codec(mut self, codec: CodecKind) -> Self {
        self.vamana_codec = Some(codec);
        self
    }

    /// R, the neighbours each Vamana node keeps. Default 64, or 48 from 512 dimensions (with a
    /// build list of 48: faster builds and searches measured on 768-d data); between 8 and 512.
    #[must_use]
    pub fn vamana_max_degree(mut self, degree: usize) -> Self {
        self.vamana_max_degree = Some(degree);
        self
    }

    /// Memory one compaction's build may hold; merges are sized to fit. Default 2 GiB; at
    /// least 64 MiB (rounded down to whole MiB).
    #[must_use]
    pub fn compaction_memory_budget(mut self, bytes: u64) -> Self {
        self.compaction_memory_mib = (bytes >> 20).min(u64::from(u32::MAX)) as u32;
        self
    }

    /// Automatic flush: once the memtables hold more than `bytes`, the engine commits by
    /// itself (in the background; a writer that gets twice as far ahead commits in its own
    /// thread), so an application that never commits does not run out of memory. Writes are
    /// then durable earlier than the application's next `commit`, and a group of writes may be
    /// split across two versions. `None` turns it off. Default 256 MiB.
    #[must_use]
    pub fn auto_flush_bytes(mut self, bytes: Option<u64>) -> Self {
        self.auto_flush_bytes = bytes;
        self
    }

    /// Whether a background thread compacts after commits. Off, compaction runs only when
    /// the application calls `Db::compact`. Default on.
    #[must_use]
    pub fn background_compaction(mut self, on: bool) -> Self {
        self.background_compaction = on;
        self
    }

    /// Whether a background thread compacts after commits (see
    /// [`background_compaction`](Self::background_compaction)).
    pub fn compacts_in_background(&self) -> bool {
        self.background_compaction
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |name, reason| Err(Error::InvalidOption { name, reason });
        if self.dim == 0 || self.dim > u32::MAX as usize / 4 {
            return invalid("dim", "must be between 1 and 2^30 - 1");
        }
        if !(2..=256).contains(&self.hnsw_m) {
            return invalid("hnsw_m", "must be between 2 and 256");
        }
        if self.hnsw_ef_construction == 0 || self.hnsw_ef_construction > u32::MAX as usize {
            return invalid("hnsw_ef_construction", "must be positive");
        }
        if self.keep_versions == 0 {
            return invalid("keep_versions", "must be at least 1");
        }
        if !(2..=u32::MAX as usize).contains(&self.compaction_threshold) {
            return invalid("compaction_threshold", "must be at least 2");
        }
        if self.diskann_min_rows < 256 {
            return invalid("diskann_min_rows", "must be at least 256");
        }
        if self.deleted_rewrite_permille == 0 {
            return invalid("deleted_rewrite_fraction", "must be above 0");
        }
        if self.vamana_max_degree.is_some_and(|r| !(8..=512).contains(&r)) {
            return invalid("vamana_max_degree", "must be between 8 and 512");
        }
        if self.compaction_memory_mib < 64 {
            return invalid("compaction_memory_budget", "must be at least 64 MiB");
        }
        if self.auto_flush_bytes.is_some_and(|b| b < 1 << 20) {
            return invalid("auto_flush_bytes", "must be at least 1 MiB");
        }
        self.attributes.validate()?;
        match self.vamana_codec {
            Some(CodecKind::Pq { subspaces } | CodecKind::Rpq { subspaces })
                if subspaces == 0 || subspaces > self.dim || subspaces > usize::from(u16::MAX) =>
            {
                invalid("vamana_codec", "sub-spaces must be between 1 and dim")
            }
            Some(CodecKind::RaBitQ { bits }) if !(1..=8).contains(&bits) => {
                invalid("vamana_codec", "RaBitQ takes 1 to 8 bits per coordinate")
            }
            _ => Ok(()),
        }
    }

    /// What the manifest stores.
    pub(crate) fn to_stored(&self) -> StoredOptions {
        let (codec, param) = match self.vamana_codec {
            None => (0, 0),
            Some(kind @ (CodecKind::Pq { subspaces } | CodecKind::Rpq { subspaces })) => {
                (kind.code(), subspaces as u16)
            }
            Some(kind @ CodecKind::RaBitQ { bits }) => (kind.code(), u16::from(bits)),
            Some(kind) => (kind.code(), 0),
        };
        let mut flags = 0;
        if !self.background_compaction {
            flags |= Stored::COMPACTION_OFF;
        }
        if self.auto_flush_bytes.is_none() {
            flags |= Stored::AUTO_FLUSH_OFF;
        }
        StoredOptions {
            dim: self.dim as u32,
            metric: self.metric.code(),
            hnsw_m: self.hnsw_m as u32,
            hnsw_ef_construction: self.hnsw_ef_construction as u32,
            keep_versions: self.keep_versions,
            keep_for_secs: self.keep_for.as_secs() + u64::from(self.keep_for.subsec_nanos() > 0),
            compaction: Stored {
                threshold: self.compaction_threshold as u32,
                deleted_rewrite_permille: self.deleted_rewrite_permille,
                diskann_min_rows: self.diskann_min_rows,
                vamana_max_degree: self.vamana_max_degree.unwrap_or(0) as u16,
                vamana_codec: codec,
                vamana_codec_param: param,
                memory_mib: self.compaction_memory_mib,
                auto_flush_bytes: self.auto_flush_bytes.unwrap_or(0),
                flags,
            },
            attributes: self
                .attributes
                .columns()
                .iter()
                .map(|c| StoredColumn { name: c.name.clone(), type_code: c.ty.code() })
                .collect(),
        }
    }

    /// The options a manifest stores; zero compaction fields take today's defaults.
    pub(crate) fn from_stored(stored: &StoredOptions) -> Result<Options> {
        let metric =
            Metric::from_code(stored.metric).ok_or(Error::UnknownMetric { code: stored.metric })?;
        let c = &stored.compaction;
        let or = |value: u64, default: u64| if value == 0 { default } else { value };
        let param = usize::from(c.vamana_codec_param);
        let vamana_codec = match c.vamana_codec {
            0 => None,
            1 => Some(CodecKind::Sq8),
            2 => Some(CodecKind::Int4),
            3 => Some(CodecKind::Pq { subspaces: param }),
            4 => Some(CodecKind::Rpq { subspaces: param }),
            5 => match u8::try_from(param) {
                Ok(bits @ 1..=8) => Some(CodecKind::RaBitQ { bits }),
                _ => return Err(Error::UnknownCodec { code: 5 }),
            },
            code => return Err(Error::UnknownCodec { code }),
        };
        let options = Options {
            dim: stored.dim as usize,
            metric,
            hnsw_m: stored.hnsw_m as usize,
            hnsw_ef_construction: stored.hnsw_ef_construction as usize,
            keep_versions: stored.keep_versions,
            keep_for: Duration::from_secs(stored.keep_for_secs),
            compaction_threshold: or(c.threshold.into(), DEFAULT_THRESHOLD as u64) as usize,
            diskann_min_rows: or(c.diskann_min_rows, DEFAULT_DISKANN_MIN_ROWS),
            deleted_rewrite_permille: or(
                c.deleted_rewrite_permille.into(),
                DEFAULT_DELETED_REWRITE_PERMILLE.into(),
            ) as u16,
            vamana_codec,
            vamana_max_degree: (c.vamana_max_degree > 0).then_some(c.vamana_max_degree.into()),
            compaction_memory_mib: or(c.memory_mib.into(), DEFAULT_COMPACTION_MEMORY_MIB.into())
                as u32,
            auto_flush_bytes: (c.flags & Stored::AUTO_FLUSH_OFF == 0)
                .then(|| or(c.auto_flush_bytes, DEFAULT_AUTO_FLUSH_BYTES)),
            background_compaction: c.flags & Stored::COMPACTION_OFF == 0,
            attributes: {
                let mut schema = Schema::new();
                for column in &stored.attributes {
                    let ty = AttrType::from_code(column.type_code).ok_or_else(|| {
                        AttributeError::Schema(format!(
                            "column {:?} has type code {}, unknown to this build",
                            column.name, column.type_code
                        ))
                    })?;
                    schema = schema.with(column.name.clone(), ty);
                }
                schema.validate()?;
                schema
            },
        };
        Ok(options)
    }

    /// What a compaction policy plans with under these options.
    pub fn policy_settings(&self) -> PolicySettings {
        PolicySettings {
            threshold: self.compaction_threshold,
            diskann_min_rows: self.diskann_min_rows,
            deleted_rewrite_fraction: f64::from(self.deleted_rewrite_permille) / 1000.0,
            max_merge_rows: self.max_build_rows(),
        }
    }

    /// The most rows a Vamana build holds within the compaction memory budget. Peak memory is
    /// not linear in the rows (codes change at [`SQ8_BELOW_ROWS`], batch buffers grow in
    /// steps), so this searches for the largest count that fits, keeping `low` a count that
    /// does.
    fn max_build_rows(&self) -> u64 {
        let budget = u64::from(self.compaction_memory_mib) << 20;
        let fits =
            |rows: u64| self.vamana_build_options(rows).peak_memory(self.dim, rows) <= budget;
        // A segment holds at most MAX_ROWS rows (u32 row numbers): the compaction's row
        // counter and the graph's neighbour ids are u32.
        let (mut low, mut high) = (0u64, strata_segment_diskann::format::MAX_ROWS);
        if fits(high) {
            return high;
        }
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if fits(mid) { low = mid } else { high = mid }
        }
        low
    }

    /// How compactions build a Vamana segment of `rows` rows. Without a configured codec,
    /// segments under [`SQ8_BELOW_ROWS`] keep SQ8 codes: preparing a residual PQ query (its
    /// coarse and sub-space tables) costs about as much as a whole search of a small segment,
    /// and SQ8 needs none, while its extra bytes are few in a small segment.
    pub(crate) fn vamana_build_options(&self, rows: u64) -> BuildOptions {
        let mut build =
            BuildOptions::default().memory_budget(u64::from(self.compaction_memory_mib) << 20);
        if let Some(r) = self.vamana_max_degree {
            build = build.max_degree(r);
        }
        match self.vamana_codec {
            Some(codec) => build.codec(codec),
            None if rows < SQ8_BELOW_ROWS => build.codec(CodecKind::Sq8),
            None => build,
        }
    }
}

/// Most rows an active memtable takes before it is frozen into an in-memory tier and a fresh one
/// started (each graph stays fast to insert into). Well under the memtable's own limit.
pub(crate) const MEMTABLE_ROTATE_ROWS: usize =
    if MAX_ROWS / 4 < 1 << 20 { MAX_ROWS / 4 } else { 1 << 20 };

#[cfg(test)]
mod tests {
    use strata_segment_diskann::VamanaBuilder;

    /// Even a budget of 4 PiB never plans a merge past the rows a segment can number.
    #[test]
    fn the_largest_budget_stays_within_a_segments_rows() {
        let options = Options::new(4, Metric::L2).compaction_memory_budget(u64::MAX);
        let max = options.policy_settings().max_merge_rows;
        assert!(max <= strata_segment_diskann::format::MAX_ROWS, "{max}");
        assert!(max >= 1 << 31, "{max}: a huge budget allows huge merges");
    }

    use crate::compaction::{CompactionPolicy, SegmentInfo, SegmentKind, SizeTiered};
    use crate::{Metric, Options};

    fn flat(id: u64, rows: u64, live_rows: u64) -> SegmentInfo {
        SegmentInfo { id, kind: SegmentKind::Flat, rows, live_rows }
    }

    /// Every merge the policy plans within `max_merge_rows` is one the builder accepts (it once
    /// sized merges for residual-PQ codes while small outputs keep SQ8, and the builder refused).
    #[test]
    fn a_merge_within_max_merge_rows_fits_the_build_budget() {
        let mut refused = Vec::new();
        for (dim, budget_mib) in
            [(1536usize, 64u64), (1024, 128), (512, 64), (128, 64), (128, 2048)]
        {
            let options = Options::new(dim, Metric::L2).compaction_memory_budget(budget_mib << 20);
            let settings = options.policy_settings();
            let each = settings.max_merge_rows / 4;
            let segments: Vec<_> = (0..4).map(|i| flat(i, each, each)).collect();
            let plan = SizeTiered.plan(&segments, &settings).expect("a full bucket merges");
            let rows = each * 4;
            assert_eq!(plan.output, SegmentKind::Vamana);
            let mut builder =
                VamanaBuilder::new(dim, Metric::L2, options.vamana_build_options(rows)).unwrap();
            let reserved = builder.reserve(rows);
            if let Err(e) = reserved {
                refused.push(format!(
                    "dim {dim}, budget {budget_mib} MiB, max_merge_rows {}: merge of {rows} rows: {e:?}",
                    settings.max_merge_rows
                ));
            }
        }
        assert!(refused.is_empty(), "{refused:#?}");
    }

    /// A segment too big to rebuild within the budget is not planned for a rewrite.
    #[test]
    fn a_rewrite_respects_max_merge_rows() {
        let options = Options::new(128, Metric::L2).compaction_memory_budget(64 << 20);
        let settings = options.policy_settings();
        let max = settings.max_merge_rows;
        let big = flat(0, 2 * max, 2 * max * 6 / 10); // 40% deleted
        let plan = SizeTiered.plan(&[big], &settings);
        if let Some(plan) = plan {
            let rows = big.live_rows;
            let mut builder =
                VamanaBuilder::new(128, Metric::L2, options.vamana_build_options(rows)).unwrap();
            let reserved = builder.reserve(rows);
            assert!(
                reserved.is_ok(),
                "{plan:?} of {rows} live rows (max_merge_rows {max}) refused: {reserved:?}"
            );
        }
    }
}
