//! A steady-state search allocates nothing. A counting global allocator (per thread) proves it.

mod common;

use common::clustered;
use strata_memtable::{Memtable, Params};
use strata_quantize::AdmitAll;
use strata_quantize::Metric;
use strata_test_support::{CountingAllocator, allocations_during};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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
            memtable.search_filtered(query, 10, 100, &AdmitAll, &mut out).unwrap();
        }
        let allocated = allocations_during(|| {
            for query in &data[20..220] {
                memtable.search_filtered(query, 10, 100, &AdmitAll, &mut out).unwrap();
            }
        });
        assert_eq!(allocated, 0, "{metric}: searches allocated");
    }
}
