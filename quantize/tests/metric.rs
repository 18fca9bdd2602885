//! `Metric` and `normalize` against brute-force f64 oracles.

use proptest::prelude::*;
use strata_quantize::{Metric, QuantizeError, normalize};

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

fn norm64(a: &[f32]) -> f64 {
    dot64(a, a).sqrt()
}

/// The metric's distance computed naively in f64 from the *original* vectors; cosine uses the
/// textbook formula, so it also checks that normalizing first is equivalent.
fn oracle(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        Metric::L2 => a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum(),
        Metric::InnerProduct => -dot64(a, b),
        Metric::Cosine => 1.0 - dot64(a, b) / (norm64(a) * norm64(b)),
    }
}

/// Absolute error allowed for a distance between `dim`-dimensional vectors of entries in
/// [-10, 10]: f32 rounding of sums of up to `dim · 400` per term.
fn tolerance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dim = a.len().max(1) as f64;
    let magnitude = match metric {
        Metric::L2 => oracle(Metric::L2, a, b),
        Metric::InnerProduct => a.iter().zip(b).map(|(&x, &y)| f64::from(x * y).abs()).sum(),
        // Unit vectors: every term is at most 1 in sum, plus normalization error.
        Metric::Cosine => 4.0,
    };
    4.0 * dim * f64::from(f32::EPSILON) * magnitude + 1e-30
}

fn vector_pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (1usize..=200).prop_flat_map(|dim| {
        (prop::collection::vec(-10f32..10.0, dim), prop::collection::vec(-10f32..10.0, dim))
    })
}

proptest! {
    #[test]
    fn distances_match_f64_oracle((a, b) in vector_pair()) {
        // Skip near-zero vectors for cosine, whose direction is meaningless.
        prop_assume!(norm64(&a) > 1e-3 && norm64(&b) > 1e-3);
        for metric in Metric::ALL {
            let (mut a_stored, mut b_stored) = (a.clone(), b.clone());
            if metric.needs_normalization() {
                prop_assert_eq!(normalize(&mut a_stored), Ok(()));
                prop_assert_eq!(normalize(&mut b_stored), Ok(()));
            }
            let actual = f64::from(metric.distance(&a_stored, &b_stored));
            let expected = oracle(metric, &a, &b);
            let tol = tolerance(metric, &a, &b);
            prop_assert!(
                (actual - expected).abs() <= tol,
                "{}: got {}, expected {} (tol {})", metric, actual, expected, tol
            );
        }
    }

    #[test]
    fn batch_distance_equals_single_distance(
        (query, rows, row_count) in (0usize..=50, 0usize..=9).prop_flat_map(|(dim, rows)| (
            prop::collection::vec(-10f32..10.0, dim),
            prop::collection::vec(-10f32..10.0, dim * rows),
            Just(rows),
        ))
    ) {
        let dim = query.len();
        let mut out = vec![f32::NAN; row_count];
        for metric in Metric::ALL {
            metric.distance_batch(&query, &rows, &mut out);
            for (i, &distance) in out.iter().enumerate() {
                let single = metric.distance(&query, &rows[i * dim..(i + 1) * dim]);
                prop_assert_eq!(distance.to_bits(), single.to_bits(), "{} row {}", metric, i);
            }
        }
    }

    #[test]
    fn normalize_gives_unit_norm_and_keeps_direction(
        v in prop::collection::vec(-1e3f32..1e3, 1..=300),
    ) {
        prop_assume!(v.iter().any(|&x| x != 0.0));
        let mut unit = v.clone();
        prop_assert_eq!(normalize(&mut unit), Ok(()));
        prop_assert!((norm64(&unit) - 1.0).abs() <= 1e-5, "norm {}", norm64(&unit));
        let cosine = dot64(&v, &unit) / norm64(&v);
        prop_assert!((cosine - 1.0).abs() <= 1e-5, "cosine to original {}", cosine);
    }
}

#[test]
fn known_distances() {
    let a = [1.0f32, 2.0, 3.0];
    let b = [4.0f32, -5.0, 6.0];
    assert_eq!(Metric::L2.distance(&a, &b), 9.0 + 49.0 + 9.0);
    assert_eq!(Metric::InnerProduct.distance(&a, &b), -(4.0 - 10.0 + 18.0));
    let x = [0.6f32, 0.8];
    let y = [0.8f32, 0.6];
    assert!((Metric::Cosine.distance(&x, &y) - (1.0 - 0.96)).abs() < 1e-6);
    assert_eq!(Metric::Cosine.distance(&x, &x), 0.0);
    assert_eq!(Metric::Cosine.distance(&[1.0, 0.0], &[-1.0, 0.0]), 2.0);
}

