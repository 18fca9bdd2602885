//! The Vamana graph build: insertion passes, each insert a greedy search from the medoid plus
//! a robust prune, with back edges pruned when a list overflows its slack.
//!
//! Below 512 dimensions, one pass from an empty graph with the configured alpha (as ParlayANN
//! builds): measured on 200k x 128 clustered rows with 64-byte residual PQ codes, it reached
//! the recall of DiskANN's two passes at every L (0.954 / 0.986 / 0.994 at L 12 / 16 / 20
//! against 0.955 / 0.986 / 0.993) in 54% of the graph time. From 512 dimensions, DiskANN's
//! build: a random R-regular start, a pass with alpha 1 and half the list, then one with the
//! configured alpha; on 100k x 768 rows the one pass lost 17 points of recall at L 16
//! (`BuildOptions::passes`).
//!
//! Parallel and deterministic: points are inserted in batches. Within a batch every point
//! searches the graph as it stood before the batch and computes its new list (in parallel, the
//! graph read-only); the lists are then written, and the back edges they imply are grouped by
//! target, each target's new list computed in parallel and written. Each result depends only on
//! the graph before the phase and on its own inputs, never on which thread ran it or when, so a
//! seed gives the same graph on any number of threads. Batches double in size from 1 (prefix
//! doubling, as in ParlayANN), so the early graph takes shape from nearly sequential inserts.
//!
//! Distances are squared L2. Cosine rows arrive normalized, where squared L2 orders like the
//! cosine distance. Inner product is reduced to L2 by lifting every row with one extra
//! coordinate `sqrt(Φ² - ‖x‖²)` (Φ the largest norm): a query lifted with 0 is then at
//! `‖q‖² + Φ² - 2 q·x` from each row, which orders exactly like `-q·x`, so a search by inner
//! product walks a graph that is a proper Vamana graph in the lifted space.
//!
//! Every routine that computes distances is `#[inline(always)]` and runs inside one
//! [`Kernels::dispatch`] per point, so the distance kernels inline (see the memtable's notes).

use parking_lot::Mutex;
use strata_quantize::rng::SplitMix64;
use strata_quantize::{Kernels, Simd, Visited, WithSimd, l2_squared_simd, prefetch_lines};

use super::monitor::{BuildMonitor, BuildStage};
use crate::list::CandidateList;

/// Lists may grow this much past R through back edges before they are pruned back to R, so
/// most back edges cost no distance computations (DiskANN's slack factor).
const SLACK: f32 = 1.3;

/// Each robust-prune round relaxes the occlusion threshold by this factor, from 1 up to alpha,
/// until the list is full (DiskANN's saturating prune).
const ALPHA_STEP: f32 = 1.2;

/// Rows per unit of parallel work.
const CHUNK: usize = 16;

/// How many vectors ahead of the one being scored the build prefetches.
const PREFETCH_AHEAD: usize = 3;

/// Prefetches a whole vector of up to 512 bytes (128 dimensions); longer ones get their first
/// 512 bytes and the hardware prefetcher streams the rest.
#[inline(always)]
fn prefetch_vector(vector: &[f32]) {
    prefetch_lines(vector, 8);
}

/// The build's vectors and the distance between two of them.
#[derive(Debug)]
pub(crate) struct Points<'a> {
    pub vectors: &'a [f32],
    pub dim: usize,
    /// The inner-product lift, one extra coordinate per row; `None` for L2 and cosine.
    pub lift: Option<Vec<f32>>,
}

