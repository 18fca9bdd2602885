//! Every SIMD path this CPU supports, and the dispatched free functions, against the scalar
//! reference and an f64 oracle.
//!
//! Results may differ from the reference by rounding only (the summation order differs), so
//! float comparisons use a rigorous bound: two orders of summing `n` products can differ by at
//! most about `n·ε·Σ|products|`. That bound is loose at large `n`, so a separate sweep uses
//! small integers, where every order is exact and any lost or doubled tail element shows.

use proptest::prelude::*;
use strata_quantize::{Isa, Kernels, scalar};

/// Every path compiled in and supported by this CPU, best first (includes the portable one).
fn paths() -> Vec<Kernels> {
    let paths: Vec<Kernels> = Isa::supported().filter_map(Kernels::for_isa).collect();
    assert!(paths.iter().any(|kernels| kernels.isa() == Isa::Scalar));
    paths
}

/// Deterministic xorshift, so failures reproduce without a seed file.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Mixed magnitudes (2^-8 .. 2^8) and signs, so sums cancel.
    fn float(&mut self) -> f32 {
        let exponent = (self.next_u64() % 17) as i32 - 8;
        self.unit() * 2f32.powi(exponent)
    }

    /// An integer in [-8, 8]: products and all partial sums stay exact in f32 up to
    /// length 2048 (2048 · 16² < 2²⁴).
    fn small_int(&mut self) -> f32 {
        (self.next_u64() % 17) as f32 - 8.0
    }
}

/// What a kernel must return, computed in f64 (where products of f32s are exact).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Finite { exact: f64, magnitude: f64 },
    PosInf,
    NegInf,
    NaN,
}

/// Classifies `Σ term(aᵢ, bᵢ)` in f64: a term beyond `f32::MAX` is ±inf in every f32 order,
/// and +inf plus -inf is NaN in every order. Test inputs keep finite terms far from overflow.
fn expected(terms: impl Iterator<Item = f64>) -> Expected {
    let (mut pos_overflow, mut neg_overflow, mut nan) = (false, false, false);
    let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
    for term in terms {
        if term.is_nan() {
            nan = true;
        } else if term > f64::from(f32::MAX) {
            pos_overflow = true;
        } else if term < -f64::from(f32::MAX) {
            neg_overflow = true;
        } else {
            exact += term;
            magnitude += term.abs();
        }
    }
    match (nan || (pos_overflow && neg_overflow), pos_overflow, neg_overflow) {
        (true, _, _) => Expected::NaN,
        (false, true, _) => Expected::PosInf,
        (false, _, true) => Expected::NegInf,
        _ => Expected::Finite { exact, magnitude },
    }
}

fn expected_dot(a: &[f32], b: &[f32]) -> Expected {
    expected(a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)))
}

fn expected_l2(a: &[f32], b: &[f32]) -> Expected {
    // The difference is rounded to f32 identically on every path; only the sum varies.
    expected(a.iter().zip(b).map(|(&x, &y)| {
        let diff = f64::from(x - y);
        diff * diff
    }))
}

/// Bound on the difference between two summation orders of `len` terms (see module docs),
/// plus slack for products that underflow to subnormals or zero.
fn tolerance(len: usize, magnitude: f64) -> f64 {
    let len = len as f64;
    2.0 * len * f64::from(f32::EPSILON) * magnitude + 2.0 * len * f64::from(f32::from_bits(1))
}

/// `Ok` if `actual` is what `expected` demands, and (when finite) within rounding of `reference`.
fn check(
    what: &str,
    len: usize,
    actual: f32,
    reference: f32,
    expected: Expected,
    has_nan_input: bool,
) -> Result<(), String> {
    let ok = match expected {
        // Opposite overflows: unfused code computes inf - inf = NaN, but FMA adds the exact
        // (finite) product -1e60 to an accumulator that already holds +inf and keeps +inf.
        // Both say "overflowed"; a finite answer would be wrong.
        Expected::NaN if has_nan_input => actual.is_nan() && reference.is_nan(),
        Expected::NaN => !actual.is_finite() && reference.is_nan(),
        Expected::PosInf => actual == f32::INFINITY && reference == f32::INFINITY,
        Expected::NegInf => actual == f32::NEG_INFINITY && reference == f32::NEG_INFINITY,
        Expected::Finite { exact, magnitude } => {
            let tol = tolerance(len, magnitude);
            actual.is_finite()
                && (f64::from(actual) - exact).abs() <= tol
                && (f64::from(actual) - f64::from(reference)).abs() <= tol
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} (len {len}): got {actual:e}, scalar reference {reference:e}, \
             expected {expected:?}"
        ))
    }
}

