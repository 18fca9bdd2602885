//! Immutable flat segments: vectors in a 64-byte-aligned block searched by an exact SIMD scan,
//! optionally with quantized codes and an exact rerank.