impl Points<'_> {
    pub fn rows(&self) -> usize {
        self.vectors.len() / self.dim
    }

    #[inline(always)]
    fn vector(&self, row: u32) -> &[f32] {
        let start = row as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    #[inline(always)]
    fn distance<S: Simd>(&self, simd: S, a: u32, b: u32) -> f32 {
        let distance = l2_squared_simd(simd, self.vector(a), self.vector(b));
        match &self.lift {
            Some(lift) => {
                let gap = lift[a as usize] - lift[b as usize];
                distance + gap * gap
            }
            None => distance,
        }
    }

    /// The lift for inner product: `sqrt(Φ² - ‖x‖²)` per row.
    pub fn inner_product_lift(vectors: &[f32], dim: usize) -> Vec<f32> {
        let norms: Vec<f32> =
            vectors.chunks_exact(dim).map(strata_quantize::norm_squared).collect();
        let largest = norms.iter().copied().fold(0.0f32, f32::max);
        norms.iter().map(|&norm| (largest - norm).max(0.0).sqrt()).collect()
    }
}

/// What shapes the graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params<'m> {
    pub max_degree: usize,
    pub search_list: usize,
    pub alpha: f32,
    /// Insertion passes over every row: 1, or 2 for a first pass that only makes the graph
    /// navigable and a second that re-links every row.
    pub passes: usize,
    pub threads: usize,
    pub seed: u64,
    /// Told after each batch of inserts; a cancelled build stops there.
    pub monitor: &'m BuildMonitor,
}

/// Adjacency lists with room for `cap` neighbours per row.
#[derive(Debug)]
pub(crate) struct Graph {
    cap: usize,
    degrees: Vec<u32>,
    links: Vec<u32>,
}

impl Graph {
    fn new(rows: usize, cap: usize) -> Self {
        Graph { cap, degrees: vec![0; rows], links: vec![0; rows * cap] }
    }

    #[inline(always)]
    pub fn neighbors(&self, row: u32) -> &[u32] {
        let start = row as usize * self.cap;
        &self.links[start..start + self.degrees[row as usize] as usize]
    }

    fn set(&mut self, row: u32, list: &[u32]) {
        let start = row as usize * self.cap;
        self.links[start..start + list.len()].copy_from_slice(list);
        self.degrees[row as usize] = list.len() as u32;
    }

    pub fn rows(&self) -> usize {
        self.degrees.len()
    }
}

/// Bytes a graph of `rows` rows with degree bound `max_degree` holds during the build.
pub(crate) fn graph_bytes(rows: u64, max_degree: usize) -> u64 {
    rows * (4 + 4 * slack_cap(max_degree) as u64)
}

fn slack_cap(max_degree: usize) -> usize {
    ((max_degree as f32 * SLACK).ceil() as usize).max(max_degree)
}

/// A row and its distance to the point being linked.
#[derive(Debug, Clone, Copy)]
struct Scored {
    distance: f32,
    row: u32,
}

/// One worker's buffers, reused across every point it handles.
#[derive(Debug, Default)]
struct Scratch {
    list: CandidateList,
    visited: Visited,
    pool: Vec<Scored>,
    factors: Vec<f32>,
    /// Neighbours of the node being expanded not yet visited.
    fresh: Vec<u32>,
}

