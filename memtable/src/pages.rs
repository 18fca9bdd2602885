//! Zeroed, never-moving vector storage for the row chunks, in anonymous memory mappings that the
//! kernel is asked to back with transparent huge pages.
//!
//! A search reads vectors at random rows, so with 4 KiB pages nearly every vector it scores
//! costs a TLB miss and a page walk; with 2 MiB pages the TLB covers gigabytes. Linux's default
//! THP mode (`madvise`) gives huge pages only to memory that asks for them, which `Vec` and
//! `Box` never do, so these mappings ask (`MADV_HUGEPAGE`). Measured on 100k x 768: +6% q/s.
//!
//! Untouched pages stay address space, as with `alloc_zeroed`, but the first write to a huge
//! page makes all 2 MiB of it resident. The arrays start on a 2 MiB boundary and only their
//! whole huge pages are advised ([`huge_page_bytes`]); a tail shorter than 2 MiB keeps small
//! pages, so a full array wastes nothing and a partly filled one at most the rest of the huge
//! page its last row is on. A
//! small memtable should not pay 2 MiB for its first row, so the caller decides per array
//! (rows.rs: every chunk but the first).
//!
//! Neighbour lists stay in ordinary allocations: they would gain about 4% more q/s, but their
//! own partly used last huge page would cost another 2 MiB per memtable.
//!
//! An anonymous mapping is an allocation, not I/O: no file is involved.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

use zerocopy::FromZeros;

/// Size and alignment of a transparent huge page on x86-64 and (with 4 KiB base pages) aarch64.
pub const HUGE_PAGE: usize = 2 << 20;

/// How many of an array's first `bytes` are advised for huge pages: its whole huge pages. A
/// partial last one would be made resident in full by its first write, even once the array is
/// full (a 100-dimensional chunk is 6.25 MiB: 8 MiB in four huge pages).
pub const fn huge_page_bytes(bytes: usize) -> usize {
    bytes / HUGE_PAGE * HUGE_PAGE
}

/// `len` zeroed `T`s in their own anonymous mapping, starting on a [`HUGE_PAGE`] boundary.
pub struct HugeArray<T> {
    /// The first element, inside the mapping: taken from the `MmapMut` when it was created and
    /// owned. The elements are only ever reached through `&[T]` (`T`'s own atomics or cells
    /// allow the writes), never through `&mut`.
    start: NonNull<T>,
    /// `HUGE_PAGE` bytes longer than the elements. Their count is derived from its length
    /// rather than stored: a memtable keeps a table of a thousand chunk slots, and every byte
    /// of a slot is resident even in an empty memtable.
    map: memmap2::MmapMut,
    _elements: PhantomData<T>,
}

// SAFETY: a `HugeArray<T>` is an owned `[T]` (the mapping is freed only on drop), so it may be
// sent and shared exactly when a `Box<[T]>` could.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: as above; shared access hands out only `&[T]`.
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T: FromZeros> HugeArray<T> {
    /// Maps `len` zeroed elements, asking for huge pages if `huge_pages`. Panics when the
    /// address space is exhausted, as an allocation failure would abort.
    pub fn new(len: usize, huge_pages: bool) -> Self {
        const { assert!(align_of::<T>() <= HUGE_PAGE) };
        let bytes = size_of::<T>().checked_mul(len).expect("array size overflows usize");
        // Room to slide the start up to the next huge-page boundary; the slack is address
        // space that is never touched.
        let mut map = memmap2::MmapOptions::new()
            .len(bytes + HUGE_PAGE)
            .map_anon()
            .unwrap_or_else(|error| panic!("out of memory mapping {bytes} bytes: {error}"));
        // A hint: a kernel without transparent huge pages refuses it, and 4 KiB pages work too.
        let base = map.as_mut_ptr();
        let skip = base.align_offset(HUGE_PAGE);
        assert!(skip < HUGE_PAGE, "a byte pointer can always be aligned");
        // (Miri runs the mapping but has no `madvise`.)
        #[cfg(all(target_os = "linux", not(miri)))]
        if huge_pages && huge_page_bytes(bytes) > 0 {
            // `skip` is a multiple of the base page size, as `advise_range` needs.
            let _ = map.advise_range(memmap2::Advice::HugePage, skip, huge_page_bytes(bytes));
        }
        #[cfg(any(not(target_os = "linux"), miri))]
        let _ = huge_pages;
        let start = NonNull::new(base.wrapping_add(skip).cast::<T>()).expect("inside a mapping");
        HugeArray { start, map, _elements: PhantomData }
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        let len = (self.map.len() - HUGE_PAGE).checked_div(size_of::<T>()).unwrap_or(0);
        // SAFETY: the `len` elements from `start` lie inside the mapping (`start` is less than
        // `HUGE_PAGE` bytes past its base, and it is `HUGE_PAGE` bytes longer than they need),
        // `start` is aligned for `T` (a huge-page boundary, checked against `align_of` in
        // `new`), the kernel zero-filled them, and all-zero bytes are a valid `T`
        // (`T: FromZeros`). The mapping lives as long as `self`, and nothing takes a `&mut` to
        // it, so a shared slice may alias any number of others.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), len) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn arrays_start_zeroed_on_a_huge_page_and_keep_writes() {
        // Miri checks every access: a smaller array there.
        let len = if cfg!(miri) { 3 << 12 } else { 3 << 20 };
        let array = HugeArray::<AtomicU32>::new(len, true);
        assert_eq!(array.len(), len);
        assert_eq!(array.as_ptr() as usize % HUGE_PAGE, 0);
        assert!(array.iter().step_by(4099).all(|word| word.load(Ordering::Relaxed) == 0));
        let last = array.len() - 1;
        array[last].store(7, Ordering::Relaxed);
        array[len / 3].store(9, Ordering::Relaxed);
        assert_eq!(array[last].load(Ordering::Relaxed), 7);
        assert_eq!(array[len / 3].load(Ordering::Relaxed), 9);
        let empty = HugeArray::<AtomicU32>::new(0, true);
        assert!(empty.is_empty());
        let small_pages = HugeArray::<AtomicU32>::new(1000, false);
        assert_eq!(small_pages.len(), 1000);
        assert_eq!(small_pages[999].load(Ordering::Relaxed), 0);
    }
}