#[test]
fn smaller_is_better_for_every_metric() {
    let query = [1.0f32, 0.0];
    let near = [0.9f32, 0.1];
    let far = [-0.5f32, 0.8];
    for metric in Metric::ALL {
        let (mut q, mut n, mut f) = (query, near, far);
        if metric.needs_normalization() {
            for v in [&mut q[..], &mut n[..], &mut f[..]] {
                normalize(v).expect("non-zero vector");
            }
        }
        assert!(metric.distance(&q, &n) < metric.distance(&q, &f), "{metric}");
    }
}

#[test]
fn only_cosine_needs_normalization() {
    assert!(!Metric::L2.needs_normalization());
    assert!(!Metric::InnerProduct.needs_normalization());
    assert!(Metric::Cosine.needs_normalization());
}

#[test]
fn names_round_trip_through_from_str_and_display() {
    for metric in Metric::ALL {
        assert_eq!(metric.to_string(), metric.as_str());
        assert_eq!(metric.as_str().parse::<Metric>(), Ok(metric));
        assert_eq!(metric.as_str().to_uppercase().parse::<Metric>(), Ok(metric));
    }
    assert_eq!("l2".parse::<Metric>(), Ok(Metric::L2));
    assert_eq!("Ip".parse::<Metric>(), Ok(Metric::InnerProduct));
    assert_eq!("COSINE".parse::<Metric>(), Ok(Metric::Cosine));
    assert_eq!(format!("{:>8}", Metric::L2), "      l2");
}

#[test]
fn unknown_metric_names_are_rejected_with_the_name() {
    for name in ["", "l1", "euclidean", " l2", "cosine ", "dot", "ip2"] {
        let err = name.parse::<Metric>().expect_err(name);
        assert_eq!(err, QuantizeError::UnknownMetric { name: name.to_owned() });
        assert!(err.to_string().contains(&format!("{name:?}")), "{err}");
    }
}

#[test]
fn normalize_rejects_zero_and_empty_vectors() {
    let mut zero = vec![0.0f32; 16];
    assert_eq!(normalize(&mut zero), Err(QuantizeError::ZeroNorm { dim: 16 }));
    assert_eq!(zero, vec![0.0f32; 16]);
    let mut negative_zero = vec![-0.0f32; 3];
    assert_eq!(normalize(&mut negative_zero), Err(QuantizeError::ZeroNorm { dim: 3 }));
    assert_eq!(normalize(&mut []), Err(QuantizeError::ZeroNorm { dim: 0 }));
}

#[test]
fn normalize_rejects_non_finite_components_and_leaves_input_alone() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let original = vec![1.0f32, 2.0, bad, 4.0];
        let mut v = original.clone();
        match normalize(&mut v) {
            Err(QuantizeError::NonFiniteComponent { index, value }) => {
                assert_eq!(index, 2);
                assert_eq!(value.to_bits(), bad.to_bits());
            }
            other => panic!("expected NonFiniteComponent for {bad}, got {other:?}"),
        }
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            original.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn normalize_handles_norms_outside_f32_square_range() {
    // Squares overflow (1e30² = inf) or underflow (1e-30² = 0) in f32; the direction is fine.
    for scale in [1e30f32, 2e37, 1e-25, 1e-38, 1e-44] {
        let original: Vec<f32> = [3.0f32, -4.0, 0.0, 12.0].iter().map(|&x| x * scale).collect();
        let mut v = original.clone();
        assert_eq!(normalize(&mut v), Ok(()), "scale {scale:e}");
        let expected: Vec<f64> =
            original.iter().map(|&x| f64::from(x) / norm64(&original)).collect();
        for (&got, want) in v.iter().zip(expected) {
            assert!((f64::from(got) - want).abs() <= 1e-6, "scale {scale:e}: {v:?}");
        }
    }
}

#[test]
fn on_disk_codes_are_stable_and_round_trip() {
    // Files written by earlier builds carry these numbers: changing one breaks them.
    let codes: Vec<u8> = Metric::ALL.iter().map(|m| m.code()).collect();
    assert_eq!(codes, [1, 2, 3]);
    for metric in Metric::ALL {
        assert_eq!(Metric::from_code(metric.code()), Some(metric));
    }
    for unknown in [0u8, 4, 255] {
        assert_eq!(Metric::from_code(unknown), None);
    }
}
