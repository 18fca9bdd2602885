//! Distance metrics, SIMD f32 kernels dispatched at run time, and vector codecs (SQ8, INT4, PQ).
//! Does no I/O.
