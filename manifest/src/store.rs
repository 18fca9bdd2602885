//! Reading and committing manifest versions and deletion vectors in a [`Storage`].

use std::collections::BTreeSet;

use strata_storage::Storage;

use crate::keys::{
    DELETES_PREFIX, MANIFEST_PREFIX, SEGMENT_PREFIX, deletes_key, manifest_key, parse_deletes_key,
    parse_manifest_key, parse_segment_file_key,
};
use crate::{
    DeletesRecord, DeletionVector, Manifest, ManifestError, Problem, Result, SegmentRecord,
};

/// Every committed version in `storage`, oldest first.
pub fn list_versions(storage: &dyn Storage) -> Result<Vec<u64>> {
    let mut versions: Vec<u64> = storage
        .list(MANIFEST_PREFIX)?
        .iter()
        .filter_map(|meta| parse_manifest_key(&meta.key))
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// The manifest of `version`.
pub fn load(storage: &dyn Storage, version: u64) -> Result<Manifest> {
    let key = manifest_key(version);
    let bytes = storage.get(&key).map_err(|e| {
        if e.is_not_found() { ManifestError::VersionNotFound { version } } else { e.into() }
    })?;
    Manifest::decode(&key, &bytes, version)
}

/// The newest committed version.
///
/// Commits are atomic, so a newest manifest that fails its checks is real damage: it is
/// reported as an error naming the object, never skipped in favour of an older version (open an
/// older version explicitly with [`load`] to read past it).
pub fn load_latest(storage: &dyn Storage) -> Result<Manifest> {
    let newest = *list_versions(storage)?.last().ok_or(ManifestError::NoDatabase)?;
    load(storage, newest)
}

/// Commits `manifest` as its version with create-if-absent: if that version exists already,
/// another writer committed first and this fails with [`ManifestError::Conflict`], changing
/// nothing.
pub fn commit(storage: &dyn Storage, manifest: &Manifest) -> Result<()> {
    storage.put_if_absent(&manifest_key(manifest.version), &manifest.encode()).map_err(|e| {
        if e.is_already_exists() {
            ManifestError::Conflict { version: manifest.version }
        } else {
            e.into()
        }
    })
}

/// Writes the deletion vector of segment `segment` for the commit of version `generation` by
/// the writer tagged `tag`.
pub fn write_deletes(
    storage: &dyn Storage,
    segment: u64,
    generation: u64,
    tag: u64,
    deletes: &DeletionVector,
) -> Result<DeletesRecord> {
    let bytes = deletes.encode(segment);
    storage.put(&deletes_key(segment, generation, tag), &bytes)?;
    Ok(DeletesRecord {
        generation,
        tag,
        deleted: deletes.deleted(),
        size: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
    })
}

/// Reads the current deletion vector of `segment` (an empty one if it has none), checking it
/// against what the manifest recorded.
pub fn read_deletes(storage: &dyn Storage, segment: &SegmentRecord) -> Result<DeletionVector> {
    let (Some(record), Some(key)) = (segment.deletes, segment.deletes_key()) else {
        return Ok(DeletionVector::new(segment.rows));
    };
    let bytes = storage.get(&key)?;
    let recorded = |field, recorded: u64, found: u64| {
        (recorded != found).then(|| ManifestError::Corrupt {
            object: key.clone(),
            problem: Problem::Recorded { field, recorded, found },
        })
    };
    if let Some(e) = recorded("size", record.size, bytes.len() as u64)
        .or_else(|| recorded("checksum", record.crc32.into(), crc32fast::hash(&bytes).into()))
    {
        return Err(e);
    }
    let deletes = DeletionVector::decode(&key, &bytes, segment.id, segment.rows)?;
    if let Some(e) = recorded("deleted rows", record.deleted, deletes.deleted()) {
        return Err(e);
    }
    Ok(deletes)
}

/// How long old versions are kept for time travel and for readers still using them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many versions are kept (at least 1: the current one).
    pub keep_versions: u32,
    /// Versions committed within this many milliseconds before `now` are kept too.
    pub keep_for_ms: u64,
}

