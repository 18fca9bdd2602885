//! Long work that reports how far it got and stops when asked: compaction and garbage
//! collection (`Db::compact_with`, `Db::gc_with`), and the background worker, which `close`
//! cancels.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_segment_diskann::{BuildMonitor, BuildStage};

use crate::{Error, Result};

/// A flag that asks long work to stop; clone it to hand it to another thread.
///
/// ```
/// use strata::CancelToken;
/// let token = CancelToken::new();
/// let other = token.clone();
/// other.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the work holding this token to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Which long operation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A compaction: one merge of segments into a new one.
    Compaction,
    /// A garbage collection.
    Gc,
}

/// A step of a long operation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Compaction: the inputs' live rows are read (`done` of `total` rows).
    Read,
    /// Compaction into a Vamana segment: its codec is trained.
    Train,
    /// ...every row encoded.
    Encode,
    /// ...rows linked into the graph (`done` of `total`; a two-pass build counts both).
    Link,
    /// ...its recall measured.
    Calibrate,
    /// The output file is written.
    Write,
    /// The new version is committed (nothing can be cancelled from here on).
    Publish,
    /// Garbage collection: objects deleted (`done` of `total`).
    Delete,
}

/// One report of a long operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The operation.
    pub operation: Operation,
    /// Its step.
    pub stage: Stage,
    /// Units of the step done (rows or objects), and of how many (0 where unknown).
    pub done: u64,
    /// See `done`.
    pub total: u64,
}

type Report = dyn Fn(Progress) + Send + Sync;

/// How a long call reports and stops: a progress callback and a [`CancelToken`]. Cancelled
/// work stops at its next check (between batches of rows or objects) with
/// [`Error::Cancelled`]; a cancelled compaction publishes nothing and leaves only garbage that
/// [`Db::gc`](crate::Db::gc) removes; a cancelled collection stops between deletes, every one
/// of which was safe on its own.
///
/// ```
/// use std::sync::Arc;
/// use strata::{CancelToken, Control, Db, Metric, Options};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
/// let token = CancelToken::new();
/// let control = Control::new()
///     .on_progress(Arc::new(|p| eprintln!("{:?} {:?}: {}/{}", p.operation, p.stage, p.done, p.total)))
///     .cancel_with(token.clone());
/// db.compact_with(&control)?; // another thread may call token.cancel()
/// # Ok::<(), strata::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Control {
    report: Option<Arc<Report>>,
    cancel: CancelToken,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("reports", &self.report.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl Control {
    /// No reports, never cancelled unless its token is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports progress to `report`, called on the working thread between batches: keep it
    /// short.
    pub fn on_progress(mut self, report: Arc<dyn Fn(Progress) + Send + Sync>) -> Self {
        self.report = Some(report);
        self
    }

    /// Stops the work once `token` is cancelled.
    pub fn cancel_with(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The token that stops the work.
    pub fn token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Reports; `Err(Cancelled)` if the work should stop.
    pub(crate) fn tick(
        &self,
        operation: Operation,
        stage: Stage,
        done: u64,
        total: u64,
    ) -> Result<()> {
        if let Some(report) = &self.report {
            report(Progress { operation, stage, done, total });
        }
        if self.cancel.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }

    /// Reports without a chance to stop (a step that must finish once begun).
    pub(crate) fn report(&self, operation: Operation, stage: Stage, done: u64, total: u64) {
        if let Some(report) = &self.report {
            report(Progress { operation, stage, done, total });
        }
    }

    /// The same reports and cancellation for a Vamana build inside a compaction.
    pub(crate) fn build_monitor(&self) -> BuildMonitor {
        let monitor = BuildMonitor::default().cancel_when(Arc::clone(&self.cancel.0));
        match &self.report {
            None => monitor,
            Some(report) => {
                let report = Arc::clone(report);
                monitor.on_progress(Arc::new(move |p| {
                    let stage = match p.stage {
                        BuildStage::Train => Stage::Train,
                        BuildStage::Encode => Stage::Encode,
                        BuildStage::Link => Stage::Link,
                        BuildStage::Calibrate => Stage::Calibrate,
                        BuildStage::Write => Stage::Write,
                    };
                    let operation = Operation::Compaction;
                    report(Progress { operation, stage, done: p.done, total: p.total });
                }))
            }
        }
    }
}
