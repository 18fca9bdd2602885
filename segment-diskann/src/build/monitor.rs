//! How a long build reports how far it got and learns that it should stop.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The steps of a build, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStage {
    /// Training the codec on a sample.
    Train,
    /// Encoding every row.
    Encode,
    /// Linking rows into the graph (`done` of `total` rows; a two-pass build counts both).
    Link,
    /// Measuring recall at a ladder of search lists.
    Calibrate,
    /// Writing the segment file.
    Write,
}

/// Reported after each step and each batch of graph inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    pub stage: BuildStage,
    pub done: u64,
    pub total: u64,
}

type Report = dyn Fn(BuildProgress) + Send + Sync;

/// A progress callback and a cancellation flag for a build ([`BuildOptions::monitor`]). A
/// cancelled build stops at its next batch and returns [`VamanaError::Cancelled`] without
/// writing anything.
///
/// [`BuildOptions::monitor`]: crate::BuildOptions::monitor
/// [`VamanaError::Cancelled`]: crate::VamanaError::Cancelled
#[derive(Clone, Default)]
pub struct BuildMonitor {
    report: Option<Arc<Report>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl fmt::Debug for BuildMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildMonitor")
            .field("reports", &self.report.is_some())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl BuildMonitor {
    /// Reports progress to `report` (called on the building thread, between batches: keep it
    /// short).
    pub fn on_progress(mut self, report: Arc<Report>) -> Self {
        self.report = Some(report);
        self
    }

    /// Stops the build once `cancel` is set.
    pub fn cancel_when(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Whether the build should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Reports `done` of `total` in `stage`; returns whether the build should stop.
    pub(crate) fn tick(&self, stage: BuildStage, done: u64, total: u64) -> bool {
        if let Some(report) = &self.report {
            report(BuildProgress { stage, done, total });
        }
        self.is_cancelled()
    }
}