/// Checks dot, l2_squared and norm_squared on every path and via dispatch.
fn check_all_kernels(a: &[f32], b: &[f32]) -> Result<(), String> {
    let len = a.len();
    let nan_in = a.iter().chain(b).any(|x| x.is_nan());
    let check = |what: &str, actual, reference, expected| {
        check(what, len, actual, reference, expected, nan_in)
    };
    let (dot_ref, l2_ref) = (scalar::dot(a, b), scalar::l2_squared(a, b));
    let norm_ref = scalar::norm_squared(a);
    let (dot_exp, l2_exp, norm_exp) = (expected_dot(a, b), expected_l2(a, b), expected_dot(a, a));
    // The reference itself must satisfy the oracle, or the comparisons below prove nothing.
    check("scalar::dot", dot_ref, dot_ref, dot_exp)?;
    check("scalar::l2_squared", l2_ref, l2_ref, l2_exp)?;
    check("scalar::norm_squared", norm_ref, norm_ref, norm_exp)?;

    check("dispatched dot", strata_quantize::dot(a, b), dot_ref, dot_exp)?;
    check("dispatched l2_squared", strata_quantize::l2_squared(a, b), l2_ref, l2_exp)?;
    check("dispatched norm_squared", strata_quantize::norm_squared(a), norm_ref, norm_exp)?;
    for kernels in paths() {
        let isa = kernels.isa();
        check(&format!("{isa} dot"), kernels.dot(a, b), dot_ref, dot_exp)?;
        check(&format!("{isa} l2_squared"), kernels.l2_squared(a, b), l2_ref, l2_exp)?;
        check(&format!("{isa} norm_squared"), kernels.norm_squared(a), norm_ref, norm_exp)?;
    }
    Ok(())
}

#[test]
fn supported_paths_match_cpu_features() {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let v3 = is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("bmi1")
            && is_x86_feature_detected!("bmi2")
            && is_x86_feature_detected!("lzcnt")
            && is_x86_feature_detected!("popcnt")
            && is_x86_feature_detected!("sse4.2");
        let v4 = v3
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl");
        assert_eq!(Isa::Avx2Fma.is_supported(), v3);
        assert_eq!(Isa::Avx512.is_supported(), cfg!(feature = "x86-v4") && v4);
        assert!(!Isa::Neon.is_supported());
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(Isa::Neon.is_supported(), std::arch::is_aarch64_feature_detected!("neon"));
        assert!(!Isa::Avx2Fma.is_supported() && !Isa::Avx512.is_supported());
    }
    assert!(Isa::Scalar.is_supported());

    let best = Isa::supported().next().expect("scalar is always supported");
    // Dispatch takes the best path unless STRATA_ISA forces another (checked by the test below).
    if std::env::var_os(strata_quantize::ISA_OVERRIDE_VAR).is_none() {
        assert_eq!(Kernels::detected().isa(), best);
    }
    assert_eq!(strata_quantize::isa(), Kernels::detected().isa().name());
    eprintln!(
        "dispatch uses {best}; paths under test: {:?}",
        paths().iter().map(|kernels| kernels.isa().name()).collect::<Vec<_>>()
    );
}

#[test]
fn isa_names_are_distinct_and_displayed() {
    let names: Vec<&str> = Isa::ALL.iter().map(|isa| isa.name()).collect();
    assert_eq!(names, ["avx512", "avx2-fma", "neon", "scalar"]);
    for isa in Isa::ALL {
        assert_eq!(isa.to_string(), isa.name());
    }
}

#[test]
fn integer_inputs_are_exact_for_every_length_up_to_2048() {
    let mut rng = Rng(0x5EED_0001);
    let paths = paths();
    for len in 0..=2048 {
        let a: Vec<f32> = (0..len).map(|_| rng.small_int()).collect();
        let b: Vec<f32> = (0..len).map(|_| rng.small_int()).collect();
        let (dot, l2, norm) =
            (scalar::dot(&a, &b), scalar::l2_squared(&a, &b), scalar::norm_squared(&a));
        for kernels in &paths {
            let isa = kernels.isa();
            assert_eq!(kernels.dot(&a, &b), dot, "{isa} dot, len {len}");
            assert_eq!(kernels.l2_squared(&a, &b), l2, "{isa} l2_squared, len {len}");
            assert_eq!(kernels.norm_squared(&a), norm, "{isa} norm_squared, len {len}");
        }
    }
}

