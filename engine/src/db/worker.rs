//! Background work of a writer handle: compactions the policy plans, and automatic flushes.
//!
//! A compaction reads its inputs from a snapshot and builds its output with no lock held, so
//! writers, commits and searches go on meanwhile. Only its commit step takes the commit lock:
//! it writes a manifest that replaces the inputs by the output, then swaps the snapshot and the
//! id index, carrying every delete that reached the inputs in the meantime through the row map.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam::channel::Receiver;
use strata_manifest::keys::segment_file_key;
use strata_manifest::{DeletionVector, FileRecord, SegmentKind, SegmentRecord};
use strata_segment_diskann::VamanaBuilder;
use strata_segment_flat::FlatWriter;

use super::{DROPPED, Inner, STALL_FACTOR, Work, panic_message, segment_number};
use crate::bitmap::AtomicBitmap;
use crate::compaction::Plan;
use crate::control::{Control, Operation, Stage};

use crate::segment::{Segment, SegmentData, attribute_sections};
use crate::stats::{CompactionRun, Tally};
use crate::tiers::LiveSegment;
use crate::{Error, Result};
use strata_attributes::Record;
use strata_segment_flat::AttributeSections;

/// Rows a compaction reads between progress reports and cancellation checks.
const CHECK_EVERY: usize = 4096;

/// A compaction's output, written but not yet committed.
struct Output {
    record: SegmentRecord,
    /// Per input (in plan order): input row -> output row, or [`DROPPED`].
    row_maps: Vec<Vec<u32>>,
}

impl Inner {
    /// Sends `work` to the background worker, if one runs.
    pub(super) fn wake(&self, work: Work) {
        if let Some(sender) = &*self.work.lock() {
            let _ = sender.send(work);
        }
    }

