//! The manifest: one immutable object per committed version, describing the whole database.
//! Byte layout: `docs/format/manifest.md`.

use strata_storage::framing::{FormatId, frame, unframe};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{ManifestError, Problem, Result};

/// What this build reads and writes.
/// Minor 2 added the attribute schema after the file records.
pub const FORMAT: FormatId =
    FormatId { magic: *b"STRAMANI", major: 1, minor: 2, known_features: 0 };

/// The kind of a segment, which decides its files and how the engine opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// A flat segment: one file, searched by an exact scan.
    Flat,
    /// A Vamana (DiskANN) segment: one file; quantized codes in RAM, nodes on disk.
    Vamana,
}

impl SegmentKind {
    /// The stable on-disk code.
    pub const fn code(self) -> u16 {
        match self {
            SegmentKind::Flat => 1,
            SegmentKind::Vamana => 2,
        }
    }

    /// The kind with on-disk code `code`, if this build knows it.
    pub const fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(SegmentKind::Flat),
            2 => Some(SegmentKind::Vamana),
            _ => None,
        }
    }

    /// How many files a segment of this kind has (roles `0..file_count`).
    pub const fn file_count(self) -> usize {
        match self {
            SegmentKind::Flat | SegmentKind::Vamana => 1,
        }
    }

    /// The file name extension of role `role`.
    pub fn file_extension(self, role: u16) -> &'static str {
        match (self, role) {
            (SegmentKind::Flat, _) => "flat",
            (SegmentKind::Vamana, _) => "vamana",
        }
    }
}

/// One file of a segment: its size and the body checksum in its footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub crc32: u32,
}

/// A segment's current deletion vector object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletesRecord {
    /// The version whose commit wrote it (part of its key).
    pub generation: u64,
    /// The writer tag in its key (see [`keys::deletes_key`](crate::keys::deletes_key)).
    pub tag: u64,
    /// Rows it marks deleted.
    pub deleted: u64,
    /// Its size and whole-object checksum (crc32 of every byte, footer included).
    pub size: u64,
    pub crc32: u32,
}

/// A segment as the manifest sees it: a kind tag, files, row count and deletion vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    pub id: u64,
    /// The writer tag in its files' keys (see
    /// [`keys::segment_file_key`](crate::keys::segment_file_key)).
    pub tag: u64,
    pub kind: SegmentKind,
    pub rows: u64,
    /// One per role of `kind`, in role order.
    pub files: Vec<FileRecord>,
    pub deletes: Option<DeletesRecord>,
}

impl SegmentRecord {
    /// The key of the file with role `role`.
    pub fn file_key(&self, role: u16) -> String {
        crate::keys::segment_file_key(self.id, self.tag, self.kind, role)
    }

    /// The key of the current deletion vector, if any.
    pub fn deletes_key(&self) -> Option<String> {
        self.deletes.map(|d| crate::keys::deletes_key(self.id, d.generation, d.tag))
    }

    /// Rows not deleted.
    pub fn live_rows(&self) -> u64 {
        self.rows - self.deletes.map_or(0, |d| d.deleted)
    }
}

/// Settings fixed when the database was created, or changed only by a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOptions {
    /// Vector dimension.
    pub dim: u32,
    /// The metric's on-disk code (`strata_quantize::Metric::code`).
    pub metric: u8,
    /// HNSW memtable links per node.
    pub hnsw_m: u32,
    /// HNSW memtable construction candidate list size.
    pub hnsw_ef_construction: u32,
    /// Retention: newest versions garbage collection keeps (at least 1).
    pub keep_versions: u32,
    /// Retention: versions committed within this many seconds before a collection runs are
    /// kept too (0: no time-based retention).
    pub keep_for_secs: u64,
    /// How segments are compacted and the memtable flushed (minor version 1; zeros in a minor 0
    /// manifest, which mean the engine's defaults).
    pub compaction: CompactionSettings,
    /// The attribute schema: `(name, type code)` per column, in column order (minor version 2;
    /// none before). The engine owns the type codes' meaning.
    pub attributes: Vec<StoredColumn>,
}

/// One attribute column as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredColumn {
    pub name: String,
    pub type_code: u8,
}

