//! A Vamana segment: opened, scrubbed and searched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_quantize::{AdmitAll, TopK};
use strata_segment_diskann::{SearchParams, SearchScratch, VamanaSegment};
use strata_storage::ObjectBytes;

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = VamanaSegment::from_bytes("fuzz", ObjectBytes::copy_from_slice(data)) else {
        return;
    };
    let _ = segment.verify();
    let query: Vec<f32> = (0..segment.dim()).map(|i| (i % 5) as f32 * 0.3 - 0.6).collect();
    let mut top = TopK::new(5);
    let params = SearchParams { search_list: 16, ..SearchParams::default() };
    let _ = segment.search(&query, &params, &AdmitAll, &mut top, &mut SearchScratch::default());
});
