//! [`ObjectBytes`]: the immutable contents of an object, mapped or in memory, cheap to clone.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Alignment of the first byte of every [`ObjectBytes`] read or mapped from a backend.
///
/// Formats place vector blocks at 64-byte-aligned offsets so that they can be viewed in place as
/// `&[f32]` (and loaded with aligned SIMD loads) whether the object was mapped or read.
pub const OBJECT_ALIGN: usize = 64;

/// One 64-byte, 64-aligned block: the allocation unit of [`AlignedBuf`].
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
struct Block([u8; OBJECT_ALIGN]);

/// A heap buffer whose first byte is 64-byte aligned.
struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> Self {
        AlignedBuf { blocks: vec![Block([0; OBJECT_ALIGN]); len.div_ceil(OBJECT_ALIGN)], len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.blocks.as_bytes()[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.blocks.as_mut_bytes()[..self.len]
    }
}

/// Something a mapping keeps alive while any of its bytes are in use: the object-store cache
/// pins its files this way, so eviction never removes a file that is still mapped.
pub(crate) type Pin = std::sync::Arc<dyn std::any::Any + Send + Sync>;

enum Backing {
    Owned(AlignedBuf),
    /// The pin is only held, never read: it lives as long as the mapping.
    Mapped {
        map: memmap2::Mmap,
        _pin: Option<Pin>,
    },
}

impl Backing {
    fn as_slice(&self) -> &[u8] {
        match self {
            Backing::Owned(buf) => buf.as_slice(),
            Backing::Mapped { map, .. } => map,
        }
    }
}

/// A 64-byte-aligned buffer being filled (a download), frozen into [`ObjectBytes`] when done.
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) struct BytesMut(AlignedBuf);

#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
impl BytesMut {
    pub(crate) fn zeroed(len: usize) -> Self {
        BytesMut(AlignedBuf::zeroed(len))
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }

    pub(crate) fn freeze(self) -> ObjectBytes {
        let len = self.0.len;
        ObjectBytes { backing: Arc::new(Backing::Owned(self.0)), range: 0..len }
    }
}

/// The immutable bytes of an object (or of a range of one).
///
/// Either a read-only memory map of a local file or a 64-byte-aligned heap buffer; clones and
/// [`slice`](Self::slice)s share the same backing. The bytes of a whole object, or of a range read,
/// start at a 64-byte-aligned address.
#[derive(Clone)]
pub struct ObjectBytes {
    backing: Arc<Backing>,
    range: Range<usize>,
}

impl ObjectBytes {
    /// Copies `data` into a new 64-byte-aligned buffer.
    pub fn copy_from_slice(data: &[u8]) -> Self {
        Self::fill_with(data.len(), |buf| {
            buf.copy_from_slice(data);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {})
    }

    /// Allocates a zeroed, 64-byte-aligned buffer of `len` bytes and lets `fill` write it (for
    /// example with `read_exact`), without an intermediate copy.
    pub fn fill_with<E>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut buf = AlignedBuf::zeroed(len);
        fill(buf.as_mut_slice())?;
        Ok(ObjectBytes { backing: Arc::new(Backing::Owned(buf)), range: 0..len })
    }

    /// Wraps a read-only memory map.
    pub(crate) fn from_mmap(map: memmap2::Mmap) -> Self {
        Self::from_mmap_pinned(map, None)
    }

    /// Wraps a read-only memory map that holds `pin` until the last clone or slice drops.
    pub(crate) fn from_mmap_pinned(map: memmap2::Mmap, pin: Option<Pin>) -> Self {
        let len = map.len();
        ObjectBytes { backing: Arc::new(Backing::Mapped { map, _pin: pin }), range: 0..len }
    }

    /// A sub-range sharing the same backing.
    ///
    /// # Panics
    /// If `range` is not within `0..self.len()`: ranges are computed by callers that already
    /// checked them against the object's size.
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "slice {range:?} out of bounds of {} bytes",
            self.len()
        );
        ObjectBytes {
            backing: Arc::clone(&self.backing),
            range: self.range.start + range.start..self.range.start + range.end,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.backing.as_slice()[self.range.clone()]
    }

    /// True when these bytes are a memory map of a file rather than a heap copy.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.backing, Backing::Mapped { .. })
    }

    /// Drops this process's resident copy of the mapped file's pages: they stay in the OS
    /// page cache, and the next read of any byte faults its page back in. A compaction calls
    /// it on each input it has read, so that a merge's resident memory peaks at what its build
    /// holds, not at that plus every input file it streamed. The whole mapping is released,
    /// whatever range these bytes view. Nothing happens for heap buffers or off Unix.
    pub fn release_resident(&self) {
        #[cfg(unix)]
        if let Backing::Mapped { map, .. } = &*self.backing {
            // SAFETY: every mapping here is a read-only shared map of an immutable object
            // file (`Mmap::map`: PROT_READ, MAP_SHARED). MADV_DONTNEED on such a mapping only
            // unmaps the pages from this process; the next access maps the same file pages
            // again, so every live reference keeps reading the same bytes.
            let released = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            // Only a hint: a kernel that refuses it leaves the pages resident, nothing worse.
            drop(released);
        }
    }
}

impl Deref for ObjectBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ObjectBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for ObjectBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ObjectBytes {}

impl PartialEq<[u8]> for ObjectBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl fmt::Debug for ObjectBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBytes")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_buffers_are_aligned_and_exact() {
        for len in [0, 1, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = ObjectBytes::copy_from_slice(&data);
            assert_eq!(bytes.as_slice(), &data[..]);
            assert_eq!(bytes.as_ptr() as usize % OBJECT_ALIGN, 0);
            assert!(!bytes.is_mapped());
        }
    }

    #[test]
    fn slices_share_and_bound() {
        let bytes = ObjectBytes::copy_from_slice(b"hello world");
        let world = bytes.slice(6..11);
        assert_eq!(&*world, b"world");
        assert_eq!(&*world.slice(1..3), b"or");
        assert_eq!(world.slice(5..5).len(), 0);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_past_end_panics() {
        let _ = ObjectBytes::copy_from_slice(b"abc").slice(2..4);
    }
}