/// Compaction and flush settings as stored. Every zero field means "the engine's default", so
/// an engine can change a default without rewriting manifests; the engine owns the meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionSettings {
    /// Segments of a similar size that trigger a merge.
    pub threshold: u32,
    /// A segment past this deleted fraction (in thousandths) is rewritten.
    pub deleted_rewrite_permille: u16,
    /// Merged outputs of at least this many rows become Vamana segments.
    pub diskann_min_rows: u64,
    /// R of Vamana builds.
    pub vamana_max_degree: u16,
    /// The codec code of Vamana segments' in-RAM codes, and its parameter (sub-spaces).
    pub vamana_codec: u8,
    pub vamana_codec_param: u16,
    /// Memory a compaction's build may hold, in MiB.
    pub memory_mib: u32,
    /// Memtable bytes past which the engine commits by itself.
    pub auto_flush_bytes: u64,
    /// [`COMPACTION_OFF`](Self::COMPACTION_OFF), [`AUTO_FLUSH_OFF`](Self::AUTO_FLUSH_OFF).
    pub flags: u8,
}

impl CompactionSettings {
    /// No background compaction.
    pub const COMPACTION_OFF: u8 = 1;
    /// No automatic flush.
    pub const AUTO_FLUSH_OFF: u8 = 2;
    const KNOWN_FLAGS: u8 = Self::COMPACTION_OFF | Self::AUTO_FLUSH_OFF;
}