/// Builds the graph over `points`; returns it with the medoid, where searches start.
/// `None` if the monitor cancelled it.
pub(crate) fn build(
    points: &Points<'_>,
    params: &Params<'_>,
    kernels: &Kernels,
) -> Option<(Graph, u32)> {
    let rows = points.rows();
    assert!(rows > 0 && rows as u64 <= crate::format::MAX_ROWS, "rows checked by the builder");
    let medoid = medoid(points, rows);
    let threads = params.threads.max(1);
    let mut scratches: Vec<Scratch> = (0..threads).map(|_| Scratch::default()).collect();
    let mut work = Buffers::default();
    let step = Step {
        points,
        params,
        kernels,
        alpha: params.alpha,
        medoid,
        search_list: params.search_list,
    };
    let limit = batch_limit(rows);
    let mut graph = if params.passes > 1 {
        // DiskANN's build: a random R-regular start, a first pass with alpha 1 and half the
        // list that makes it navigable, then the pass below re-links every row.
        let mut graph = random_start(rows, params);
        let first = Step { alpha: 1.0, search_list: params.search_list.div_ceil(2), ..step };
        let total = 2 * rows as u64;
        let order = permutation(rows, params.seed, 0);
        let mut done = 0;
        for size in batch_sizes(order.len(), limit, 1) {
            first.insert_batch(&mut graph, &order[done..done + size], &mut scratches, &mut work);
            done += size;
            if params.monitor.tick(BuildStage::Link, done as u64, total) {
                return None;
            }
        }
        let order = permutation(rows, params.seed, 1);
        let mut done = 0;
        for size in batch_sizes(order.len(), limit, limit) {
            step.insert_batch(&mut graph, &order[done..done + size], &mut scratches, &mut work);
            done += size;
            if params.monitor.tick(BuildStage::Link, (rows + done) as u64, total) {
                return None;
            }
        }
        graph
    } else {
        // One pass from an empty graph (as ParlayANN builds): the medoid first, then every
        // other row in a seeded order, in batches that double from one, so each batch searches
        // a graph about as large as itself and the early graph takes shape from nearly
        // sequential inserts.
        let mut graph = Graph::new(rows, slack_cap(params.max_degree));
        let order: Vec<u32> =
            permutation(rows, params.seed, 0).into_iter().filter(|&row| row != medoid).collect();
        let mut done = 0;
        for size in batch_sizes(order.len(), limit, 1) {
            step.insert_batch(&mut graph, &order[done..done + size], &mut scratches, &mut work);
            done += size;
            if params.monitor.tick(BuildStage::Link, done as u64, order.len() as u64) {
                return None;
            }
        }
        graph
    };
    step.trim(&mut graph, &mut scratches, &mut work);
    Some((graph, medoid))
}

/// An existing segment's graph over the rows that survive into a new build (the build's first
/// [`rows`](Self::rows) rows, in order), renumbered to the new rows and laid out in the new
/// build's graph, so carrying it costs no second copy.
#[derive(Debug)]
pub(crate) struct KeptGraph {
    graph: Graph,
    max_degree: usize,
    kept: usize,
    /// Rows whose lists are pruned again, each with its candidates in `candidates`.
    repair: Vec<(u32, usize, usize)>,
    candidates: Vec<u32>,
}

impl KeptGraph {
    /// A row that kept fewer than this fraction of its list is repaired.
    pub const REPAIR_BELOW: f32 = 0.75;

