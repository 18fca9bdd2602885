//! The deleted rows of one segment while it is live: set by writers, read by searches, without
//! locks.

use std::sync::atomic::{AtomicU64, Ordering};

use strata_manifest::DeletionVector;

/// One bit per row; bits are only ever set. Committed as an immutable [`DeletionVector`].
#[derive(Debug)]
pub(crate) struct AtomicBitmap {
    rows: u64,
    words: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl AtomicBitmap {
    pub(crate) fn new(rows: u64) -> Self {
        Self::from_deletion_vector(&DeletionVector::new(rows))
    }

    pub(crate) fn from_deletion_vector(deletes: &DeletionVector) -> Self {
        AtomicBitmap {
            rows: deletes.rows(),
            words: deletes.words().iter().map(|&w| AtomicU64::new(w)).collect(),
            count: AtomicU64::new(deletes.deleted()),
        }
    }

    /// Marks `row` deleted; returns whether it was live.
    pub(crate) fn set(&self, row: u32) -> bool {
        let bit = 1u64 << (row % 64);
        let was = self.words[(row / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        let newly = was & bit == 0;
        if newly {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        newly
    }

    #[inline]
    pub(crate) fn contains(&self, row: u32) -> bool {
        self.words[(row / 64) as usize].load(Ordering::Acquire) & (1u64 << (row % 64)) != 0
    }

    /// Rows it covers.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows deleted so far (may lag a concurrent [`set`](Self::set) by a moment).
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.words.len() * 8
    }

    /// The bits as of now.
    pub(crate) fn to_deletion_vector(&self) -> DeletionVector {
        let words = self.words.iter().map(|w| w.load(Ordering::Acquire)).collect();
        DeletionVector::from_words(self.rows, words)
    }
}
