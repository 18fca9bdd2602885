//! A deletion vector: 8 bytes of segment id, 8 of row count (capped), then the object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_manifest::DeletionVector;

fuzz_target!(|data: &[u8]| {
    let Some((segment, rest)) = data.split_first_chunk::<8>() else { return };
    let Some((rows, bytes)) = rest.split_first_chunk::<8>() else { return };
    // A real row count is bounded by the segment it belongs to; a huge one is the caller's
    // bitmap to allocate, not the decoder's.
    let rows = u64::from_le_bytes(*rows) % (1 << 24);
    if let Ok(deletes) = DeletionVector::decode("fuzz", bytes, u64::from_le_bytes(*segment), rows) {
        assert!(deletes.deleted() <= rows);
    }
});
