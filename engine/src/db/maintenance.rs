//! Maintenance: compaction on demand and the policy, garbage collection, the version list,
//! poisoning, and stopping the background worker.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use strata_manifest::Retention;
use strata_manifest::keys::manifest_key;

use super::commit::now_ms;
use super::{Db, GcStats, Inner, Poison, Work, panic_message};
use crate::compaction::CompactionPolicy;
use crate::control::{Control, Operation, Stage};
use crate::parallel::on_a_pool_thread;
use crate::stats::Tally;
use crate::{Error, Result};

impl Db {
    /// Runs compactions until the policy finds nothing to do, in this thread, and returns how
    /// many it ran. For tools and tests; the background worker does the same after commits.
    /// A compaction that fails before it publishes its version (a full disk while it writes
    /// its output, say) changes nothing and leaves the handle writable; one whose publish fails
    /// poisons the handle for writes (see [`Error::Poisoned`]).
    ///
    /// After any compaction, this (and the worker) collects garbage as [`gc`](Self::gc) does:
    /// the replaced segments' files go once retention no longer keeps a version naming them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use strata::{Db, Metric, Options, compaction::CompactAll};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2).background_compaction(false))?;
    /// for id in 0..3u64 {
    ///     db.upsert(id, &[id as f32, 1.0])?;
    ///     db.commit()?; // a segment each
    /// }
    /// db.set_compaction_policy(Arc::new(CompactAll));
    /// assert_eq!(db.compact()?, 1);
    /// assert_eq!(db.segments().len(), 1);
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn compact(&self) -> Result<usize> {
        self.compact_with(&Control::new())
    }

    /// [`compact`](Self::compact), reporting each compaction's steps to `control` and stopping
    /// with [`Error::Cancelled`] when its token is cancelled: the compaction in progress then
    /// publishes nothing (its partial output is garbage for [`gc`](Self::gc)), and those
    /// finished before it stay.
    pub fn compact_with(&self, control: &Control) -> Result<usize> {
        if !on_a_pool_thread() {
            return self.inner.compact_all(control);
        }
        // On a rayon worker, the build's parallel work would let this thread run other queued
        // jobs while it holds the compaction lock (one of them may want that lock, or wait for
        // this compaction): a thread of its own waits without running anything else.
        std::thread::scope(|scope| {
            let inner = &self.inner;
            scope.spawn(move || inner.compact_all(control)).join()
        })
        .unwrap_or_else(|panic| {
            let message = panic_message(&*panic);
            Err(Error::Panicked { during: "compact", message })
        })
    }

    /// The error of the last compaction (background or [`compact`](Self::compact)) while
    /// compactions keep failing without changing the database, as on a full disk; `None`
    /// once one succeeds or none is needed. Commits do not wait for compaction meanwhile,
    /// so segments accumulate until the cause is fixed.
    pub fn compaction_error(&self) -> Option<String> {
        self.inner.compaction_failure.lock().clone()
    }

    /// Replaces the compaction policy of this handle (not stored: reopening restores
    /// [`SizeTiered`](crate::compaction::SizeTiered)). See
    /// [`NoCompaction`](crate::compaction::NoCompaction) and
    /// [`CompactAll`](crate::compaction::CompactAll).
    pub fn set_compaction_policy(&self, policy: Arc<dyn CompactionPolicy>) {
        *self.inner.policy.write() = policy;
        self.inner.wake(Work::Compact);
    }

