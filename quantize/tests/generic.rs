//! The generic kernels run inside `Kernels::dispatch` agree with the dispatched ones, on every
//! path this CPU supports.

use strata_quantize::{Isa, Kernels, Metric, Simd, WithSimd, dot_simd, l2_squared_simd, prefetch};

struct AllDistances<'a> {
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for AllDistances<'_> {
    type Output = [f32; 5];

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> [f32; 5] {
        prefetch(self.b);
        [
            dot_simd(simd, self.a, self.b),
            l2_squared_simd(simd, self.a, self.b),
            Metric::L2.distance_simd(simd, self.a, self.b),
            Metric::InnerProduct.distance_simd(simd, self.a, self.b),
            Metric::Cosine.distance_simd(simd, self.a, self.b),
        ]
    }
}

#[test]
fn generic_kernels_match_the_dispatched_ones_on_every_path() {
    let paths: Vec<Kernels> = Isa::supported().filter_map(Kernels::for_isa).collect();
    assert!(!paths.is_empty());
    for len in [0, 1, 7, 16, 33, 128, 257, 1536] {
        let a: Vec<f32> = (0..len).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..len).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
        for kernels in &paths {
            let got = kernels.dispatch(AllDistances { a: &a, b: &b });
            let dot = kernels.dot(&a, &b);
            let l2 = kernels.l2_squared(&a, &b);
            // Small integers: every summation order is exact, so equality is exact too.
            assert_eq!(got, [dot, l2, l2, -dot, 1.0 - dot], "{} at len {len}", kernels.isa());
        }
    }
}

#[test]
#[should_panic(expected = "different lengths")]
fn generic_kernels_check_lengths() {
    Kernels::detected().dispatch(AllDistances { a: &[1.0, 2.0], b: &[1.0] });
}