#[test]
fn random_floats_match_reference_for_every_length_up_to_2048() {
    let mut rng = Rng(0x5EED_0002);
    for len in 1..=2048 {
        let a: Vec<f32> = (0..len).map(|_| rng.float()).collect();
        let b: Vec<f32> = (0..len).map(|_| rng.float()).collect();
        assert_eq!(check_all_kernels(&a, &b), Ok(()));
    }
}

#[test]
fn empty_vectors_have_zero_distance() {
    for kernels in paths() {
        assert_eq!(kernels.dot(&[], &[]), 0.0);
        assert_eq!(kernels.l2_squared(&[], &[]), 0.0);
        assert_eq!(kernels.norm_squared(&[]), 0.0);
    }
}

#[test]
fn nan_input_gives_nan_on_every_path() {
    for len in [1, 7, 8, 9, 31, 32, 33, 100] {
        for position in [0, len / 2, len - 1] {
            let mut a = vec![1.0f32; len];
            let b = vec![2.0f32; len];
            a[position] = f32::NAN;
            assert_eq!(check_all_kernels(&a, &b), Ok(()), "NaN at {position}");
        }
    }
}

#[test]
fn overflowing_products_agree_on_inf_and_nan() {
    let len = 37;
    let mut a = vec![0.5f32; len];
    let mut b = vec![0.25f32; len];
    // A single overflowing product: +inf for dot, +inf for l2.
    a[len - 1] = 1e30;
    b[len - 1] = 1e30;
    assert_eq!(expected_dot(&a, &b), Expected::PosInf);
    assert_eq!(check_all_kernels(&a, &b), Ok(()));
    // Opposite overflows: inf - inf is NaN for dot; l2 stays +inf.
    a[3] = -1e30;
    b[3] = 1e30;
    assert_eq!(expected_dot(&a, &b), Expected::NaN);
    assert_eq!(expected_l2(&a, &b), Expected::PosInf);
    assert_eq!(check_all_kernels(&a, &b), Ok(()));
}

/// Values whose products either overflow by orders of magnitude (≥ 1e40) or stay far below
/// `f32::MAX` even when summed 2048 times, so every summation order classifies alike.
const EXTREMES: [f32; 16] = [
    0.0,
    -0.0,
    1.0,
    -2.5,
    1e-3,
    -1e3,
    1e20,
    -1e20,
    1e30,
    -1e30,
    1e-30,
    1.0e-40,  // subnormal
    -3.0e-44, // subnormal
    f32::MIN_POSITIVE,
    -7.0,
    123.456,
];

fn extreme_pair(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0..=max_len).prop_flat_map(|len| {
        (
            prop::collection::vec(prop::sample::select(&EXTREMES[..]), len),
            prop::collection::vec(prop::sample::select(&EXTREMES[..]), len),
        )
    })
}

fn float_pair(max_len: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0..=max_len).prop_flat_map(|len| {
        (prop::collection::vec(-1e3f32..1e3, len), prop::collection::vec(-1e3f32..1e3, len))
    })
}

/// Row-major `rows` of `dim` floats for batch tests.
fn batch_case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (0usize..=40, 0usize..=13).prop_flat_map(|(dim, row_count)| {
        (
            prop::collection::vec(-10f32..10.0, dim),
            prop::collection::vec(-10f32..10.0, dim * row_count),
            Just(row_count),
        )
    })
}

proptest! {
    #[test]
    fn kernels_match_reference_on_random_floats((a, b) in float_pair(300)) {
        let result = check_all_kernels(&a, &b);
        prop_assert_eq!(result, Ok(()));
    }

    #[test]
    fn kernels_match_reference_on_extreme_values((a, b) in extreme_pair(200)) {
        let result = check_all_kernels(&a, &b);
        prop_assert_eq!(result, Ok(()));
    }

    #[test]
    fn batch_equals_per_row_kernels((query, rows, row_count) in batch_case()) {
        check_batch(&query, &rows, row_count)?;
    }
}

