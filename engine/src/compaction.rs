//! Compaction policy: a pure function from the segments of a version and the settings to a plan.
//! The engine's worker carries plans out (see `Db::compact`); policies never touch storage.

use std::fmt;

pub use strata_manifest::SegmentKind;

/// What a policy sees of one committed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's id (ids grow with age).
    pub id: u64,
    /// Flat or Vamana.
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
    /// What the policy sees.
    pub info: SegmentInfo,
    /// Rows deleted since the last commit too (the policy sees only committed deletes).
    pub live_rows_now: u64,
    /// Bytes of its file.
    pub file_bytes: u64,
    /// Bytes it holds in RAM (a Vamana segment's codes, attribute columns and indexes; the
    /// mapped file is not counted).
    pub ram_bytes: u64,
    /// Of `ram_bytes`, the attribute columns and their indexes.
    pub attribute_bytes: u64,
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
    /// The segments merged (ids).
    pub inputs: Vec<u64>,
    /// The kind of segment the merge writes.
    pub output: SegmentKind,
    /// A Vamana input whose graph the output keeps: the other inputs' rows are inserted into
    /// it and its deleted rows patched out (FreshDiskANN's StreamingMerge), so the merge costs
    /// what the other rows cost. `None` builds the output's graph anew. Only for a Vamana
    /// output.
    pub into: Option<u64>,
}

impl Plan {
    /// A merge whose output is built anew.
    pub fn rebuild(mut inputs: Vec<u64>, output: SegmentKind) -> Plan {
        inputs.sort_unstable();
        Plan { inputs, output, into: None }
    }

    /// A merge of `others` into the graph of the Vamana segment `base`.
    pub fn merge_into(base: u64, others: impl IntoIterator<Item = u64>) -> Plan {
        let mut inputs: Vec<u64> = std::iter::once(base).chain(others).collect();
        inputs.sort_unstable();
        Plan { inputs, output: SegmentKind::Vamana, into: Some(base) }
    }
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

/// Size-tiered compaction around one growing graph (the default). In order:
///
/// 1. **Rewrite** the segment most past the deleted fraction (a Vamana one keeps its graph and
///    patches the deleted rows out; if step 2 would fold the tail into that graph, the fold
///    runs instead and patches them out on the way).
/// 2. **Fold** the tail into the largest graph: once the segments no larger than the largest
///    Vamana segment hold [`1 / FOLD_RATIO`](Self::FOLD_RATIO) of its rows, all of them
///    (smallest first, within the merge budget) are inserted into its graph (see
///    [`Plan::into`]). Inserting costs what the new rows cost, so a load ends in one graph
///    plus a tail under 1/64 of it, whatever its commit sizes. A tail holding as many rows as
///    the graph is built with it from scratch instead: inserting it would cost about a build,
///    and 768-d graphs grown that way (a bulk load that outran the worker, a round of 50%
///    churn) found 6-19 points less at L 16 than one build. A graph at the merge budget
///    takes no more; the next largest grows instead.
/// 3. **Merge a bucket**: segments are bucketed by live size, each bucket holding sizes within
///    a factor [`BUCKET_RATIO`](Self::BUCKET_RATIO) of its smallest, and everything under
///    [`SMALL_ROWS`](Self::SMALL_ROWS) sharing the first bucket. When a bucket holds
///    `threshold` segments, the smallest such bucket merges (up to
///    [`MAX_MERGE_FACTOR`](Self::MAX_MERGE_FACTOR) times `threshold` of its smallest at once,
///    so a worker that fell behind catches up in one merge).
/// 4. **Promote** the largest flat segment of at least `diskann_min_rows` live rows to a
///    Vamana segment, so a large commit is never left to exact scans.
///
/// Folding rewrites the largest graph's file each time the tail reaches 1/64 of it, a
/// geometric series: over a load of small commits each row's bytes are written up to about
/// `FOLD_RATIO` times (large commits far fewer), but its graph links are computed once. That
/// is the price of searching one graph instead of many; `docs/BENCHMARKS.md` has the figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeTiered;

impl SizeTiered {
    /// Segments whose live sizes are within this factor share a bucket.
    pub const BUCKET_RATIO: f64 = 2.0;
    /// Segments this small always share the first bucket: merging them is cheap.
    pub const SMALL_ROWS: u64 = 2048;
    /// A merge takes at most this many times `threshold` segments.
    pub const MAX_MERGE_FACTOR: usize = 4;
    /// The tail folds into the largest graph once it holds this fraction of its rows.
    pub const FOLD_RATIO: u64 = 64;