/// What garbage collection may delete, in order: manifests first (oldest first), then files.
/// Deleting in this order means a crash part-way leaves only unreferenced files, which the next
/// collection finds again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Manifest versions outside retention.
    pub manifests: Vec<String>,
    /// Segment files and deletion vectors no retained version references.
    pub files: Vec<String>,
}

/// Plans a collection for a database whose newest version is `newest`.
///
/// Kept: every version retention keeps, everything those reference, everything `in_use` claims
/// (objects that live snapshots read), and anything a concurrent writer might be committing:
/// manifests newer than `newest`, segment files with ids at or above its `next_segment_id`, and
/// deletion vectors of generations above its version. Keys the database does not own are never
/// touched.
pub fn plan_gc(
    storage: &dyn Storage,
    newest: &Manifest,
    retention: Retention,
    now_ms: u64,
    in_use: &dyn Fn(&str) -> bool,
) -> Result<GcPlan> {
    let keep_versions = retention.keep_versions.max(1) as usize;
    let older: Vec<u64> =
        list_versions(storage)?.into_iter().filter(|&v| v < newest.version).rev().collect();
    let mut referenced = BTreeSet::new();
    let mut reference = |manifest: &Manifest| {
        for segment in &manifest.segments {
            for role in 0..segment.files.len() {
                referenced.insert(segment.file_key(role as u16));
            }
            referenced.extend(segment.deletes_key());
        }
    };
    reference(newest);

    // Retained versions always form a suffix of the history (from the newest down to the first
    // version retention lets go; everything older goes too). Writers rely on it: a writer whose
    // base version still exists knows that no newer version was collected (see the engine's
    // commit).
    let mut plan = GcPlan::default();
    let mut cut = false;
    for (rank, &version) in older.iter().enumerate() {
        if cut {
            plan.manifests.push(manifest_key(version));
            continue;
        }
        // Rank 0 is the second-newest version: the newest counts as one kept version.
        let by_count = rank + 1 < keep_versions;
        let manifest = match load(storage, version) {
            Ok(manifest) => Some(manifest),
            // A damaged old version cannot be opened anyway: kept while retention counts it,
            // otherwise collected with everything older.
            Err(
                ManifestError::Corrupt { .. }
                | ManifestError::VersionNotFound { .. }
                | ManifestError::Storage(
                    strata_storage::Error::Corrupt { .. }
                    | strata_storage::Error::UnsupportedVersion { .. }
                    | strata_storage::Error::UnknownFeatures { .. },
                ),
            ) => None,
            Err(e) => return Err(e),
        };
        let by_time = manifest.as_ref().is_some_and(|m| {
            retention.keep_for_ms > 0
                && m.committed_at_ms.saturating_add(retention.keep_for_ms) >= now_ms
        });
        match manifest {
            Some(manifest) if by_count || by_time => reference(&manifest),
            None if by_count => {}
            _ => {
                cut = true;
                plan.manifests.push(manifest_key(version));
            }
        }
    }
    plan.manifests.reverse();

    for meta in storage.list(SEGMENT_PREFIX)? {
        let collectable =
            parse_segment_file_key(&meta.key).is_some_and(|id| id < newest.next_segment_id);
        if collectable && !referenced.contains(&meta.key) && !in_use(&meta.key) {
            plan.files.push(meta.key);
        }
    }
    for meta in storage.list(DELETES_PREFIX)? {
        let collectable = parse_deletes_key(&meta.key)
            .is_some_and(|(_, generation)| generation <= newest.version);
        if collectable && !referenced.contains(&meta.key) && !in_use(&meta.key) {
            plan.files.push(meta.key);
        }
    }
    Ok(plan)
}