    /// Room for a build of `rows` rows with lists of at most `max_degree`.
    pub fn new(rows: usize, max_degree: usize) -> Self {
        KeptGraph {
            graph: Graph::new(rows, slack_cap(max_degree)),
            max_degree,
            kept: 0,
            repair: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// Rows kept so far.
    pub fn rows(&self) -> usize {
        self.kept
    }

    /// Appends the next kept row: its surviving neighbours and, if `repair`, the candidates
    /// that replace the lost ones after them.
    pub fn push(&mut self, links: &[u32], repair: bool) {
        let row = self.kept as u32;
        self.kept += 1;
        if repair || links.len() > self.max_degree {
            let start = self.candidates.len();
            self.candidates.extend_from_slice(links);
            self.repair.push((row, start, self.candidates.len()));
        } else {
            self.graph.set(row, links);
        }
    }
}

/// Grows a kept graph by the rows after it (FreshDiskANN's StreamingMerge): lists that lost
/// neighbours to dropped rows are pruned again from the lost neighbours' own lists, kept rows
/// left with no list and every new row are inserted by greedy search and robust prune, as in
/// a build. The cost is the new rows', not a rebuild of all of them.
/// `None` if the monitor cancelled it.
pub(crate) fn extend(
    points: &Points<'_>,
    params: &Params<'_>,
    kernels: &Kernels,
    kept: KeptGraph,
) -> Option<(Graph, u32)> {
    let rows = points.rows();
    let base = kept.rows();
    assert!(base > 0 && base <= rows && rows == kept.graph.rows());
    assert!(kept.max_degree == params.max_degree, "kept with the build's degree");
    // Searches must start from a row with a list: the kept row nearest the mean.
    let medoid = medoid(points, base);
    let KeptGraph { mut graph, repair, candidates, .. } = kept;
    let threads = params.threads.max(1);
    let mut scratches: Vec<Scratch> = (0..threads).map(|_| Scratch::default()).collect();
    let mut work = Buffers::default();
    let step = Step {
        points,
        params,
        kernels,
        alpha: params.alpha,
        medoid,
        search_list: params.search_list,
    };
    step.repair(&mut graph, &repair, &candidates, &mut scratches, &mut work);
    drop(candidates);

    let mut order: Vec<u32> =
        (0..base as u32).filter(|&row| row != medoid && graph.neighbors(row).is_empty()).collect();
    order.extend(permutation(rows - base, params.seed, 2).into_iter().map(|i| i + base as u32));
    let passes = if params.passes > 1 { 2 } else { 1 };
    let total = (passes * order.len()) as u64;
    let mut done = 0;
    for size in batch_sizes(order.len(), batch_limit(rows), base) {
        step.insert_batch(&mut graph, &order[done..done + size], &mut scratches, &mut work);
        done += size;
        if params.monitor.tick(BuildStage::Link, done as u64, total) {
            return None;
        }
    }
    // Where a build makes two passes (wide vectors), the inserted rows are linked again once
    // every one of them is in the graph, as a build's second pass does: one insertion each
    // left 768-d loads that committed in ten parts 2-4 points of recall short at L 20
    // (0.939-0.955 against 0.979 for one commit; 0.971 with this pass).
    if params.passes > 1 {
        let again: Vec<u32> = permutation(order.len(), params.seed, 3)
            .into_iter()
            .map(|i| order[i as usize])
            .collect();
        let limit = batch_limit(rows);
        let mut done = 0;
        for size in batch_sizes(again.len(), limit, limit) {
            step.insert_batch(&mut graph, &again[done..done + size], &mut scratches, &mut work);
            done += size;
            if params.monitor.tick(BuildStage::Link, (order.len() + done) as u64, total) {
                return None;
            }
        }
    }
    step.trim(&mut graph, &mut scratches, &mut work);
    Some((graph, medoid))
}

/// Rows inserted in parallel against one graph snapshot, at most.
fn batch_limit(rows: usize) -> usize {
    (rows / 50).clamp(256, 16_384)
}

/// The sizes of one pass's batches, in order: positive, at most `limit`, summing to `rows`.
///
/// Each batch searches the graph as it stood before it, so a batch no larger than the graph
/// keeps its points from missing each other: the first batch is `first` rows (the rows
/// already linked: 1, the medoid, for a build from an empty graph; the kept rows for a merge
/// into a kept graph) and sizes double from there up to `limit`. The doubling saturates at
/// `limit`; an unbounded `batch *= 2` wrapped to zero after 64 steps in release builds, and a
/// pass over more than ~835k rows never ended.
fn batch_sizes(rows: usize, limit: usize, first: usize) -> impl Iterator<Item = usize> {
    let limit = limit.max(1);
    let mut next = first.clamp(1, limit);
    let mut left = rows;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = next.min(left);
        left -= size;
        next = next.saturating_mul(2).min(limit);
        Some(size)
    })
}

