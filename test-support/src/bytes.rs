//! Little-endian fields read at byte offsets, for the layout tests that hold each file format
//! to its spec in `docs/format/`.

/// A file's bytes, read as little-endian integers at offsets written out by hand.
#[derive(Debug, Clone, Copy)]
pub struct LeBytes<'a>(pub &'a [u8]);

impl LeBytes<'_> {
    /// The `u16` at `at` (panics past the end: a layout test's offset is wrong).
    pub fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.0[at..at + 2].try_into().expect("2 bytes"))
    }

    /// The `u32` at `at`.
    pub fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }

    /// The `u64` at `at`.
    pub fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
}
