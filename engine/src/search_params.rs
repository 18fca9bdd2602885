//! Search parameters: how many results, how hard each tier works, and the filter.

use std::sync::Arc;

use strata_attributes::Filter;

/// Parameters of one search.
///
/// ```
/// use strata::SearchParams;
/// let params = SearchParams::new(10).ef(200);
/// assert_eq!(params.k(), 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    pub(crate) k: usize,
    pub(crate) ef: usize,
    pub(crate) effort: VamanaEffort,
    pub(crate) beam_width: usize,
    pub(crate) filter: Option<Arc<Filter>>,
    pub(crate) filter_plan: FilterPlan,
    pub(crate) rerank_confidence: f32,
    /// Range search: only records at most this far (`within`).
    pub(crate) radius: Option<f32>,
}

/// How a filtered search treats each Vamana segment. `Auto` (the default) decides by the
/// filter's selectivity there; the others force one strategy, for measuring the planner's
/// break-even point (docs/TUNING.md) or for a workload that knows better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterPlan {
    /// The planner decides per segment by the filter's selectivity.
    #[default]
    Auto,
    /// An exact scan of the matching rows.
    Scan,
    /// A graph walk through non-matching rows, its list scaled by 1/selectivity.
    Walk,
}

/// How long a Vamana segment's candidate list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VamanaEffort {
    /// The same L for every segment.
    List(usize),
    /// Each segment's smallest L whose measured recall@10 reaches this many millionths.
    Recall(u32),
}

impl VamanaEffort {
    /// L for `segment` (at least `k`).
    pub(crate) fn search_list(
        self,
        segment: &strata_segment_diskann::VamanaSegment,
        k: usize,
    ) -> usize {
        let list = match self {
            VamanaEffort::List(list) => list,
            VamanaEffort::Recall(ppm) => segment
                .search_list_for(ppm as f32 / 1e6)
                .unwrap_or(SearchParams::DEFAULT_SEARCH_LIST),
        };
        list.max(k)
    }
}

impl SearchParams {
    /// Default candidate list size of the memtable graph search.
    pub const DEFAULT_EF: usize = 128;

    /// Candidate list (L) of Vamana segment searches written without a calibration (before
    /// format minor 1), or asked for by [`search_list`](Self::search_list).
    pub const DEFAULT_SEARCH_LIST: usize = 64;

    /// The recall@10 each Vamana segment is searched for by default: each takes the smallest L
    /// at which its build measured this recall (see [`recall`](Self::recall)).
    pub const DEFAULT_RECALL: f32 = 0.95;

    /// The `k` nearest records, every tier at its default effort.
    pub fn new(k: usize) -> Self {
        SearchParams {
            k,
            ef: Self::DEFAULT_EF,
            beam_width: 1,
            effort: Self::recall_effort(Self::DEFAULT_RECALL),
            filter: None,
            filter_plan: FilterPlan::Auto,
            rerank_confidence: strata_segment_diskann::DEFAULT_RERANK_CONFIDENCE,
            radius: None,
        }
    }

    /// The `k` nearest records, exactly: graph tiers scan every row.
    pub fn exact(k: usize) -> Self {
        SearchParams {
            k,
            ef: usize::MAX,
            effort: VamanaEffort::List(usize::MAX),
            beam_width: 1,
            filter: None,
            filter_plan: FilterPlan::Auto,
            rerank_confidence: f32::INFINITY,
            radius: None,
        }
    }