/// The row among the first `among` nearest the mean of all rows.
fn medoid(points: &Points<'_>, among: usize) -> u32 {
    let dim = points.dim;
    let mut sum = vec![0.0f64; dim];
    for vector in points.vectors.chunks_exact(dim) {
        for (s, &x) in sum.iter_mut().zip(vector) {
            *s += f64::from(x);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|&s| (s / points.rows() as f64) as f32).collect();
    let mut best = (f32::INFINITY, 0u32);
    for (row, vector) in points.vectors.chunks_exact(dim).take(among).enumerate() {
        let distance = strata_quantize::l2_squared(&mean, vector);
        if distance < best.0 {
            best = (distance, row as u32);
        }
    }
    best.1
}

/// Every row gets `max_degree` distinct random neighbours (all other rows when there are
/// fewer): O(rows · R) with a visited set per row instead of quadratic duplicate checks.
fn random_start(rows: usize, params: &Params<'_>) -> Graph {
    let mut graph = Graph::new(rows, slack_cap(params.max_degree));
    let degree = params.max_degree.min(rows - 1);
    let mut seen: Visited = Visited::default();
    let mut list = Vec::with_capacity(degree);
    let mut rng = SplitMix64::new(params.seed, 0x0A11_5EED);
    for row in 0..rows as u32 {
        list.clear();
        if degree == rows - 1 {
            list.extend((0..rows as u32).filter(|&other| other != row));
        } else {
            seen.reset(rows);
            seen.insert(row);
            while list.len() < degree {
                let other = rng.below(rows) as u32;
                if seen.insert(other) {
                    list.push(other);
                }
            }
        }
        graph.set(row, &list);
    }
    graph
}

/// A seeded random order of `0..rows` (Fisher-Yates).
fn permutation(rows: usize, seed: u64, pass: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows as u32).collect();
    let mut rng = SplitMix64::new(seed, 0x0BDE_0000 + pass);
    for i in (1..rows).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Reused between batches: new lists, their lengths, and back edges.
#[derive(Debug, Default)]
struct Buffers {
    lists: Vec<u32>,
    lens: Vec<u32>,
    edges: Vec<(u32, u32)>,
    targets: Vec<(u32, usize, usize)>,
}

/// One insertion step's context.
struct Step<'a> {
    points: &'a Points<'a>,
    params: &'a Params<'a>,
    kernels: &'a Kernels,
    alpha: f32,
    medoid: u32,
    search_list: usize,
}

impl Step<'_> {
    fn insert_batch(
        &self,
        graph: &mut Graph,
        batch: &[u32],
        scratches: &mut [Scratch],
        work: &mut Buffers,
    ) {
        let r = self.params.max_degree;
        let cap = graph.cap;

        // A: each point's new out-list, from the graph before the batch.
        work.lists.resize(batch.len() * r, 0);
        work.lens.resize(batch.len(), 0);
        {
            let graph = &*graph;
            let lists = &mut work.lists[..batch.len() * r];
            let lens = &mut work.lens[..batch.len()];
            for_each_slot(self.params.threads, r, lists, lens, scratches, &|i, scratch, out| {
                self.kernels.dispatch(Link { step: self, graph, point: batch[i], scratch, out })
            });
        }
        for (i, &point) in batch.iter().enumerate() {
            let len = work.lens[i] as usize;
            graph.set(point, &work.lists[i * r..i * r + len]);
        }

        // C: back edges, grouped by target.
        work.edges.clear();
        for (i, &point) in batch.iter().enumerate() {
            let len = work.lens[i] as usize;
            work.edges.extend(work.lists[i * r..i * r + len].iter().map(|&target| (target, point)));
        }
        work.edges.sort_unstable();
        work.targets.clear();
        let mut start = 0;
        while start < work.edges.len() {
            let target = work.edges[start].0;
            let end = start + work.edges[start..].partition_point(|edge| edge.0 == target);
            work.targets.push((target, start, end));
            start = end;
        }
        let count = work.targets.len();
        work.lists.resize(count * cap, 0);
        work.lens.resize(count, 0);
        {
            let graph = &*graph;
            let (edges, targets) = (&work.edges, &work.targets);
            let lists = &mut work.lists[..count * cap];
            let lens = &mut work.lens[..count];
            for_each_slot(self.params.threads, cap, lists, lens, scratches, &|i, scratch, out| {
                let (target, start, end) = targets[i];
                let sources = &edges[start..end];
                self.kernels.dispatch(BackEdges {
                    step: self,
                    graph,
                    target,
                    sources,
                    scratch,
                    out,
                })
            });
        }
        for (i, &(target, ..)) in work.targets.iter().enumerate() {
            let len = work.lens[i] as usize;
            graph.set(target, &work.lists[i * cap..i * cap + len]);
        }
    }

    /// Prunes every list that grew past R through back edges.
    fn trim(&self, graph: &mut Graph, scratches: &mut [Scratch], work: &mut Buffers) {
        let r = self.params.max_degree;
        let over: Vec<u32> =
            (0..graph.rows() as u32).filter(|&row| graph.neighbors(row).len() > r).collect();
        work.lists.resize(over.len() * r, 0);
        work.lens.resize(over.len(), 0);
        {
            let graph = &*graph;
            let lists = &mut work.lists[..over.len() * r];
            let lens = &mut work.lens[..over.len()];
            for_each_slot(self.params.threads, r, lists, lens, scratches, &|i, scratch, out| {
                self.kernels.dispatch(Trim { step: self, graph, row: over[i], scratch, out })
            });
        }
        for (i, &row) in over.iter().enumerate() {
            let len = work.lens[i] as usize;
            graph.set(row, &work.lists[i * r..i * r + len]);
        }
    }
}

