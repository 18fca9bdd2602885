//! Deletion vectors: which rows of one segment are deleted, as an immutable object.
//!
//! Layout (`docs/format/deletes.md`): a 32-byte header, then either a bitmap of `rows` bits in
//! little-endian `u64` words or the sorted deleted row numbers as `u32`, whichever is smaller,
//! then the framing footer.

use strata_storage::framing::{FormatId, frame, unframe};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::{ManifestError, Problem, Result};

/// What this build reads and writes.
pub const FORMAT: FormatId =
    FormatId { magic: *b"STRADELV", major: 1, minor: 0, known_features: 0 };

const ENCODING_BITMAP: u32 = 1;
const ENCODING_ROW_LIST: u32 = 2;

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    segment: U64,
    rows: U64,
    deleted: U64,
    encoding: U32,
    reserved: U32,
}
const HEADER_LEN: usize = 32;
const _: () = assert!(size_of::<Header>() == HEADER_LEN);

/// The deleted rows of a segment of `rows` rows, as a bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionVector {
    rows: u64,
    words: Vec<u64>,
    deleted: u64,
}

impl DeletionVector {
    /// No row deleted.
    pub fn new(rows: u64) -> Self {
        DeletionVector { rows, words: vec![0; rows.div_ceil(64) as usize], deleted: 0 }
    }

    /// From bitmap words (bit `r % 64` of word `r / 64` set when row `r` is deleted). Bits at or
    /// beyond `rows` must be clear.
    pub fn from_words(rows: u64, words: Vec<u64>) -> Self {
        assert_eq!(words.len() as u64, rows.div_ceil(64), "one bit per row");
        let deleted = words.iter().map(|w| u64::from(w.count_ones())).sum();
        DeletionVector { rows, words, deleted }
    }

    /// Rows in the segment.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows deleted.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// The bitmap words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Whether `row` is deleted.
    pub fn contains(&self, row: u64) -> bool {
        row < self.rows && self.words[(row / 64) as usize] & (1 << (row % 64)) != 0
    }

    /// Marks `row` deleted.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn insert(&mut self, row: u64) {
        assert!(row < self.rows, "row {row} beyond {} rows", self.rows);
        let word = &mut self.words[(row / 64) as usize];
        let bit = 1 << (row % 64);
        if *word & bit == 0 {
            *word |= bit;
            self.deleted += 1;
        }
    }

    /// The framed object for segment `segment`.
    pub fn encode(&self, segment: u64) -> Vec<u8> {
        let list_len = self.deleted * 4;
        let bitmap_len = self.words.len() as u64 * 8;
        let encoding = if list_len < bitmap_len && self.rows <= u64::from(u32::MAX) {
            ENCODING_ROW_LIST
        } else {
            ENCODING_BITMAP
        };
        let header = Header {
            segment: segment.into(),
            rows: self.rows.into(),
            deleted: self.deleted.into(),
            encoding: encoding.into(),
            reserved: 0.into(),
        };
        let mut body = header.as_bytes().to_vec();
        if encoding == ENCODING_ROW_LIST {
            for (w, &word) in self.words.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let row = w as u32 * 64 + bits.trailing_zeros();
                    body.extend_from_slice(&row.to_le_bytes());
                    bits &= bits - 1;
                }
            }
        } else {
            body.extend(self.words.iter().flat_map(|w| w.to_le_bytes()));
        }
        frame(&FORMAT, 0, &body)
    }

    /// Decodes the object `object` and checks it belongs to segment `segment` of `rows` rows.
    pub fn decode(object: &str, bytes: &[u8], segment: u64, rows: u64) -> Result<Self> {
        let corrupt = |problem| ManifestError::Corrupt { object: object.to_owned(), problem };
        let (body, _) = unframe(object, &FORMAT, bytes)?;
        let (header, data) = Header::read_from_prefix(body)
            .map_err(|_| corrupt(Problem::Length { len: body.len() as u64, expected: 32 }))?;
        let field = |field, value: u64| corrupt(Problem::Field { field, value });
        if header.segment.get() != segment {
            return Err(field("segment", header.segment.get()));
        }
        if header.rows.get() != rows {
            return Err(field("rows", header.rows.get()));
        }
        let deleted = header.deleted.get();
        if deleted > rows {
            return Err(field("deleted", deleted));
        }
        let length = |expected: u64| {
            if data.len() as u64 == expected {
                Ok(())
            } else {
                Err(corrupt(Problem::Length { len: data.len() as u64, expected }))
            }
        };
        let vector = match header.encoding.get() {
            ENCODING_BITMAP => {
                length(rows.div_ceil(64).saturating_mul(8))?;
                let words: Vec<u64> = data
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect();
                if !rows.is_multiple_of(64) && words.last().is_some_and(|w| w >> (rows % 64) != 0) {
                    return Err(corrupt(Problem::DeletedRow { row: rows, rows }));
                }
                DeletionVector::from_words(rows, words)
            }
            ENCODING_ROW_LIST => {
                length(deleted.saturating_mul(4))?;
                let mut vector = DeletionVector::new(rows);
                let mut previous = None;
                for b in data.chunks_exact(4) {
                    let row = u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")));
                    if row >= rows || previous.is_some_and(|p| p >= row) {
                        return Err(corrupt(Problem::DeletedRow { row, rows }));
                    }
                    previous = Some(row);
                    vector.insert(row);
                }
                vector
            }
            other => return Err(field("encoding", other.into())),
        };
        if vector.deleted != deleted {
            return Err(field("deleted", deleted));
        }
        Ok(vector)
    }
}