    /// Step 2: the tail into the largest Vamana segment that can take it.
    fn fold(segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan> {
        let mut graphs: Vec<&SegmentInfo> =
            segments.iter().filter(|s| s.kind == SegmentKind::Vamana && s.live_rows > 0).collect();
        graphs.sort_by_key(|s| (std::cmp::Reverse(s.live_rows), s.id));
        for base in graphs {
            let mut tail: Vec<&SegmentInfo> = segments
                .iter()
                .filter(|s| s.id != base.id && s.live_rows <= base.live_rows)
                .collect();
            tail.sort_by_key(|s| (s.live_rows, s.id));
            let mut rows = 0u64;
            let mut others = Vec::new();
            for s in tail {
                let total = rows + s.live_rows;
                if base.live_rows + total > settings.max_merge_rows {
                    break;
                }
                rows = total;
                others.push(s.id);
            }
            if !others.is_empty() && rows.saturating_mul(Self::FOLD_RATIO) >= base.live_rows {
                if rows >= base.live_rows {
                    // A tail as large as the graph is built with it from scratch: inserting it
                    // costs about what a build does, and at 768-d graphs grown that way (a
                    // load that outran the worker, a round of 50% churn) found 6-19 points
                    // less at L 16 than one build (BENCHMARKS.md, "Churn").
                    others.push(base.id);
                    let output = output_kind(base.live_rows + rows, settings);
                    return Some(Plan::rebuild(others, output));
                }
                return Some(Plan::merge_into(base.id, others));
            }
        }
        None
    }

    /// Step 3: the smallest full bucket.
    fn bucket(segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan> {
        let threshold = settings.threshold.max(2);
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
                for &s in &by_size[start..start + take] {
                    if rows + s.live_rows > settings.max_merge_rows && inputs.len() >= 2 {
                        break;
                    }
                    rows += s.live_rows;
                    inputs.push(s);
                }
                if inputs.len() >= 2 && rows <= settings.max_merge_rows {
                    let ids = inputs.iter().map(|s| s.id).collect();
                    return Some(Plan::rebuild(ids, output_kind(rows, settings)));
                }
            }
            start = end;
        }
        None
    }
}

impl CompactionPolicy for SizeTiered {
    fn plan(&self, segments: &[SegmentInfo], settings: &PolicySettings) -> Option<Plan> {
        let rewrite = segments
            .iter()
            .filter(|s| s.live_rows > 0 && s.live_rows <= settings.max_merge_rows)
            .filter(|s| s.deleted_fraction() > settings.deleted_rewrite_fraction)
            .max_by(|a, b| a.deleted_fraction().total_cmp(&b.deleted_fraction()));
        let fold = Self::fold(segments, settings);
        if let Some(segment) = rewrite {
            let output = output_kind(segment.live_rows, settings);
            if output == SegmentKind::Vamana && segment.kind == SegmentKind::Vamana {
                // A graph about to take the tail patches its deleted rows out in the same
                // merge: under churn (delete, commit, upsert again) one rewrite, not two.
                if let Some(fold) = fold.filter(|plan| plan.inputs.contains(&segment.id)) {
                    return Some(fold);
                }
                return Some(Plan::merge_into(segment.id, []));
            }
            return Some(Plan::rebuild(vec![segment.id], output));
        }
        if let Some(plan) = fold {
            return Some(plan);
        }
        if let Some(plan) = Self::bucket(segments, settings) {
            return Some(plan);
        }
        segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Flat && s.live_rows <= settings.max_merge_rows)
            .filter(|s| output_kind(s.live_rows, settings) == SegmentKind::Vamana)
            .max_by_key(|s| (s.live_rows, std::cmp::Reverse(s.id)))
            .map(|s| Plan::rebuild(vec![s.id], SegmentKind::Vamana))
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

/// Merges every segment into one whenever there are two or more, or one with deletes or of
/// the wrong kind for its size (for tests, and for a full compaction before a read-mostly
/// phase); past the build memory budget, as many of the smallest as fit.
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
        // Also a lone flat segment large enough to be a graph.
        let needed = fitting.len() >= 2
            || fitting.iter().any(|s| s.live_rows < s.rows)
            || fitting.iter().any(|s| s.kind != output_kind(s.live_rows, settings));
        if !needed {
            return None;
        }
        let inputs: Vec<u64> = fitting.iter().map(|s| s.id).collect();
        Some(Plan::rebuild(inputs, output_kind(rows, settings)))
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
        assert_eq!(plan, Plan::rebuild(vec![0, 1, 2, 7], SegmentKind::Flat));
        // A big segment does not join the small bucket, but is promoted to a graph.
        let mut mixed = three;
        mixed.push(flat(9, 50_000));
        assert_eq!(SizeTiered.plan(&mixed, &s), Some(Plan::rebuild(vec![9], SegmentKind::Vamana)));
    }