impl Step<'_> {
    /// Prunes each listed row's candidates (`candidates[start..end]`) to R.
    fn repair(
        &self,
        graph: &mut Graph,
        rows: &[(u32, usize, usize)],
        candidates: &[u32],
        scratches: &mut [Scratch],
        work: &mut Buffers,
    ) {
        let r = self.params.max_degree;
        work.lists.resize(rows.len() * r, 0);
        work.lens.resize(rows.len(), 0);
        {
            let lists = &mut work.lists[..rows.len() * r];
            let lens = &mut work.lens[..rows.len()];
            for_each_slot(self.params.threads, r, lists, lens, scratches, &|i, scratch, out| {
                let (row, start, end) = rows[i];
                let candidates = &candidates[start..end];
                self.kernels.dispatch(Prune { step: self, row, candidates, scratch, out })
            });
        }
        for (i, &(row, ..)) in rows.iter().enumerate() {
            let len = work.lens[i] as usize;
            graph.set(row, &work.lists[i * r..i * r + len]);
        }
    }
}

/// Runs `f(i, scratch, slot_i)` for every slot of `out` (`slot` values each) on up to `threads`
/// threads and stores each returned length in `lens[i]`. Which thread runs which slot does not
/// change any result.
fn for_each_slot<F>(
    threads: usize,
    slot: usize,
    out: &mut [u32],
    lens: &mut [u32],
    scratches: &mut [Scratch],
    f: &F,
) where
    F: Fn(usize, &mut Scratch, &mut [u32]) -> u32 + Sync,
{
    let count = lens.len();
    if count == 0 {
        return;
    }
    let work = Mutex::new(out.chunks_mut(CHUNK * slot).zip(lens.chunks_mut(CHUNK)).enumerate());
    let run = |scratch: &mut Scratch| {
        loop {
            let Some((chunk, (outs, lens))) = work.lock().next() else { break };
            for (i, (out, len)) in outs.chunks_mut(slot).zip(lens.iter_mut()).enumerate() {
                *len = f(chunk * CHUNK + i, scratch, out);
            }
        }
    };
    let workers = threads.min(count.div_ceil(CHUNK)).min(scratches.len()).max(1);
    if workers == 1 {
        run(&mut scratches[0]);
        return;
    }
    // Each worker pulls chunks until none is left, so it does not matter how many of them
    // the pool runs at once.
    let scratches: Vec<&mut Scratch> = scratches.iter_mut().take(workers).collect();
    strata_quantize::parallel::map_all(scratches, run);
}

/// Greedy search for `point` from the medoid, then a robust prune of what it expanded (plus the
/// point's current list) into `out`.
struct Link<'a, 's> {
    step: &'a Step<'a>,
    graph: &'a Graph,
    point: u32,
    scratch: &'s mut Scratch,
    out: &'s mut [u32],
}

