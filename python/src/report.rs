//! What a handle reports about itself (stats, segments, versions, counters), as plain dicts.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use strata::compaction::{SegmentDetails, SegmentKind};
use strata::{Counters, Schema, Stats, VersionInfo};

pub fn epoch_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

fn kind_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Flat => "flat",
        SegmentKind::Vamana => "vamana",
    }
}

pub fn versions<'py>(py: Python<'py>, versions: &[VersionInfo]) -> PyResult<Bound<'py, PyList>> {
    let items = versions
        .iter()
        .map(|v| {
            let dict = PyDict::new(py);
            dict.set_item("version", v.version.0)?;
            dict.set_item("committed_at", epoch_seconds(v.committed_at))?;
            dict.set_item("records", v.records)?;
            dict.set_item("segments", v.segments)?;
            Ok(dict)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

fn segment<'py>(py: Python<'py>, s: &SegmentDetails) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("id", s.info.id)?;
    dict.set_item("kind", kind_name(s.info.kind))?;
    dict.set_item("rows", s.info.rows)?;
    dict.set_item("live_rows", s.live_rows_now)?;
    dict.set_item("file_bytes", s.file_bytes)?;
    dict.set_item("ram_bytes", s.ram_bytes)?;
    dict.set_item("attribute_bytes", s.attribute_bytes)?;
    dict.set_item("codes", s.codes.as_deref())?;
    Ok(dict)
}

pub fn segments<'py>(py: Python<'py>, segments: &[SegmentDetails]) -> PyResult<Bound<'py, PyList>> {
    let items = segments.iter().map(|s| segment(py, s)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

pub fn counters<'py>(py: Python<'py>, c: &Counters) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("searches", c.searches)?;
    dict.set_item("upserts", c.upserts)?;
    dict.set_item("deletes", c.deletes)?;
    dict.set_item("commits", c.commits)?;
    dict.set_item("compactions", c.compactions)?;
    dict.set_item("gcs", c.gcs)?;
    dict.set_item("bytes_written", c.bytes_written)?;
    Ok(dict)
}

pub fn schema<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for column in schema.columns() {
        dict.set_item(&column.name, column.ty.name())?;
    }
    Ok(dict)
}

pub fn stats<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("version", s.version.0)?;
    dict.set_item("versions_kept", s.versions_kept)?;
    dict.set_item("records", s.records)?;
    dict.set_item("deleted_rows", s.deleted_rows)?;

    let memtables = PyDict::new(py);
    memtables.set_item("active_rows", s.memtables.active_rows)?;
    memtables.set_item("pending_tiers", s.memtables.pending_tiers)?;
    memtables.set_item("pending_rows", s.memtables.pending_rows)?;
    memtables.set_item("bytes", s.memtables.bytes)?;
    dict.set_item("memtables", memtables)?;

    dict.set_item("segments", segments(py, &s.segments)?)?;
    let by_kind = s
        .by_kind
        .iter()
        .map(|k| {
            let kind = PyDict::new(py);
            kind.set_item("kind", kind_name(k.kind))?;
            kind.set_item("segments", k.segments)?;
            kind.set_item("rows", k.rows)?;
            kind.set_item("live_rows", k.live_rows)?;
            kind.set_item("file_bytes", k.file_bytes)?;
            kind.set_item("ram_bytes", k.ram_bytes)?;
            kind.set_item("codecs", &k.codecs)?;
            Ok(kind)
        })
        .collect::<PyResult<Vec<_>>>()?;
    dict.set_item("by_kind", by_kind)?;

    let ram = PyDict::new(py);
    ram.set_item("memtables", s.ram.memtables)?;
    ram.set_item("id_index", s.ram.id_index)?;
    ram.set_item("segment_codes", s.ram.segment_codes)?;
    ram.set_item("attributes", s.ram.attributes)?;
    ram.set_item("deletion_bitmaps", s.ram.deletion_bitmaps)?;
    ram.set_item("total", s.ram.total)?;
    dict.set_item("ram", ram)?;
    dict.set_item("disk_bytes", s.disk_bytes)?;

    let c = &s.compaction;
    let compaction = PyDict::new(py);
    compaction.set_item("background", c.background)?;
    compaction.set_item("running", c.running)?;
    let planned = c
        .planned
        .as_ref()
        .map(|p| {
            let planned = PyDict::new(py);
            planned.set_item("inputs", p.inputs)?;
            planned.set_item("live_rows", p.live_rows)?;
            planned.set_item("output", kind_name(p.output))?;
            Ok::<_, PyErr>(planned)
        })
        .transpose()?;
    compaction.set_item("planned", planned)?;
    let last = c
        .last
        .as_ref()
        .map(|r| {
            let last = PyDict::new(py);
            last.set_item("inputs", r.inputs)?;
            last.set_item("output_rows", r.output_rows)?;
            last.set_item("output", kind_name(r.output))?;
            last.set_item("seconds", r.duration.as_secs_f64())?;
            last.set_item("finished_at", epoch_seconds(r.finished))?;
            Ok::<_, PyErr>(last)
        })
        .transpose()?;
    compaction.set_item("last", last)?;
    compaction.set_item("error", c.error.as_deref())?;
    dict.set_item("compaction", compaction)?;

    dict.set_item("counters", counters(py, &s.counters)?)?;
    Ok(dict)
}