/// Each path's batch result must be bit-identical to its own single-row kernel (same code,
/// same order) and the scalar batch must equal per-row scalar calls.
fn check_batch(query: &[f32], rows: &[f32], row_count: usize) -> Result<(), TestCaseError> {
    let dim = query.len();
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    let mut out = vec![f32::NAN; row_count];

    scalar::dot_batch(query, rows, &mut out);
    for (i, &distance) in out.iter().enumerate() {
        prop_assert_eq!(distance.to_bits(), scalar::dot(query, row(i)).to_bits());
    }
    scalar::l2_squared_batch(query, rows, &mut out);
    for (i, &distance) in out.iter().enumerate() {
        prop_assert_eq!(distance.to_bits(), scalar::l2_squared(query, row(i)).to_bits());
    }

    for kernels in paths() {
        let isa = kernels.isa();
        out.fill(f32::NAN);
        kernels.dot_batch(query, rows, &mut out);
        for (i, &distance) in out.iter().enumerate() {
            let single = kernels.dot(query, row(i));
            prop_assert_eq!(distance.to_bits(), single.to_bits(), "{} dot_batch row {}", isa, i);
        }
        out.fill(f32::NAN);
        kernels.l2_squared_batch(query, rows, &mut out);
        for (i, &distance) in out.iter().enumerate() {
            let single = kernels.l2_squared(query, row(i));
            prop_assert_eq!(distance.to_bits(), single.to_bits(), "{} l2_batch row {}", isa, i);
        }
    }

    let detected = Kernels::detected();
    out.fill(f32::NAN);
    strata_quantize::l2_squared_batch(query, rows, &mut out);
    for (i, &distance) in out.iter().enumerate() {
        prop_assert_eq!(distance.to_bits(), detected.l2_squared(query, row(i)).to_bits());
    }
    out.fill(f32::NAN);
    strata_quantize::dot_batch(query, rows, &mut out);
    for (i, &distance) in out.iter().enumerate() {
        prop_assert_eq!(distance.to_bits(), detected.dot(query, row(i)).to_bits());
    }
    Ok(())
}

#[test]
fn batch_shapes_around_unroll_boundaries() {
    let mut rng = Rng(0x5EED_0003);
    for dim in [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 384] {
        for row_count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17] {
            let query: Vec<f32> = (0..dim).map(|_| rng.float()).collect();
            let rows: Vec<f32> = (0..dim * row_count).map(|_| rng.float()).collect();
            let result = check_batch(&query, &rows, row_count);
            assert!(result.is_ok(), "dim {dim}, rows {row_count}: {result:?}");
        }
    }
}

#[test]
#[should_panic(expected = "different lengths")]
fn dot_rejects_mismatched_lengths() {
    strata_quantize::dot(&[1.0, 2.0], &[1.0]);
}

#[test]
#[should_panic(expected = "different lengths")]
fn l2_rejects_mismatched_lengths() {
    strata_quantize::l2_squared(&[1.0], &[1.0, 2.0]);
}

#[test]
#[should_panic(expected = "different lengths")]
fn scalar_reference_rejects_mismatched_lengths() {
    scalar::dot(&[1.0], &[]);
}

#[test]
#[should_panic(expected = "expected query.len() * out.len()")]
fn batch_rejects_ragged_rows() {
    let mut out = [0.0f32; 2];
    strata_quantize::l2_squared_batch(&[1.0, 2.0], &[0.0; 5], &mut out);
}

#[test]
#[should_panic(expected = "expected query.len() * out.len()")]
fn batch_rejects_rows_for_empty_query() {
    let mut out = [0.0f32; 2];
    strata_quantize::dot_batch(&[], &[1.0], &mut out);
}

/// `STRATA_ISA` forces the path dispatch uses (`.ci/run` runs the suites under each supported
/// one); without it, or naming a path this build and CPU lack, dispatch takes the best.
#[test]
fn the_isa_override_forces_the_dispatched_path() {
    for isa in Isa::ALL {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
    }
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2Fma));
    assert_eq!(Isa::from_name("portable"), Some(Isa::Scalar));
    assert_eq!(Isa::from_name("sse9"), None);
    let forced = std::env::var(strata_quantize::ISA_OVERRIDE_VAR).ok();
    match forced.as_deref().and_then(Isa::from_name).filter(|isa| isa.is_supported()) {
        Some(isa) => assert_eq!(Kernels::detected().isa(), isa, "{forced:?}"),
        None => assert_eq!(Some(Kernels::detected().isa()), Isa::supported().next()),
    }
    eprintln!("dispatching to {}", Kernels::detected().isa());
}
