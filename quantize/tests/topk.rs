//! `TopK` against a sort-everything oracle.

use proptest::prelude::*;
use strata_quantize::{Neighbor, TopK};

/// The k nearest by full sort: distance ascending, then id ascending; NaN never returned.
fn oracle(candidates: &[(u64, f32)], k: usize) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = candidates
        .iter()
        .filter(|(_, distance)| !distance.is_nan())
        .map(|&(id, distance)| Neighbor { id, distance })
        .collect();
    all.sort_by(|a, b| a.distance.partial_cmp(&b.distance).unwrap().then(a.id.cmp(&b.id)));
    all.truncate(k);
    all
}

const SPECIAL_DISTANCES: [f32; 6] = [-0.0, 0.0, -1.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];

/// Few distinct distances so ties are common; includes ±0, infinities and NaN.
fn distance() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => (0u8..6).prop_map(f32::from),
        1 => prop::sample::select(&SPECIAL_DISTANCES[..]),
        2 => -100f32..100.0,
    ]
}

/// Distinct ids in random order, each with a random distance.
fn candidates() -> impl Strategy<Value = Vec<(u64, f32)>> {
    prop::collection::vec(distance(), 0..80).prop_flat_map(|distances| {
        let ids: Vec<u64> = (0..distances.len() as u64).map(|i| i * 7 + 3).collect();
        (Just(distances), Just(ids).prop_shuffle())
            .prop_map(|(distances, ids)| ids.into_iter().zip(distances).collect())
    })
}

/// Bitwise comparison so `-0.0` vs `0.0` and NaN would show up.
fn bits(neighbors: &[Neighbor]) -> Vec<(u64, u32)> {
    neighbors.iter().map(|n| (n.id, n.distance.to_bits())).collect()
}

proptest! {
    #[test]
    fn matches_sort_oracle(
        candidates in candidates(),
        k in prop_oneof![Just(0usize), Just(1), 2usize..20, 60usize..200],
    ) {
        let mut top = TopK::new(k);
        for &(id, distance) in &candidates {
            top.push(id, distance);
        }
        let expected = oracle(&candidates, k);
        prop_assert_eq!(top.len(), expected.len());
        prop_assert_eq!(top.is_full(), expected.len() == k);
        if expected.len() == k && k > 0 {
            let kth = expected.last().map(|n| n.distance.to_bits());
            prop_assert_eq!(top.worst().map(f32::to_bits), kth);
        } else {
            prop_assert_eq!(top.worst(), None);
        }
        let mut out = Vec::new();
        top.sorted_into(&mut out);
        prop_assert_eq!(bits(&out), bits(&expected));
        prop_assert!(top.is_empty());
        prop_assert_eq!(top.k(), k);
    }

    #[test]
    fn push_reports_whether_the_candidate_is_kept(candidates in candidates(), k in 1usize..10) {
        let mut top = TopK::new(k);
        for (i, &(id, distance)) in candidates.iter().enumerate() {
            let kept = top.push(id, distance);
            let best_so_far = oracle(&candidates[..=i], k);
            let should_keep = best_so_far.iter().any(|n| n.id == id);
            prop_assert_eq!(kept, should_keep, "push #{} ({}, {})", i, id, distance);
        }
    }

    #[test]
    fn reuse_after_reset_matches_fresh_collector(
        first in candidates(),
        second in candidates(),
        k1 in 0usize..30,
        k2 in 0usize..30,
    ) {
        let mut top = TopK::new(k1);
        let mut out = Vec::new();
        for &(id, distance) in &first {
            top.push(id, distance);
        }
        top.sorted_into(&mut out);
        prop_assert_eq!(bits(&out), bits(&oracle(&first, k1)));

        top.reset(k2);
        for &(id, distance) in &second {
            top.push(id, distance);
        }
        top.sorted_into(&mut out);
        prop_assert_eq!(bits(&out), bits(&oracle(&second, k2)));

        // clear() keeps k.
        for &(id, distance) in &first {
            top.push(id, distance);
        }
        top.clear();
        prop_assert!(top.is_empty());
        for &(id, distance) in &second {
            top.push(id, distance);
        }
        prop_assert_eq!(bits(&top.clone().into_sorted_vec()), bits(&oracle(&second, k2)));
    }
}

#[test]
fn ties_are_broken_by_smaller_id() {
    let mut top = TopK::new(2);
    for id in [9, 4, 7, 1, 5] {
        top.push(id, 1.0);
    }
    let result = top.into_sorted_vec();
    assert_eq!(result, [Neighbor { id: 1, distance: 1.0 }, Neighbor { id: 4, distance: 1.0 }]);
}

#[test]
fn zero_k_keeps_nothing_and_nan_is_rejected() {
    let mut none = TopK::new(0);
    assert!(!none.push(1, 0.0));
    assert!(none.is_empty() && none.is_full());
    assert_eq!(none.worst(), None);

    let mut top = TopK::new(3);
    assert!(!top.push(1, f32::NAN));
    assert!(top.push(2, f32::INFINITY));
    assert_eq!(top.len(), 1);
    assert_eq!(top.worst(), None, "not full yet");
}

#[test]
fn worst_prunes_once_full() {
    let mut top = TopK::new(2);
    top.push(10, 3.0);
    assert_eq!(top.worst(), None);
    top.push(11, 1.0);
    assert_eq!(top.worst(), Some(3.0));
    assert!(!top.push(12, 4.0));
    assert!(!top.push(12, 3.0), "equal distance with a larger id loses");
    assert!(top.push(2, 3.0), "equal distance with a smaller id wins");
    assert_eq!(top.worst(), Some(3.0));
    assert!(top.push(13, 2.0));
    assert_eq!(top.worst(), Some(2.0));
}

#[test]
fn sorted_into_reuses_the_output_buffer() {
    let mut top = TopK::new(10);
    let mut out = Vec::with_capacity(10);
    let buffer = out.as_ptr();
    for round in 0..5u64 {
        for id in 0..100 {
            top.push(id, ((id * 37 + round) % 101) as f32);
        }
        top.sorted_into(&mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(out.as_ptr(), buffer, "round {round} reallocated the output");
        assert!(out.windows(2).all(|w| w[0].distance <= w[1].distance));
    }
}