/// One committed version of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub version: u64,
    /// When the commit happened, in milliseconds since the Unix epoch (for time retention).
    pub committed_at_ms: u64,
    pub options: StoredOptions,
    /// The id the next new segment gets; above every id ever used.
    pub next_segment_id: u64,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentRecord>,
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct HeaderRaw {
    version: U64,
    committed_at_ms: U64,
    next_segment_id: U64,
    dim: U32,
    metric: u8,
    reserved0: [u8; 3],
    hnsw_m: U32,
    hnsw_ef_construction: U32,
    keep_versions: U32,
    reserved1: U32,
    keep_for_secs: U64,
    segment_count: U32,
    file_count: U32,
    compaction_threshold: U32,
    deleted_rewrite_permille: U16,
    vamana_max_degree: U16,
    vamana_codec: u8,
    compaction_flags: u8,
    vamana_codec_param: U16,
    compaction_memory_mib: U32,
    diskann_min_rows: U64,
    auto_flush_bytes: U64,
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SegmentRaw {
    id: U64,
    rows: U64,
    kind: U16,
    file_count: U16,
    first_file: U32,
    deletes_generation: U64,
    deletes_deleted: U64,
    deletes_size: U64,
    deletes_crc32: U32,
    tag: U64,
    deletes_tag: U64,
    reserved: [u8; 12],
}

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FileRaw {
    size: U64,
    crc32: U32,
    reserved: U32,
}

const HEADER_LEN: usize = 96;
const SEGMENT_LEN: usize = 80;
const FILE_LEN: usize = 16;
const _: () = assert!(size_of::<HeaderRaw>() == HEADER_LEN);
const _: () = assert!(size_of::<SegmentRaw>() == SEGMENT_LEN);
const _: () = assert!(size_of::<FileRaw>() == FILE_LEN);

impl Manifest {
    /// The framed object.
    pub fn encode(&self) -> Vec<u8> {
        let file_count: usize = self.segments.iter().map(|s| s.files.len()).sum();
        let header = HeaderRaw {
            version: self.version.into(),
            committed_at_ms: self.committed_at_ms.into(),
            next_segment_id: self.next_segment_id.into(),
            dim: self.options.dim.into(),
            metric: self.options.metric,
            reserved0: [0; 3],
            hnsw_m: self.options.hnsw_m.into(),
            hnsw_ef_construction: self.options.hnsw_ef_construction.into(),
            keep_versions: self.options.keep_versions.into(),
            reserved1: 0.into(),
            keep_for_secs: self.options.keep_for_secs.into(),
            segment_count: (self.segments.len() as u32).into(),
            file_count: (file_count as u32).into(),
            compaction_threshold: self.options.compaction.threshold.into(),
            deleted_rewrite_permille: self.options.compaction.deleted_rewrite_permille.into(),
            vamana_max_degree: self.options.compaction.vamana_max_degree.into(),
            vamana_codec: self.options.compaction.vamana_codec,
            compaction_flags: self.options.compaction.flags,
            vamana_codec_param: self.options.compaction.vamana_codec_param.into(),
            compaction_memory_mib: self.options.compaction.memory_mib.into(),
            diskann_min_rows: self.options.compaction.diskann_min_rows.into(),
            auto_flush_bytes: self.options.compaction.auto_flush_bytes.into(),
        };
        let mut body = Vec::with_capacity(
            HEADER_LEN + self.segments.len() * SEGMENT_LEN + file_count * FILE_LEN,
        );
        body.extend_from_slice(header.as_bytes());
        let mut first_file = 0u32;
        for segment in &self.segments {
            let deletes = segment.deletes.unwrap_or(DeletesRecord {
                generation: 0,
                tag: 0,
                deleted: 0,
                size: 0,
                crc32: 0,
            });
            let raw = SegmentRaw {
                id: segment.id.into(),
                rows: segment.rows.into(),
                kind: segment.kind.code().into(),
                file_count: (segment.files.len() as u16).into(),
                first_file: first_file.into(),
                deletes_generation: deletes.generation.into(),
                deletes_deleted: deletes.deleted.into(),
                deletes_size: deletes.size.into(),
                deletes_crc32: deletes.crc32.into(),
                tag: segment.tag.into(),
                deletes_tag: deletes.tag.into(),
                reserved: [0; 12],
            };
            body.extend_from_slice(raw.as_bytes());
            first_file += segment.files.len() as u32;
        }
        for file in self.segments.iter().flat_map(|s| &s.files) {
            let raw =
                FileRaw { size: file.size.into(), crc32: file.crc32.into(), reserved: 0.into() };
            body.extend_from_slice(raw.as_bytes());
        }
        // The schema: a column count, then per column its type code, name length and name.
        let columns = &self.options.attributes;
        body.extend_from_slice(&(columns.len() as u32).to_le_bytes());
        for column in columns {
            body.push(column.type_code);
            body.push(column.name.len().min(255) as u8);
            body.extend_from_slice(&column.name.as_bytes()[..column.name.len().min(255)]);
        }
        frame(&FORMAT, 0, &body)
    }

    /// Decodes the object `object`, which should hold version `version`, and checks that it is
    /// internally consistent.
    pub fn decode(object: &str, bytes: &[u8], version: u64) -> Result<Self> {
        let corrupt = |problem| ManifestError::Corrupt { object: object.to_owned(), problem };
        let field = |field, value: u64| corrupt(Problem::Field { field, value });
        let (body, footer) = unframe(object, &FORMAT, bytes)?;
        let length = |expected: u64| corrupt(Problem::Length { len: body.len() as u64, expected });
        let (header, rest) =
            HeaderRaw::read_from_prefix(body).map_err(|_| length(HEADER_LEN as u64))?;
        if header.version.get() != version {
            return Err(corrupt(Problem::VersionMismatch {
                expected: version,
                found: header.version.get(),
            }));
        }
        let segment_count = header.segment_count.get() as usize;
        let file_count = header.file_count.get() as usize;
        let expected = HEADER_LEN + segment_count * SEGMENT_LEN + file_count * FILE_LEN;
        let minor = footer.minor.get();
        if (minor < 2 && body.len() != expected) || body.len() < expected {
            return Err(length(expected as u64));
        }
        let (records, schema_bytes) = rest.split_at(expected - HEADER_LEN);
        let attributes = if minor < 2 {
            Vec::new()
        } else {
            decode_schema(schema_bytes).ok_or_else(|| corrupt(Problem::Schema))?
        };
        let (segment_bytes, file_bytes) = records.split_at(segment_count * SEGMENT_LEN);
        let segments_raw = <[SegmentRaw]>::ref_from_bytes(segment_bytes).expect("whole entries");
        let files_raw = <[FileRaw]>::ref_from_bytes(file_bytes).expect("whole entries");

        let options = StoredOptions {
            dim: header.dim.get(),
            metric: header.metric,
            hnsw_m: header.hnsw_m.get(),
            hnsw_ef_construction: header.hnsw_ef_construction.get(),
            keep_versions: header.keep_versions.get(),
            keep_for_secs: header.keep_for_secs.get(),
            // Minor 0 kept these bytes reserved (zero): the engine's defaults.
            compaction: if footer.minor.get() == 0 {
                CompactionSettings::default()
            } else {
                CompactionSettings {
                    threshold: header.compaction_threshold.get(),
                    deleted_rewrite_permille: header.deleted_rewrite_permille.get(),
                    diskann_min_rows: header.diskann_min_rows.get(),
                    vamana_max_degree: header.vamana_max_degree.get(),
                    vamana_codec: header.vamana_codec,
                    vamana_codec_param: header.vamana_codec_param.get(),
                    memory_mib: header.compaction_memory_mib.get(),
                    auto_flush_bytes: header.auto_flush_bytes.get(),
                    flags: header.compaction_flags,
                }
            },
            attributes,
        };
        if options.compaction.flags & !CompactionSettings::KNOWN_FLAGS != 0 {
            return Err(field("compaction flags", options.compaction.flags.into()));
        }
        if options.dim == 0 {
            return Err(field("dim", 0));
        }
        if options.keep_versions == 0 {
            return Err(field("keep_versions", 0));
        }
        let next_segment_id = header.next_segment_id.get();
        let mut segments = Vec::with_capacity(segment_count);
        let mut seen = std::collections::HashSet::with_capacity(segment_count);
        let mut expected_first = 0usize;
        for raw in segments_raw {
            let id = raw.id.get();
            if id >= next_segment_id {
                return Err(field("segment id", id));
            }
            if !seen.insert(id) {
                return Err(corrupt(Problem::DuplicateSegment { id }));
            }
            let kind = SegmentKind::from_code(raw.kind.get())
                .ok_or_else(|| field("segment kind", raw.kind.get().into()))?;
            let count = raw.file_count.get() as usize;
            if count != kind.file_count() {
                return Err(field("file count", count as u64));
            }
            let first = raw.first_file.get() as usize;
            if first != expected_first || first + count > files_raw.len() {
                return Err(field("first file", first as u64));
            }
            expected_first += count;
            let files = files_raw[first..first + count]
                .iter()
                .map(|f| FileRecord { size: f.size.get(), crc32: f.crc32.get() })
                .collect();
            let rows = raw.rows.get();
            let deletes = match raw.deletes_generation.get() {
                0 => None,
                generation if generation > version => {
                    return Err(field("deletion vector generation", generation));
                }
                generation => Some(DeletesRecord {
                    generation,
                    tag: raw.deletes_tag.get(),
                    deleted: raw.deletes_deleted.get(),
                    size: raw.deletes_size.get(),
                    crc32: raw.deletes_crc32.get(),
                }),
            };
            if deletes.is_some_and(|d| d.deleted > rows) {
                return Err(field("deleted rows", raw.deletes_deleted.get()));
            }
            segments.push(SegmentRecord { id, tag: raw.tag.get(), kind, rows, files, deletes });
        }
        if expected_first != files_raw.len() {
            return Err(field("file count", files_raw.len() as u64));
        }
        Ok(Manifest {
            version,
            committed_at_ms: header.committed_at_ms.get(),
            options,
            next_segment_id,
            segments,
        })
    }
}

/// The schema block of a minor-2 manifest, if well formed: a u32 column count, then per column
/// a type code, a name length and a UTF-8 name, and nothing after.
fn decode_schema(mut bytes: &[u8]) -> Option<Vec<StoredColumn>> {
    let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    bytes = &bytes[4..];
    let mut columns = Vec::with_capacity(count.min(256));
    for _ in 0..count {
        let (&type_code, rest) = bytes.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let name = std::str::from_utf8(rest.get(..len as usize)?).ok()?;
        columns.push(StoredColumn { name: name.to_owned(), type_code });
        bytes = &rest[len as usize..];
    }
    bytes.is_empty().then_some(columns)
}