    pub(super) fn run_worker(&self, receiver: &Receiver<Work>) {
        while let Ok(work) = receiver.recv() {
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| match work {
                Work::Stop => None,
                Work::Flush => {
                    self.flush_queued.store(false, Ordering::Release);
                    Some(self.commit().map(drop))
                }
                Work::Compact if self.options.background_compaction => {
                    Some(self.compact_all(&self.worker_control).map(drop))
                }
                Work::Compact => Some(Ok(())),
            }));
            match outcome {
                Ok(None) => return,
                Ok(Some(Ok(()))) => {}
                // A commit or compaction that failed has poisoned the handle (its cause names
                // the step) or, failing before it published anything, left the database as it
                // was and its error in `compaction_failure`; the worker waits for more work.
                Ok(Some(Err(_))) => {}
                Err(panic) => {
                    let message = panic_message(&*panic);
                    self.poison(Error::Panicked { during: "background work", message }, true);
                    return;
                }
            }
        }
    }

    /// Waits while the worker has compaction work and the segment count is past the stall
    /// limit (see [`STALL_FACTOR`]). Never called on the worker's own thread.
    pub(super) fn stall_while_compaction_is_behind(&self) {
        if !self.options.background_compaction || self.work.lock().is_none() {
            return;
        }
        let limit = self.options.compaction_threshold.saturating_mul(STALL_FACTOR);
        let behind = || {
            let snapshot = self.current_snapshot();
            let infos = snapshot.segment_infos();
            infos.len() > limit
                && self.poisoned.lock().is_none()
                && self.compaction_failure.lock().is_none()
                && self.work.lock().is_some()
                && self.policy.read().plan(&infos, &self.options.policy_settings()).is_some()
        };
        let (lock, condvar) = &self.compacted;
        let mut guard = lock.lock();
        while behind() {
            // Timed: the worker may finish between the check and the wait.
            condvar.wait_for(&mut guard, Duration::from_millis(50));
        }
    }

    /// Runs compactions until the policy finds none (or the handle refuses writes); returns
    /// how many ran.
    pub(super) fn compact_all(&self, control: &Control) -> Result<usize> {
        self.check_writable()?;
        let _one = self.compaction_lock.lock();
        let mut done = 0;
        let mut stale: Option<Plan> = None;
        loop {
            self.check_writable()?;
            let segments = self.current_snapshot().segment_infos();
            let settings = self.options.policy_settings();
            let plan = self.policy.read().plan(&segments, &settings);
            let Some(plan) = plan else {
                *self.compaction_failure.lock() = None;
                if done > 0 {
                    self.collect_after_compaction(control);
                }
                return Ok(done);
            };
            let span = tracing::info_span!(
                "strata.compaction",
                inputs = ?plan.inputs,
                output = ?plan.output,
                into = ?plan.into
            );
            let _entered = span.enter();
            match self.compact_once(&plan, control) {
                Ok(true) => {
                    *self.compaction_failure.lock() = None;
                    done += 1;
                    self.compacted.1.notify_all();
                    stale = None;
                }
                // The inputs changed under the plan (a commit removed one): plan again, but
                // a policy that names the same missing segments twice is broken.
                Ok(false) if stale.as_ref() != Some(&plan) => stale = Some(plan),
                Ok(false) => {
                    let reason = format!("inputs {:?} are not live segments", plan.inputs);
                    self.poison(Error::InvalidPlan { reason: reason.clone() }, true);
                    return Err(Error::InvalidPlan { reason });
                }
                // A failed publish poisoned the handle in `compact_once`. Anything before it
                // (a full disk while writing the output, an input that does not read) changed
                // nothing a reader sees: writes go on, the worker tries again after the next
                // commit, and the error stays readable until a compaction succeeds.
                Err(Error::Cancelled) => {
                    tracing::info!("compaction cancelled: nothing published");
                    self.compacted.1.notify_all();
                    return Err(Error::Cancelled);
                }
                Err(error) => {
                    tracing::warn!(%error, "compaction failed before publishing; retried after the next commit");
                    *self.compaction_failure.lock() =
                        Some(format!("compaction of {:?}: {error}", plan.inputs));
                    self.compacted.1.notify_all();
                    return Err(error);
                }
            }
        }
    }

    /// Deletes what compaction left behind and retention no longer keeps (see [`Inner::gc`]):
    /// replaced segments would otherwise stay on disk until someone calls `gc`, so a database
    /// under churn grew by a copy of its graph every round (issue 20: 358 MB -> 1.09 GB over
    /// five rounds of 50% on 100k x 128). Best effort: a failure leaves files for the next
    /// collection and is not a reason to refuse writes.
    fn collect_after_compaction(&self, control: &Control) {
        let _ = self.gc(control);
    }

    /// Carries out `plan`; returns false if its inputs are no longer all live.
    fn compact_once(&self, plan: &Plan, control: &Control) -> Result<bool> {
        let started = std::time::Instant::now();
        let mut unique = plan.inputs.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.is_empty() || unique.len() != plan.inputs.len() {
            return Err(Error::InvalidPlan {
                reason: format!("inputs {:?} are empty or name a segment twice", plan.inputs),
            });
        }
        if let Some(base) = plan.into
            && (plan.output != SegmentKind::Vamana || !plan.inputs.contains(&base))
        {
            return Err(Error::InvalidPlan {
                reason: format!(
                    "a merge into {base} must name it among its inputs {:?} and make a Vamana segment",
                    plan.inputs
                ),
            });
        }
        // Under the commit lock (which GC holds throughout) the inputs are read from the newest
        // version and their files, with the output's key, are marked in flight: GC spares them
        // until the compaction is committed or abandoned.
        let (inputs, segment_id, _in_flight) = {
            let _commit = self.commit_lock.lock();
            let snapshot = self.current_snapshot();
            // The base of a merge into a kept graph goes first: its rows become the output's
            // first rows, in order, as the builder requires.
            let order = plan
                .into
                .into_iter()
                .chain(plan.inputs.iter().copied().filter(|&id| Some(id) != plan.into));
            let Some(inputs) = order
                .map(|id| snapshot.segments.iter().find(|s| s.record.id == id).cloned())
                .collect::<Option<Vec<_>>>()
            else {
                return Ok(false);
            };
            let segment_id = {
                let mut next = self.next_segment_id.lock();
                let id = *next;
                segment_number(id)?;
                *next += 1;
                id
            };
            let mut keys = vec![segment_file_key(segment_id, self.tag, plan.output, 0)];
            keys.extend(inputs.iter().filter_map(|live| live.record.deletes_key()));
            (inputs, segment_id, InFlight::mark(self, keys))
        };
        let keep_graph = plan.into.is_some();
        if keep_graph && inputs[0].record.kind != SegmentKind::Vamana {
            return Err(Error::InvalidPlan {
                reason: format!("segment {} has no graph to merge into", inputs[0].record.id),
            });
        }
        let build = tracing::debug_span!("build", segment_id).entered();
        // The build's training, encoding and linking run on the engine's build pool.
        let output = self
            .build_pool
            .install(|| self.write_output(segment_id, plan.output, &inputs, keep_graph, control))?;
        drop(build);
        let Some(output) = output else {
            return Ok(false);
        };
        // The last chance to stop: from here the version is published.
        control.tick(Operation::Compaction, Stage::Publish, 0, 1)?;
        let _publish = tracing::debug_span!("publish").entered();
        let (output_rows, output_kind) = (output.record.rows, output.record.kind);
        let files = output.record.files.iter().map(|f| f.size).sum::<u64>();
        let written = files + self.commit_compaction(&inputs, output)?;
        *self.last_compaction.lock() = Some(CompactionRun {
            inputs: inputs.len(),
            output_rows,
            output: output_kind,
            duration: started.elapsed(),
            finished: std::time::SystemTime::now(),
        });
        Tally::add(&self.tally.compactions, 1);
        Tally::add(&self.tally.bytes_written, written);
        control.report(Operation::Compaction, Stage::Publish, 1, 1);
        tracing::info!(
            output_rows,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            bytes = written,
            "compacted"
        );
        Ok(true)
    }

    /// Streams the rows of `inputs` that were live in their committed deletion vectors into a
    /// new segment of kind `kind`. Rows deleted since the last commit are kept: the version this
    /// compaction commits must hold exactly the committed records. With `keep_graph`, the
    /// output keeps the graph of `inputs[0]`, a Vamana segment.
    fn write_output(
        &self,
        segment_id: u64,
        kind: SegmentKind,
        inputs: &[Arc<LiveSegment>],
        keep_graph: bool,
        control: &Control,
    ) -> Result<Option<Output>> {
        let storage = &*self.storage;
        let committed: Vec<DeletionVector> = inputs
            .iter()
            .map(|live| strata_manifest::read_deletes(storage, &live.record))
            .collect::<Result<_, _>>()?;
        // Output rows are u32 and DROPPED is the largest: a plan (a custom policy's too) whose
        // live rows do not fit is refused before a counter could wrap.
        let live: u64 = committed.iter().map(|deletes| deletes.rows() - deletes.deleted()).sum();
        if live >= u64::from(DROPPED) {
            return Err(Error::InvalidPlan {
                reason: format!("{live} live rows do not fit one segment (at most 2^32 - 2)"),
            });
        }
        let mut row_maps = Vec::with_capacity(inputs.len());
        let mut rows = 0u32;
        for deletes in &committed {
            let map: Vec<u32> = (0..deletes.rows())
                .map(|row| {
                    if deletes.contains(row) {
                        DROPPED
                    } else {
                        rows += 1;
                        rows - 1
                    }
                })
                .collect();
            row_maps.push(map);
        }
        if rows == 0 {
            return Ok(None);
        }
        let key = segment_file_key(segment_id, self.tag, kind, 0);
        let rows_each = || {
            inputs.iter().zip(&row_maps).flat_map(|(live, map)| {
                map.iter()
                    .enumerate()
                    .filter(|(_, out)| **out != DROPPED)
                    .map(move |(row, _)| (live, row as u32))
            })
        };
        // The rows' attributes, in output order, if any input has some.
        let attributes = if inputs.iter().any(|live| live.segment.has_attributes()) {
            let records = rows_each()
                .map(|(live, row)| live.segment.record(row))
                .collect::<Result<Vec<Record>>>()?;
            attribute_sections(&self.options.attributes, &records)
        } else {
            AttributeSections::default()
        };
        let (size, crc32) = match kind {
            SegmentKind::Flat => {
                let mut writer =
                    FlatWriter::new(storage, &key, self.dim, self.metric, u64::from(rows))?;
                let total = u64::from(rows);
                for (done, (live, row)) in rows_each().enumerate() {
                    if done % CHECK_EVERY == 0 {
                        control.tick(Operation::Compaction, Stage::Read, done as u64, total)?;
                    }
                    let id = live.segment.id(row);
                    writer.push(id, live.segment.vector(row)?)?;
                }
                control.tick(Operation::Compaction, Stage::Write, total, total)?;
                writer.set_attributes(attributes);
                let written = writer.finish()?;
                (written.size, written.crc32)
            }
            SegmentKind::Vamana => {
                let build = self.options.vamana_build_options(u64::from(rows));
                let build = build.monitor(control.build_monitor());
                let mut builder = VamanaBuilder::new(self.dim, self.metric, build)?;
                let total = u64::from(rows);
                let mut done = 0u64;
                builder.reserve(u64::from(rows))?;
                // Each input's pages are released once the builder holds its rows (the kept
                // graph's base once its lists are copied too), so a merge's resident memory is
                // what the builder holds plus one input, not every input it streamed.
                for (i, (live, map)) in inputs.iter().zip(&row_maps).enumerate() {
                    for (row, _) in map.iter().enumerate().filter(|(_, out)| **out != DROPPED) {
                        if done.is_multiple_of(CHECK_EVERY as u64) {
                            control.tick(Operation::Compaction, Stage::Read, done, total)?;
                        }
                        done += 1;
                        let row = row as u32;
                        builder.push(live.segment.id(row), live.segment.vector(row)?)?;
                    }
                    if !(keep_graph && i == 0) {
                        live.segment.release_resident();
                    }
                }
                if keep_graph {
                    let SegmentData::Vamana(base) = &inputs[0].segment.data else {
                        unreachable!("compact_once checked the base's kind");
                    };
                    let row_map: Vec<Option<u32>> =
                        row_maps[0].iter().map(|&out| (out != DROPPED).then_some(out)).collect();
                    builder.keep_graph(base, &row_map)?;
                    base.release_resident();
                }
                builder.set_attributes(attributes);
                let report = builder.finish(storage, &key)?;
                (report.segment.size, report.segment.crc32)
            }
        };
        let record = SegmentRecord {
            id: segment_id,
            tag: self.tag,
            kind,
            rows: u64::from(rows),
            files: vec![FileRecord { size, crc32 }],
            deletes: None,
        };
        Ok(Some(Output { record, row_maps }))
    }

    /// Commits a version in which `output` replaces `inputs`, then swaps it in.
    /// Publishes `output` in place of `inputs`; returns the bytes of the deletion vector and
    /// manifest it wrote.
    fn commit_compaction(&self, inputs: &[Arc<LiveSegment>], mut output: Output) -> Result<u64> {
        let storage = &*self.storage;
        let segment = Arc::new(Segment::open(
            storage,
            &output.record,
            self.dim,
            self.metric,
            &self.options.attributes,
        )?);
        let _commit = self.commit_lock.lock();
        self.check_writable()?;
        let current = self.current_snapshot();
        let base = &current.manifest;
        let version = base.version + 1;
        self.check_base_exists(base.version)?;
        // Checked before the publish, so nothing after it can fail.
        let input_numbers: Vec<u32> =
            inputs.iter().map(|input| segment_number(input.record.id)).collect::<Result<_>>()?;
        let output_number = segment_number(output.record.id)?;

        // Deletes committed since the build started (or the whole input, if a commit dropped
        // it) carry over to the output's committed deletion vector.
        let mut committed = DeletionVector::new(output.record.rows);
        for (input, map) in inputs.iter().zip(&output.row_maps) {
            let now = current.segments.iter().find(|s| s.record.id == input.record.id);
            // The handle holds each live segment's committed deletion vector: no read.
            let deletes = now.map(|live| Arc::clone(&live.committed));
            for (row, &out) in map.iter().enumerate() {
                if out != DROPPED && deletes.as_ref().is_none_or(|d| d.contains(row as u64)) {
                    committed.insert(u64::from(out));
                }
            }
        }
        let keep_output = committed.deleted() < output.record.rows;
        if keep_output && committed.deleted() > 0 {
            output.record.deletes = Some(strata_manifest::write_deletes(
                storage,
                output.record.id,
                version,
                self.tag,
                &committed,
            )?);
        }
        let mut records: Vec<SegmentRecord> = base
            .segments
            .iter()
            .filter(|r| !inputs.iter().any(|i| i.record.id == r.id))
            .cloned()
            .collect();
        if keep_output {
            records.push(output.record.clone());
        }
        let manifest = self.next_manifest(base, records);
        let written = output.record.deletes.map_or(0, |d| d.size) + manifest.encode().len() as u64;
        if let Err(error) = strata_manifest::commit(storage, &manifest)
            .map_err(Error::from)
            .and_then(|()| self.check_base_exists(version - 1))
        {
            // The outcome on storage may be unknown: refuse writes from here.
            return Err(self.poison_publish(error));
        }

        // Committed. Swap the snapshot and the index together; under the index lock no delete
        // can set an input's bit, so the output bitmap takes every delete made until now.
        let mut guard = self.snapshot.write();
        let mut index = self.index.lock();
        let deleted = Arc::new(AtomicBitmap::from_deletion_vector(&committed));
        for (input, map) in inputs.iter().zip(&output.row_maps) {
            let now = guard.segments.iter().find(|s| s.record.id == input.record.id);
            for (row, &out) in map.iter().enumerate() {
                if out != DROPPED && now.is_none_or(|live| live.deleted.contains(row as u32)) {
                    deleted.set(out);
                }
            }
        }
        for &number in &input_numbers {
            index.drop_segment(number);
        }
        let mut next = (**guard).clone();
        next.segments.retain(|s| !inputs.iter().any(|i| i.record.id == s.record.id));
        let committed = Arc::new(committed);
        let live = Arc::new(LiveSegment { record: output.record, segment, deleted, committed });
        if keep_output {
            index.add_segment(output_number, Arc::clone(&live.deleted), live.segment.ids());
            next.segments.push(Arc::clone(&live));
            next.segments.sort_by_key(|s| s.record.id);
        }
        next.manifest = Arc::new(manifest);
        *guard = Arc::new(next);
        drop(index);
        drop(guard);
        if keep_output {
            self.register_segments(&[live]);
        }
        Ok(written)
    }
}

/// Object keys a running compaction reads or writes, which GC must spare; unmarked on drop.
struct InFlight<'a> {
    inner: &'a Inner,
    keys: Vec<String>,
}

impl<'a> InFlight<'a> {
    fn mark(inner: &'a Inner, keys: Vec<String>) -> Self {
        inner.in_flight.lock().extend(keys.iter().cloned());
        InFlight { inner, keys }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.inner.in_flight.lock();
        for key in &self.keys {
            in_flight.remove(key);
        }
    }
}
