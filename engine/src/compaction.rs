//! Compaction policy: a pure function from the segments of a version and the settings to a plan.
//! The engine's worker carries plans out (see `Db::compact`); policies never touch storage.

use std::fmt;

pub use strata_manifest::SegmentKind;

/// What a policy sees of one committed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub kind: SegmentKind,
    /// Rows in the segment's files.
    pub rows: u64,
    /// Rows not deleted (as of the last commit).
    pub live_rows: u64,
}

impl SegmentInfo {
    /// Deleted rows over all rows.
    pub fn deleted_fraction(&self) -> f64 {
        if self.rows == 0 { 0.0 } else { (self.rows - self.live_rows) as f64 / self.rows as f64 }
    }
}

/// A segment as `Db::segment_details` describes it: the policy's view, plus its storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDetails {
    pub info: SegmentInfo,
    /// Rows deleted since the last commit too (the policy sees only committed deletes).
    pub live_rows_now: u64,
    /// Bytes of its file.
    pub file_bytes: u64,
    /// Bytes it holds in RAM (a Vamana segment's codes; the mapped file is not counted).
    pub ram_bytes: u64,
    /// The in-RAM codes, e.g. `"sq8"` or `"rpq32"`; none for a plain flat segment.
    pub codes: Option<String>,
}

/// The settings a policy plans with (from [`Options`](crate::Options)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicySettings {
    /// Segments of a similar size that trigger a merge.
    pub threshold: usize,
    /// Outputs with at least this many live rows become Vamana segments; smaller ones are flat.
    pub diskann_min_rows: u64,
    /// A segment with more than this fraction of its rows deleted is rewritten alone.
    pub deleted_rewrite_fraction: f64,
    /// Most rows one merge may hold (the build's memory budget over its bytes per row).
    pub max_merge_rows: u64,
}

/// One compaction: merge `inputs` (segment ids) into one segment of kind `output`, dropping
/// deleted rows. A single input is a rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub inputs: Vec<u64>,
    pub output: SegmentKind,
}