    /// Stops the background worker, cancelling a compaction in progress (it publishes nothing),
    /// and drops
    /// the handle. Uncommitted writes are dropped, as on any drop. Dropping the handle does the
    /// same; `close` reports a worker that failed.
    pub fn close(self) -> Result<()> {
        self.stop_worker();
        match &*self.inner.poisoned.lock() {
            Some(poison) if poison.by_worker => {
                Err(Error::Poisoned { cause: Arc::clone(&poison.cause) })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn stop_worker(&self) {
        if let Some(worker) = self.worker.lock().take() {
            // Queued flushes and compactions are dropped: uncommitted writes are not committed
            // on the way out.
            self.inner.stopping.store(true, Ordering::Release);
            // A compaction in progress stops at its next check instead of running to the end.
            self.inner.worker_control.token().cancel();
            *self.inner.work.lock() = None;
            let _ = worker.sender.send(Work::Stop);
            if worker.thread.join().is_err() {
                let message = "the worker thread ended by a panic".to_owned();
                self.inner.poison(Error::Panicked { during: "background work", message }, true);
            }
        }
    }

    /// Deletes what no retained version and no live snapshot of this handle uses: manifest
    /// versions outside retention, then segment files and deletion vectors only they (or failed
    /// commits) referenced. Compaction runs this itself after it replaces segments; call it
    /// after commits that only deleted, or after shortening retention.
    ///
    /// Read-only handles elsewhere rely on retention: one reading a version that falls out of
    /// it may fail on its next read of a removed file.
    pub fn gc(&self) -> Result<GcStats> {
        self.inner.gc(&Control::new())
    }

    /// [`gc`](Self::gc), reporting each delete to `control` and stopping between deletes with
    /// [`Error::Cancelled`] when its token is cancelled (every delete is safe on its own: the
    /// next collection finishes the job).
    pub fn gc_with(&self, control: &Control) -> Result<GcStats> {
        self.inner.gc(control)
    }
}

impl Inner {
    /// Refuses writes from now on, keeping the first cause (`by_worker`: the background
    /// worker's, which `close` reports); returns `cause`, for the caller to report.
    pub(crate) fn poison(&self, cause: Error, by_worker: bool) -> Arc<Error> {
        let cause = Arc::new(cause);
        self.poisoned.lock().get_or_insert_with(|| {
            tracing::error!(cause = %cause, by_worker, "handle poisoned: it refuses writes");
            Poison { cause: Arc::clone(&cause), by_worker }
        });
        // The caller reports its own error, even when an earlier one poisoned the handle.
        cause
    }

    /// Poisons the handle after a failed publish (a manifest write whose outcome is unknown,
    /// or a conflict) and returns what the caller reports: a conflict as itself (the cause
    /// kept is the same conflict), anything else as [`Error::Poisoned`] with it as the cause.
    pub(crate) fn poison_publish(&self, error: Error) -> Error {
        match error {
            Error::Conflict { version } => {
                self.poison(Error::Conflict { version }, false);
                Error::Conflict { version }
            }
            error => Error::Poisoned { cause: self.poison(error, false) },
        }
    }

    pub(crate) fn gc(&self, control: &Control) -> Result<GcStats> {
        self.check_writable()?;
        let _span = tracing::info_span!("strata.gc").entered();
        Tally::add(&self.tally.gcs, 1);
        let _commit = self.commit_lock.lock();
        let manifest = Arc::clone(&self.snapshot.read().manifest);
        let in_use: HashSet<String> = {
            let mut opened = self.opened_segments.lock();
            opened.retain(|weak| weak.strong_count() > 0);
            let mut keys: HashSet<String> =
                opened.iter().filter_map(Weak::upgrade).map(|s| s.object().to_owned()).collect();
            keys.extend(self.in_flight.lock().iter().cloned());
            keys
        };
        let retention = Retention {
            keep_versions: manifest.options.keep_versions,
            keep_for_ms: manifest.options.keep_for_secs.saturating_mul(1000),
        };
        let plan =
            strata_manifest::plan_gc(&*self.storage, &manifest, retention, now_ms(), &|key| {
                in_use.contains(key)
            })?;
        debug_assert!(!plan.manifests.contains(&manifest_key(manifest.version)));
        let total = (plan.manifests.len() + plan.files.len()) as u64;
        for (done, key) in plan.manifests.iter().chain(&plan.files).enumerate() {
            control.tick(Operation::Gc, Stage::Delete, done as u64, total)?;
            self.storage.delete(key)?;
        }
        control.report(Operation::Gc, Stage::Delete, total, total);
        tracing::info!(manifests = plan.manifests.len(), files = plan.files.len(), "collected");
        Ok(GcStats { manifests: plan.manifests.len(), files: plan.files.len() })
    }
}

#[cfg(test)]
mod tests {
    use strata_quantize::Metric;
    use strata_storage::{MemoryStore, Storage};

    use super::*;
    use crate::Options;

    #[test]
    fn gc_spares_segments_that_a_live_snapshot_reads() {
        let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        // (No background worker: its planning briefly holds snapshots too.)
        let options = Options::new(2, Metric::L2).keep_versions(1).background_compaction(false);
        let db = Db::create_in(Arc::clone(&store), options).unwrap();
        db.upsert(1, &[1.0, 2.0]).unwrap();
        db.commit().unwrap();
        let held = db.inner.current_snapshot();
        let file = held.segments[0].record.file_key(0);
        db.delete(1).unwrap();
        db.commit().unwrap();
        assert!(db.inner.current_snapshot().segments.is_empty(), "a fully deleted segment leaves");

        // A search that started before the commit still reads the old segment.
        assert_eq!(db.gc().unwrap().files, 0);
        assert!(store.size(&file).is_ok());
        drop(held);
        assert_eq!(db.gc().unwrap().files, 1);
        assert!(store.size(&file).unwrap_err().is_not_found());
    }
}
