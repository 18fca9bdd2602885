//! A steady-state search allocates nothing. A counting global allocator (per thread) proves it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::clustered;
use strata_memtable::{Memtable, Params};
use strata_quantize::Metric;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to `System`, which upholds the `GlobalAlloc` contract;
// the counter is a const-initialized thread-local `Cell` that never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's obligations for `alloc` are passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's obligations for `realloc` are passed through unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn steady_state_searches_do_not_allocate() {
    assert_eq!(
        allocations_during(|| drop(std::hint::black_box(vec![1u8; 32]))),
        1,
        "the counter counts"
    );
    for metric in Metric::ALL {
        let data = clustered(3000, 24, 10, 31);
        let memtable = Memtable::new(24, metric, Params::default()).unwrap();
        for (id, v) in data.iter().enumerate() {
            memtable.upsert(id as u64, v).unwrap();
        }
        memtable.delete(3).unwrap(); // the tombstone-aware path too
        let mut out = Vec::with_capacity(10);
        // Warm up: the first searches size the pooled buffers.
        for query in &data[..20] {
            memtable.search_filtered(query, 10, 100, &|_| true, &mut out).unwrap();
        }
        let allocated = allocations_during(|| {
            for query in &data[20..220] {
                memtable.search_filtered(query, 10, 100, &|_| true, &mut out).unwrap();
            }
        });
        assert_eq!(allocated, 0, "{metric}: searches allocated");
    }
}