/// Decides what to compact. Must be pure and cheap: it runs after every commit.
pub trait CompactionPolicy: Send + Sync + fmt::Debug {
    /// The next compaction for `segments` (oldest first), if any.
    fn plan(&self, segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan>;
}

/// The output kind for `live_rows` merged rows.
pub fn output_kind(live_rows: u64, settings: &PolicySettings) -> SegmentKind {
    if live_rows >= settings.diskann_min_rows { SegmentKind::Vamana } else { SegmentKind::Flat }
}

/// Size-tiered compaction (the default): segments are bucketed by live size, each bucket
/// holding sizes within a factor [`BUCKET_RATIO`](Self::BUCKET_RATIO) of its smallest, and
/// everything under [`SMALL_ROWS`](Self::SMALL_ROWS) sharing the first bucket. When a bucket
/// holds `threshold` segments, the smallest such bucket merges (up to
/// [`MAX_MERGE_FACTOR`](Self::MAX_MERGE_FACTOR) times `threshold` of its smallest at once, so
/// a worker that fell behind catches up in one merge). Each row is rewritten about
/// log_threshold(n) times and the segment count stays near `threshold - 1` per power of
/// `threshold`. A segment past the deleted fraction is rewritten first.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeTiered;

impl SizeTiered {
    /// Segments whose live sizes are within this factor share a bucket.
    pub const BUCKET_RATIO: f64 = 2.0;
    /// Segments this small always share the first bucket: merging them is cheap.
    pub const SMALL_ROWS: u64 = 2048;
    /// A merge takes at most this many times `threshold` segments.
    pub const MAX_MERGE_FACTOR: usize = 4;
}

impl CompactionPolicy for SizeTiered {
    fn plan(&self, segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan> {
        let threshold = settings.threshold.max(2);
        // Rewrites first: the most deleted segment past the limit.
        let rewrite = segments
            .iter()
            .filter(|s| s.live_rows > 0 && s.live_rows <= settings.max_merge_rows)
            .filter(|s| s.deleted_fraction() > settings.deleted_rewrite_fraction)
            .max_by(|a, b| a.deleted_fraction().total_cmp(&b.deleted_fraction()));
        if let Some(segment) = rewrite {
            return Some(Plan {
                inputs: vec![segment.id],
                output: output_kind(segment.live_rows, settings),
            });
        }
        let mut by_size: Vec<&SegmentInfo> = segments.iter().collect();
        by_size.sort_by_key(|s| (s.live_rows, s.id));
        let mut start = 0;
        while start < by_size.len() {
            let floor = by_size[start].live_rows.max(Self::SMALL_ROWS) as f64;
            let end = start
                + by_size[start..]
                    .iter()
                    .take_while(|s| (s.live_rows as f64) < floor * Self::BUCKET_RATIO)
                    .count()
                    .max(1);
            if end - start >= threshold {
                let take = (end - start).min(threshold * Self::MAX_MERGE_FACTOR);
                let mut inputs = Vec::with_capacity(take);
                let mut rows = 0u64;
                for s in &by_size[start..start + take] {
                    if rows + s.live_rows > settings.max_merge_rows && inputs.len() >= 2 {
                        break;
                    }
                    rows += s.live_rows;
                    inputs.push(s.id);
                }
                if inputs.len() >= 2 && rows <= settings.max_merge_rows {
                    inputs.sort_unstable();
                    return Some(Plan { inputs, output: output_kind(rows, settings) });
                }
            }
            start = end;
        }
        None
    }
}

/// Never compacts (for tests, or an application that compacts by hand with its own policy).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCompaction;

impl CompactionPolicy for NoCompaction {
    fn plan(&self, _: &[SegmentInfo], _: &PolicySettings) -> Option<Plan> {
        None
    }
}

/// Merges every segment into one whenever there are two or more, or one with deletes (for
/// tests, and for a full compaction before a read-mostly phase); past the build memory
/// budget, as many of the smallest as fit.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompactAll;

impl CompactionPolicy for CompactAll {
    fn plan(&self, segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan> {
        let mut by_size: Vec<&SegmentInfo> = segments.iter().collect();
        by_size.sort_by_key(|s| (s.live_rows, s.id));
        let mut rows = 0u64;
        let fitting: Vec<&SegmentInfo> = by_size
            .into_iter()
            .take_while(|s| {
                rows += s.live_rows;
                rows <= settings.max_merge_rows
            })
            .collect();
        let rows: u64 = fitting.iter().map(|s| s.live_rows).sum();
        let needed = fitting.len() >= 2 || fitting.iter().any(|s| s.live_rows < s.rows);
        if !needed {
            return None;
        }
        let mut inputs: Vec<u64> = fitting.iter().map(|s| s.id).collect();
        inputs.sort_unstable();
        Some(Plan { inputs, output: output_kind(rows, settings) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PolicySettings {
        PolicySettings {
            threshold: 4,
            diskann_min_rows: 10_000,
            deleted_rewrite_fraction: 0.3,
            max_merge_rows: u64::MAX,
        }
    }

    fn flat(id: u64, rows: u64) -> SegmentInfo {
        SegmentInfo { id, kind: SegmentKind::Flat, rows, live_rows: rows }
    }

    #[test]
    fn merges_a_full_bucket_of_similar_sizes_and_nothing_less() {
        let s = settings();
        let three: Vec<_> = (0..3).map(|i| flat(i, 1000)).collect();
        assert_eq!(SizeTiered.plan(&three, &s), None);
        let mut four = three.clone();
        four.push(flat(7, 1200));
        let plan = SizeTiered.plan(&four, &s).unwrap();
        assert_eq!(plan, Plan { inputs: vec![0, 1, 2, 7], output: SegmentKind::Flat });
        // A big segment does not join the small bucket.
        let mut mixed = three;
        mixed.push(flat(9, 50_000));
        assert_eq!(SizeTiered.plan(&mixed, &s), None);
    }

    #[test]
    fn large_outputs_are_vamana_and_the_smallest_bucket_goes_first() {
        let s = settings();
        let mut segments: Vec<_> = (0..4).map(|i| flat(i, 5000)).collect();
        segments.extend((10..14).map(|i| flat(i, 1000)));
        let plan = SizeTiered.plan(&segments, &s).unwrap();
        assert_eq!(plan.inputs, [10, 11, 12, 13]);
        let plan = SizeTiered.plan(&segments[..4], &s).unwrap();
        assert_eq!(plan, Plan { inputs: vec![0, 1, 2, 3], output: SegmentKind::Vamana });
    }

    #[test]
    fn a_mostly_deleted_segment_is_rewritten_first() {
        let s = settings();
        let mut segments: Vec<_> = (0..4).map(|i| flat(i, 1000)).collect();
        segments.push(SegmentInfo {
            id: 5,
            kind: SegmentKind::Vamana,
            rows: 20_000,
            live_rows: 9000,
        });
        let plan = SizeTiered.plan(&segments, &s).unwrap();
        assert_eq!(plan, Plan { inputs: vec![5], output: SegmentKind::Flat });
    }

    #[test]
    fn a_backlog_merges_at_once_up_to_a_limit() {
        let s = settings();
        let backlog: Vec<_> = (0..40).map(|i| flat(i, 1000)).collect();
        let plan = SizeTiered.plan(&backlog, &s).unwrap();
        assert_eq!(plan.inputs, (0..16).collect::<Vec<_>>());
        assert_eq!(plan.output, SegmentKind::Vamana);
    }

    #[test]
    fn merges_respect_the_row_budget() {
        let s = PolicySettings { max_merge_rows: 2500, ..settings() };
        let segments: Vec<_> = (0..4).map(|i| flat(i, 1000)).collect();
        assert_eq!(SizeTiered.plan(&segments, &s).unwrap().inputs, [0, 1]);
        let s = PolicySettings { max_merge_rows: 1500, ..settings() };
        assert_eq!(SizeTiered.plan(&segments, &s), None);
    }

    /// Simulates 1,000 commits of one small segment each, compacting to a fixed point after
    /// each: the segment count stays logarithmic.
    #[test]
    fn segment_count_stays_bounded_under_steady_commits() {
        let s = settings();
        let mut segments = Vec::new();
        let mut next = 0;
        let mut most = 0;
        for _ in 0..1000 {
            segments.push(flat(next, 1000));
            next += 1;
            while let Some(plan) = SizeTiered.plan(&segments, &s) {
                let rows: u64 = segments
                    .iter()
                    .filter(|x| plan.inputs.contains(&x.id))
                    .map(|x| x.live_rows)
                    .sum();
                segments.retain(|x| !plan.inputs.contains(&x.id));
                segments.push(SegmentInfo { id: next, kind: plan.output, rows, live_rows: rows });
                next += 1;
            }
            most = most.max(segments.len());
        }
        let total: u64 = segments.iter().map(|x| x.live_rows).sum();
        assert_eq!(total, 1_000_000);
        assert!(most <= 3 * 6 + 1, "{most} segments at most");
    }

    #[test]
    fn rewrites_and_full_merges_respect_the_row_budget() {
        let s = PolicySettings { max_merge_rows: 5000, ..settings() };
        let big = SegmentInfo { id: 1, kind: SegmentKind::Vamana, rows: 20_000, live_rows: 9000 };
        assert_eq!(SizeTiered.plan(&[big], &s), None, "a rewrite past the budget waits");
        let all = [flat(1, 3000), flat(2, 1500), flat(3, 9000)];
        assert_eq!(CompactAll.plan(&all, &s).unwrap().inputs, [1, 2]);
    }

    #[test]
    fn compact_all_and_no_compaction() {
        let s = settings();
        let one = [flat(3, 100)];
        assert_eq!(CompactAll.plan(&one, &s), None);
        let deleted = [SegmentInfo { live_rows: 50, ..flat(3, 100) }];
        assert_eq!(CompactAll.plan(&deleted, &s).unwrap().inputs, [3]);
        let two = [flat(1, 100), flat(2, 20_000)];
        assert_eq!(
            CompactAll.plan(&two, &s),
            Some(Plan { inputs: vec![1, 2], output: SegmentKind::Vamana })
        );
        assert_eq!(NoCompaction.plan(&two, &s), None);
    }
}
