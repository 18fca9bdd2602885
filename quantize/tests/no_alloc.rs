//! Hot paths must not allocate in steady state. A counting global allocator (per thread, so
//! the test harness's other threads do not interfere) proves it.

use strata_quantize::{
    Codec, CodecKind, Kernels, Metric, Neighbor, QueryScratch, TopK, TrainOptions, dot_batch,
    l2_squared, l2_squared_batch,
};
use strata_test_support::{CountingAllocator, allocations_during};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn counter_sees_allocations() {
    // Guards the tests below against a counter that never counts.
    let allocated = allocations_during(|| drop(std::hint::black_box(vec![1u8; 32])));
    assert_eq!(allocated, 1);
}

#[test]
fn top_k_steady_state_does_not_allocate() {
    let mut top = TopK::new(16);
    let mut out: Vec<Neighbor> = Vec::new();
    let search = |top: &mut TopK, out: &mut Vec<Neighbor>, round: u64| {
        top.reset(16);
        for id in 0..1000u64 {
            top.push(id, ((id * 7919 + round) % 1009) as f32);
        }
        top.sorted_into(out);
    };
    search(&mut top, &mut out, 0); // Warm-up sizes both buffers.
    let allocated = allocations_during(|| {
        for round in 1..20 {
            search(&mut top, &mut out, round);
        }
    });
    assert_eq!(allocated, 0);
    assert_eq!(out.len(), 16);
}

#[test]
fn kernels_do_not_allocate() {
    let dim = 100;
    let query: Vec<f32> = (0..dim).map(|i| i as f32).collect();
    let rows: Vec<f32> = (0..dim * 7).map(|i| (i % 13) as f32).collect();
    let mut out = vec![0.0f32; 7];
    l2_squared(&query, &query); // Warm-up: first call initializes dispatch.
    let allocated = allocations_during(|| {
        std::hint::black_box(l2_squared(&query, &rows[..dim]));
        l2_squared_batch(&query, &rows, &mut out);
        dot_batch(&query, &rows, &mut out);
        for metric in Metric::ALL {
            metric.distance_batch(&query, &rows, &mut out);
        }
        for kernels in strata_quantize::Isa::supported().filter_map(Kernels::for_isa) {
            kernels.l2_squared_batch(&query, &rows, &mut out);
        }
    });
    assert_eq!(allocated, 0);
}

#[test]
fn code_distances_do_not_allocate_once_the_scratch_is_grown() {
    let dim = 40;
    let rows: Vec<f32> = (0..400 * dim).map(|i| ((i * 7919) % 1013) as f32 / 100.0).collect();
    let options = TrainOptions::default().iterations(2).threads(1);
    for kind in [
        CodecKind::Sq8,
        CodecKind::Int4,
        CodecKind::Pq { subspaces: 10 },
        CodecKind::Rpq { subspaces: 10 },
        CodecKind::RaBitQ { bits: 1 },
        CodecKind::RaBitQ { bits: 5 },
        CodecKind::RaBitQ { bits: 8 },
    ] {
        for metric in [Metric::L2, Metric::InnerProduct] {
            let codec = Codec::train(kind, metric, dim, &rows, &options).unwrap();
            let mut codes = vec![0u8; 400 * codec.code_len()];
            codec.encode_batch(&rows, &mut codes);
            let mut scratch = QueryScratch::default();
            let mut out = vec![0.0; 400];
            codec.prepare(&rows[..dim], &mut scratch).distances(&codes, &mut out);
            let allocated = allocations_during(|| {
                for q in 1..20 {
                    let query = codec.prepare(&rows[q * dim..(q + 1) * dim], &mut scratch);
                    query.distances(&codes, &mut out);
                    std::hint::black_box(query.distance(&codes[..codec.code_len()]));
                }
            });
            assert_eq!(allocated, 0, "{kind} {metric}");
        }
    }
}