impl WithSimd for Link<'_, '_> {
    type Output = u32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u32 {
        let Link { step, graph, point, scratch, out } = self;
        let points = step.points;
        let Scratch { list, visited, pool, factors, fresh } = scratch;
        list.reset(step.search_list);
        visited.reset(graph.rows());
        pool.clear();
        visited.insert(point);
        if step.medoid != point {
            visited.insert(step.medoid);
            list.insert(step.medoid, points.distance(simd, step.medoid, point));
        } else {
            for &next in graph.neighbors(point) {
                if visited.insert(next) {
                    list.insert(next, points.distance(simd, next, point));
                }
            }
        }
        while let Some(nearest) = list.expand_next() {
            pool.push(Scored { distance: nearest.distance, row: nearest.row });
            fresh.clear();
            fresh.extend(graph.neighbors(nearest.row).iter().filter(|&&next| visited.insert(next)));
            // Vectors come from all over memory: ask for each a few distances ahead, so its
            // lines arrive while the ones before it are scored (all at once would overflow the
            // CPU's few outstanding-miss slots).
            for &next in fresh.iter().take(PREFETCH_AHEAD) {
                prefetch_vector(points.vector(next));
            }
            for (i, &next) in fresh.iter().enumerate() {
                if let Some(&ahead) = fresh.get(i + PREFETCH_AHEAD) {
                    prefetch_vector(points.vector(ahead));
                }
                let distance = points.distance(simd, next, point);
                if distance < list.bound() {
                    list.insert(next, distance);
                }
            }
        }
        for &next in graph.neighbors(point) {
            pool.push(Scored { distance: points.distance(simd, next, point), row: next });
        }
        robust_prune(simd, points, pool, factors, step.alpha, out) as u32
    }
}

/// The new list of `target` after adding `sources` (back edges): appended while the list has
/// slack, else the union pruned back to R.
struct BackEdges<'a, 's> {
    step: &'a Step<'a>,
    graph: &'a Graph,
    target: u32,
    sources: &'a [(u32, u32)],
    scratch: &'s mut Scratch,
    out: &'s mut [u32],
}

impl WithSimd for BackEdges<'_, '_> {
    type Output = u32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u32 {
        let BackEdges { step, graph, target, sources, scratch, out } = self;
        let current = graph.neighbors(target);
        let mut len = current.len();
        out[..len].copy_from_slice(current);
        let mut overflow = false;
        for &(_, source) in sources {
            if source == target || out[..len].contains(&source) {
                continue;
            }
            if len < out.len() {
                out[len] = source;
                len += 1;
            } else {
                overflow = true;
                break;
            }
        }
        if !overflow {
            return len as u32;
        }
        let points = step.points;
        let pool = &mut scratch.pool;
        pool.clear();
        let sources = sources.iter().map(|&(_, source)| source).filter(|&s| s != target);
        for row in current.iter().copied().chain(sources) {
            pool.push(Scored { distance: points.distance(simd, row, target), row });
        }
        let limit = step.params.max_degree;
        robust_prune(simd, points, pool, &mut scratch.factors, step.alpha, &mut out[..limit]) as u32
    }
}

/// A list over R pruned back to R.
struct Trim<'a, 's> {
    step: &'a Step<'a>,
    graph: &'a Graph,
    row: u32,
    scratch: &'s mut Scratch,
    out: &'s mut [u32],
}

impl WithSimd for Trim<'_, '_> {
    type Output = u32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u32 {
        let Trim { step, graph, row, scratch, out } = self;
        let points = step.points;
        scratch.pool.clear();
        for &next in graph.neighbors(row) {
            scratch.pool.push(Scored { distance: points.distance(simd, next, row), row: next });
        }
        robust_prune(simd, points, &mut scratch.pool, &mut scratch.factors, step.alpha, out) as u32
    }
}

/// `row`'s list pruned from `candidates`.
struct Prune<'a, 's> {
    step: &'a Step<'a>,
    row: u32,
    candidates: &'a [u32],
    scratch: &'s mut Scratch,
    out: &'s mut [u32],
}

impl WithSimd for Prune<'_, '_> {
    type Output = u32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> u32 {
        let Prune { step, row, candidates, scratch, out } = self;
        let points = step.points;
        scratch.pool.clear();
        for &next in candidates.iter().filter(|&&next| next != row) {
            scratch.pool.push(Scored { distance: points.distance(simd, next, row), row: next });
        }
        robust_prune(simd, points, &mut scratch.pool, &mut scratch.factors, step.alpha, out) as u32
    }
}