    #[test]
    fn large_outputs_are_vamana_and_the_smallest_bucket_goes_first() {
        let s = settings();
        let mut segments: Vec<_> = (0..4).map(|i| flat(i, 5000)).collect();
        segments.extend((10..14).map(|i| flat(i, 1000)));
        let plan = SizeTiered.plan(&segments, &s).unwrap();
        assert_eq!(plan.inputs, [10, 11, 12, 13]);
        let plan = SizeTiered.plan(&segments[..4], &s).unwrap();
        assert_eq!(plan, Plan::rebuild(vec![0, 1, 2, 3], SegmentKind::Vamana));
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
        assert_eq!(plan, Plan::rebuild(vec![5], SegmentKind::Flat));
    }

    #[test]
    fn a_mostly_deleted_graph_that_takes_the_tail_patches_and_folds_at_once() {
        let s = settings();
        let graph =
            SegmentInfo { id: 5, kind: SegmentKind::Vamana, rows: 100_000, live_rows: 50_000 };
        // Deleted, committed, not yet upserted again: a rewrite alone.
        assert_eq!(SizeTiered.plan(&[graph], &s), Some(Plan::merge_into(5, [])));
        // Some rows are back in a new segment: one merge into the graph drops the deleted
        // rows and inserts the new ones.
        let segments = [graph, flat(9, 20_000)];
        assert_eq!(SizeTiered.plan(&segments, &s), Some(Plan::merge_into(5, [9])));
        // As many as the graph keeps: built anew with them.
        let segments = [graph, flat(9, 50_000)];
        assert_eq!(
            SizeTiered.plan(&segments, &s),
            Some(Plan::rebuild(vec![5, 9], SegmentKind::Vamana))
        );
        // A mostly deleted segment that is not the fold's base is still rewritten first.
        let small = SegmentInfo { id: 3, kind: SegmentKind::Flat, rows: 1000, live_rows: 100 };
        let graph = SegmentInfo { live_rows: 100_000, ..graph };
        let plan = SizeTiered.plan(&[graph, small, flat(9, 50_000)], &s).unwrap();
        assert_eq!(plan, Plan::rebuild(vec![3], SegmentKind::Flat));
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

    fn graph(id: u64, rows: u64) -> SegmentInfo {
        SegmentInfo { id, kind: SegmentKind::Vamana, rows, live_rows: rows }
    }

    /// What a run of commits cost the worker, compacting to a fixed point after each commit.
    #[derive(Debug, Default)]
    struct Run {
        segments: Vec<SegmentInfo>,
        /// Rows written into compaction outputs.
        written: u64,
        /// Rows whose graph links were computed: all rows of a graph built anew, only the
        /// inserted ones of a merge into a kept graph.
        linked: u64,
        most_segments: usize,
    }

    fn run(policy: &dyn CompactionPolicy, commits: &[u64], s: &PolicySettings) -> Run {
        let mut run = Run::default();
        let mut next = 0;
        for &rows in commits {
            run.segments.push(flat(next, rows));
            next += 1;
            while let Some(plan) = policy.plan(&run.segments, s) {
                let input = |id: u64| run.segments.iter().find(|x| x.id == id).copied();
                let inputs: Vec<SegmentInfo> =
                    plan.inputs.iter().map(|&id| input(id).expect("a live input")).collect();
                let rows: u64 = inputs.iter().map(|x| x.live_rows).sum();
                if let Some(base) = plan.into {
                    let base = input(base).expect("the base is an input");
                    assert!(plan.inputs.contains(&base.id) && base.kind == SegmentKind::Vamana);
                    assert_eq!(plan.output, SegmentKind::Vamana);
                    run.linked += rows - base.live_rows;
                } else if plan.output == SegmentKind::Vamana {
                    run.linked += rows;
                }
                run.written += rows;
                run.segments.retain(|x| !plan.inputs.contains(&x.id));
                run.segments.push(SegmentInfo {
                    id: next,
                    kind: plan.output,
                    rows,
                    live_rows: rows,
                });
                next += 1;
            }
            run.most_segments = run.most_segments.max(run.segments.len());
        }
        run
    }

    /// Every commit pattern of the scale issue ends, with the worker idle, in one graph and a
    /// tail under 1/64 of it; each row's links are computed about once and its bytes written
    /// a bounded number of times.
    #[test]
    fn any_commit_pattern_ends_in_one_graph_and_a_small_tail() {
        let s = PolicySettings { diskann_min_rows: 2048, ..settings() };
        let total = 100_000u64;
        for every in [1_000u64, 1_300, 7_000, 100_000] {
            let commits: Vec<u64> =
                (0..total.div_ceil(every)).map(|i| every.min(total - i * every)).collect();
            let run = run(&SizeTiered, &commits, &s);
            let graphs: Vec<_> =
                run.segments.iter().filter(|x| x.kind == SegmentKind::Vamana).collect();
            let tail: u64 = run.segments.iter().map(|x| x.live_rows).sum::<u64>()
                - graphs.iter().map(|x| x.live_rows).max().unwrap_or(0);
            assert_eq!(graphs.len(), 1, "every {every}: {:?}", run.segments);
            assert!(tail * SizeTiered::FOLD_RATIO < total, "every {every}: tail {tail}");
            assert!(run.linked <= total * 5 / 4, "every {every}: {} rows linked", run.linked);
            assert!(
                run.written <= SizeTiered::FOLD_RATIO * total,
                "every {every}: {} rows written",
                run.written
            );
            assert!(run.most_segments <= 6, "every {every}: {} segments", run.most_segments);
        }
    }

    /// 1,000 commits of 1,000 rows: the segment count stays small and every row's bytes are
    /// written at most about `FOLD_RATIO` times.
    #[test]
    fn segment_count_and_rewrites_stay_bounded_under_steady_commits() {
        let s = settings();
        let run = run(&SizeTiered, &[1000; 1000], &s);
        let total: u64 = run.segments.iter().map(|x| x.live_rows).sum();
        assert_eq!(total, 1_000_000);
        assert!(run.most_segments <= 6, "{} segments at most", run.most_segments);
        assert!(run.written <= SizeTiered::FOLD_RATIO * total, "{} rows written", run.written);
        assert!(run.linked <= total * 5 / 4, "{} rows linked", run.linked);
    }

    #[test]
    fn the_tail_folds_into_the_largest_graph_once_it_is_large_enough() {
        let s = settings();
        let mut segments = vec![graph(1, 64_000), flat(2, 500)];
        assert_eq!(SizeTiered.plan(&segments, &s), None, "500 rows are under 1/64");
        segments.push(flat(3, 600));
        assert_eq!(SizeTiered.plan(&segments, &s), Some(Plan::merge_into(1, [2, 3])));
        // The whole tail no larger than the graph goes at once; a larger segment stays out.
        // A tail as large as the graph is built with it instead.
        let segments = [graph(1, 10_000), flat(2, 9_000), flat(3, 4_000), flat(4, 12_000)];
        let rebuilt = Plan::rebuild(vec![1, 2, 3], SegmentKind::Vamana);
        assert_eq!(SizeTiered.plan(&segments, &s), Some(rebuilt));
        let segments = [graph(1, 10_000), flat(2, 5_000), flat(3, 4_000), flat(4, 12_000)];
        assert_eq!(SizeTiered.plan(&segments, &s), Some(Plan::merge_into(1, [2, 3])));
        // Within the budget, smallest first.
        let budget = PolicySettings { max_merge_rows: 15_000, ..settings() };
        assert_eq!(SizeTiered.plan(&segments, &budget), Some(Plan::merge_into(1, [3])));
        // A graph at the budget takes no more; the next largest does.
        let s = PolicySettings { max_merge_rows: 100_000, ..settings() };
        let segments = [graph(1, 100_000), graph(2, 20_000), flat(3, 1_000)];
        assert_eq!(SizeTiered.plan(&segments, &s), Some(Plan::merge_into(2, [3])));
        // A rebuild too small for a graph is written flat, as any merge is.
        let segments = [graph(1, 3_000), flat(2, 3_000)];
        let rebuilt = Plan::rebuild(vec![1, 2], SegmentKind::Flat);
        assert_eq!(SizeTiered.plan(&segments, &s), Some(rebuilt));
    }

    #[test]
    fn a_graph_with_many_deletes_keeps_its_graph() {
        let s = settings();
        let deleted = SegmentInfo { live_rows: 12_000, ..graph(5, 20_000) };
        assert_eq!(SizeTiered.plan(&[deleted], &s), Some(Plan::merge_into(5, [])));
        // Too small for a graph: rewritten flat.
        let deleted = SegmentInfo { live_rows: 5_000, ..graph(5, 20_000) };
        assert_eq!(
            SizeTiered.plan(&[deleted], &s),
            Some(Plan::rebuild(vec![5], SegmentKind::Flat))
        );
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
        let large = [flat(3, 20_000)];
        assert_eq!(CompactAll.plan(&large, &s), Some(Plan::rebuild(vec![3], SegmentKind::Vamana)));
        assert_eq!(CompactAll.plan(&[graph(4, 20_000)], &s), None);
        let deleted = [SegmentInfo { live_rows: 50, ..flat(3, 100) }];
        assert_eq!(CompactAll.plan(&deleted, &s).unwrap().inputs, [3]);
        let two = [flat(1, 100), flat(2, 20_000)];
        assert_eq!(CompactAll.plan(&two, &s), Some(Plan::rebuild(vec![1, 2], SegmentKind::Vamana)));
        assert_eq!(NoCompaction.plan(&two, &s), None);
    }
}
