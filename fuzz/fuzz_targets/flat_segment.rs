//! A flat segment: opened, scrubbed, read and searched (exactly and through its codes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_quantize::{AdmitAll, TopK};
use strata_segment_flat::{CodeScratch, FlatSegment, Rerank};
use strata_storage::ObjectBytes;

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = FlatSegment::from_bytes("fuzz", ObjectBytes::copy_from_slice(data)) else {
        return;
    };
    let _ = segment.verify();
    let dim = segment.dim();
    let query: Vec<f32> = (0..dim).map(|i| (i % 7) as f32 * 0.25 - 0.5).collect();
    let mut top = TopK::new(5);
    let mut distances = Vec::new();
    let _ = segment.search(&query, &AdmitAll, &mut top, &mut distances);
    let mut top = TopK::new(5);
    let _ = segment.search_codes(
        &query,
        Rerank::by(2),
        &AdmitAll,
        &mut top,
        &mut CodeScratch::default(),
    );
    if segment.rows() > 0 {
        let _ = segment.vector(0);
        let _ = segment.id(0);
    }
});
