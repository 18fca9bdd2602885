//! Which rows a tier search may return (ADR 0004): its live rows, intersected with a filter's
//! matching rows when the search has a filter. Deletes and filters are one thing to a search.

/// How many rows an admission lets through, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Exact(u64),
    AtMost(u64),
    Unknown,
}

/// The rows a tier search may return. A walk goes through rows it does not admit (so a graph
/// stays connected around deleted or filtered-out rows) and never returns them.
pub trait Admission: Sync {
    /// Whether `row` may be returned. The hot path of every search: lock-free and cheap.
    fn admits(&self, row: u32) -> bool;

    /// How many rows it admits: the planner's selectivity.
    fn admitted(&self) -> Admitted {
        Admitted::Unknown
    }

    /// The admitted rows, each once and in any order, when they are listed: a scan of the
    /// admitted set reads only these. Every listed row still passes
    /// [`admits_listed`](Self::admits_listed) before it is returned (a delete may land after
    /// the list was made).
    fn rows(&self) -> Option<&[u32]> {
        None
    }

    /// Whether `row`, taken from [`rows`](Self::rows), may be returned: the tests the listing
    /// already passed (a filter's) need not run again.
    #[inline]
    fn admits_listed(&self, row: u32) -> bool {
        self.admits(row)
    }
}

/// Admits every row.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    #[inline]
    fn admits(&self, _row: u32) -> bool {
        true
    }
}

/// Admits the rows a predicate accepts (tests and simple callers).
#[derive(Debug, Clone, Copy)]
pub struct AdmitIf<F>(pub F);

impl<F: Fn(u32) -> bool + Sync> Admission for AdmitIf<F> {
    #[inline]
    fn admits(&self, row: u32) -> bool {
        (self.0)(row)
    }
}