/// Vamana's RobustPrune with DiskANN's saturation: candidates are taken nearest first; each
/// taken one occludes every later candidate `j` it is much nearer to than the point is
/// (`alpha · d(taken, j) <= d(point, j)`). Rounds relax the threshold from 1 towards `alpha`
/// until `out` is full. Returns how many neighbours were written (at most `out.len()`).
#[inline(always)]
fn robust_prune<S: Simd>(
    simd: S,
    points: &Points<'_>,
    pool: &mut Vec<Scored>,
    factors: &mut Vec<f32>,
    alpha: f32,
    out: &mut [u32],
) -> usize {
    pool.sort_unstable_by(|a, b| a.distance.total_cmp(&b.distance).then(a.row.cmp(&b.row)));
    // Equal rows have equal distances (the distance is symmetric and deterministic), so
    // duplicates are adjacent.
    pool.dedup_by_key(|scored| scored.row);
    factors.clear();
    factors.resize(pool.len(), 0.0);
    let limit = out.len();
    let mut count = 0;
    let mut threshold = 1.0f32;
    loop {
        for i in 0..pool.len() {
            if count == limit {
                break;
            }
            if factors[i] > threshold {
                continue;
            }
            factors[i] = f32::MAX;
            out[count] = pool[i].row;
            count += 1;
            for j in i + 1..pool.len() {
                if factors[j] > alpha {
                    continue;
                }
                let between = points.distance(simd, pool[i].row, pool[j].row);
                let ratio = if between > 0.0 { pool[j].distance / between } else { f32::MAX };
                factors[j] = factors[j].max(ratio);
            }
        }
        if count == limit || threshold >= alpha {
            break;
        }
        threshold = (threshold * ALPHA_STEP).min(alpha);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the schedule at every size a segment may have, up to the format's row limit:
    /// the sizes must stay positive and bounded, add up to the rows, and stay few.
    #[test]
    fn batch_schedule_covers_every_row_count_up_to_the_limit() {
        let max_rows = crate::format::MAX_ROWS as usize;
        let sizes_to_walk = [
            1,
            2,
            3,
            255,
            256,
            257,
            12_800,
            835_000,
            852_000,
            1_000_000,
            2_000_000,
            10_000_000,
            100_000_000,
            max_rows - 1,
            max_rows,
        ];
        for rows in sizes_to_walk {
            let limit = batch_limit(rows);
            assert!((256..=16_384).contains(&limit));
            for first in [1, limit / 3, limit, usize::MAX] {
                let mut total = 0usize;
                let mut count = 0usize;
                let mut previous = 0usize;
                for size in batch_sizes(rows, limit, first) {
                    assert!(size >= 1 && size <= limit, "rows {rows}: batch {size}");
                    // Sizes never shrink except for the last, partial batch.
                    if total + size < rows {
                        assert!(size >= previous, "rows {rows}: {previous} then {size}");
                    }
                    previous = size;
                    total += size;
                    count += 1;
                }
                assert_eq!(total, rows, "rows {rows}, first {first}");
                let ramp = (limit / first.clamp(1, limit)).ilog2() as usize + 1;
                assert!(
                    count <= rows.div_ceil(limit) + ramp,
                    "rows {rows}: {count} batches for limit {limit}"
                );
            }
        }
    }

    #[test]
    fn batch_schedule_doubles_to_the_limit_then_holds() {
        let sizes: Vec<usize> = batch_sizes(100, 16, 1).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16, 16, 16, 16, 16, 5]);
        let sizes: Vec<usize> = batch_sizes(40, 16, 16).collect();
        assert_eq!(sizes, [16, 16, 8]);
        let sizes: Vec<usize> = batch_sizes(40, 16, 3).collect();
        assert_eq!(sizes, [3, 6, 12, 16, 3]);
        assert_eq!(batch_sizes(0, 16, 1).count(), 0);
    }
}