    /// Candidate list size of graph (memtable) searches: higher is more accurate and slower;
    /// at least `k` is used. Default [`DEFAULT_EF`](Self::DEFAULT_EF). Flat segments are
    /// always searched exactly.
    #[must_use]
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = ef;
        self
    }

    /// One candidate list (L) for every Vamana segment, instead of a recall level: every
    /// candidate is read from disk and scored exactly, so higher is more accurate and slower;
    /// at least `k` is used.
    #[must_use]
    pub fn search_list(mut self, search_list: usize) -> Self {
        self.effort = VamanaEffort::List(search_list);
        self
    }

    /// Searches each Vamana segment for this recall@10 (clamped to 0..=1; NaN asks for the
    /// most): each segment's build measured its recall at a ladder of list sizes, and the
    /// search takes the smallest L that reached `recall` there (the longest measured if none
    /// did). The measurement samples the segment's own rows as queries, so queries unlike the
    /// data (outliers, another distribution) may see less. Default
    /// [`DEFAULT_RECALL`](Self::DEFAULT_RECALL).
    #[must_use]
    pub fn recall(mut self, recall: f32) -> Self {
        self.effort = Self::recall_effort(recall);
        self
    }

    fn recall_effort(recall: f32) -> VamanaEffort {
        let recall = if recall.is_nan() { 1.0 } else { recall.clamp(0.0, 1.0) };
        VamanaEffort::Recall((recall * 1e6).round() as u32)
    }

    /// Vamana segments with RaBitQ codes (`Options::vamana_codec`): how many standard
    /// deviations of a code's error must put a node beyond the k-th best before the search
    /// skips its exact distance (and the read of its vector). Higher reranks more: slower and
    /// surer; `f32::INFINITY` scores every node expanded. Default 3 (a 0.13% chance, one-sided,
    /// that a skipped node belonged). Other codecs give no bound and score every node.
    #[must_use]
    pub fn rerank_confidence(mut self, confidence: f32) -> Self {
        self.rerank_confidence =
            if confidence.is_nan() { f32::INFINITY } else { confidence.max(0.0) };
        self
    }

    /// Vamana nodes expanded per round (W): wider rounds overlap reads on slow storage;
    /// from the page cache 1 (the default) is fastest.
    #[must_use]
    pub fn beam_width(mut self, beam_width: usize) -> Self {
        self.beam_width = beam_width.max(1);
        self
    }

    /// Returns only records whose attributes match `filter`: still the `k` nearest matching
    /// live records (fewer only when fewer match), at the recall of an unfiltered search. Each
    /// tier plans by the filter's selectivity there: an exact scan of the matching rows when
    /// they are few, a graph walk through non-matching rows otherwise.
    ///
    /// ```
    /// use strata::{Filter, SearchParams};
    /// let params = SearchParams::new(10).filter(Filter::parse("lang = 'de' AND ts >= 500000")?);
    /// # Ok::<(), strata::Error>(())
    /// ```
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Forces how each Vamana segment is searched under a filter (see [`FilterPlan`]).
    #[must_use]
    pub fn filter_plan(mut self, plan: FilterPlan) -> Self {
        self.filter_plan = plan;
        self
    }

    /// Range search: every live record at distance `radius` or less from the query, nearest
    /// first, at most `k` of them (`k` becomes the cap; `usize::MAX` for none). Distances are
    /// the metric's own (squared L2; negated dot product; 1 - cosine). Searches ask every tier
    /// for a growing number of neighbours (32, doubling up to `k`) until the farthest returned
    /// lies beyond `radius` or fewer come back than were asked for: exact with
    /// [`exact`](Self::exact), and otherwise as accurate as a k-nearest search at these
    /// parameters. A NaN radius matches nothing.
    ///
    /// ```
    /// use strata::{Db, Metric, Options, SearchParams};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(1, Metric::L2))?;
    /// db.upsert_batch(&[1, 2, 3], &[0.0, 1.0, 3.0])?;
    /// let near = db.search_with(&[0.0], SearchParams::exact(usize::MAX).within(1.0))?;
    /// assert_eq!(near.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2]); // 0 and 1 away; 9 is not
    /// # Ok::<(), strata::Error>(())
    /// ```
    #[must_use]
    pub fn within(mut self, radius: f32) -> Self {
        self.radius = Some(radius);
        self
    }

    /// The filter bound to `schema`, if there is one.
    pub(crate) fn predicate(
        &self,
        schema: &strata_attributes::Schema,
    ) -> crate::Result<Option<strata_attributes::Predicate>> {
        Ok(self.filter.as_ref().map(|f| f.bind(schema)).transpose()?)
    }

    /// Results wanted (at most, for a range search).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The radius of a range search ([`within`](Self::within)), if it is one.
    pub fn radius(&self) -> Option<f32> {
        self.radius
    }
}
