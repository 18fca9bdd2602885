//! A codebook (any codec): decoded, then used to encode, score and decode one vector.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_quantize::{Codec, QueryScratch};

fuzz_target!(|data: &[u8]| {
    let Ok(codec) = Codec::from_bytes(data) else { return };
    assert_eq!(Codec::from_bytes(&codec.to_bytes()).expect("re-encoded"), codec);
    let dim = codec.dim();
    let vector: Vec<f32> = (0..dim).map(|i| (i % 9) as f32 * 0.1 - 0.4).collect();
    let mut code = vec![0u8; codec.code_len()];
    codec.encode(&vector, &mut code);
    let mut scratch = QueryScratch::default();
    let prepared = codec.prepare(&vector, &mut scratch);
    let _ = prepared.distance(&code);
    let _ = prepared.error_bound(&code);
    let mut out = vec![0.0; dim];
    codec.decode(&code, &mut out);
});
