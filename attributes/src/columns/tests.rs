use proptest::prelude::*;

use super::*;
use crate::{Attributes, Filter, Value};

fn schema() -> Schema {
    Schema::new().u64("n").i64("i").f64("f").bool("b").keyword("k").keywords("tags")
}

const WORDS: [&str; 5] = ["a", "b", "c", "dé", ""];

fn record_strategy() -> impl Strategy<Value = Attributes> {
    (
        proptest::option::of(0u64..6),
        proptest::option::of(-3i64..3),
        proptest::option::of(-2.0f64..2.0),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0usize..WORDS.len()),
        proptest::option::of(proptest::collection::vec(0usize..WORDS.len(), 0..4)),
    )
        .prop_map(|(n, i, f, b, k, tags)| {
            let mut a = Attributes::new();
            if let Some(n) = n {
                a = a.set("n", n);
            }
            if let Some(i) = i {
                a = a.set("i", i);
            }
            if let Some(f) = f {
                a = a.set("f", (f * 4.0).round() / 4.0);
            }
            if let Some(b) = b {
                a = a.set("b", b);
            }
            if let Some(k) = k {
                a = a.set("k", WORDS[k]);
            }
            if let Some(tags) = tags {
                a = a.set("tags", tags.into_iter().map(|t| WORDS[t]).collect::<Vec<_>>());
            }
            a
        })
}

fn leaf_strategy() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (0u64..7).prop_map(|v| Filter::eq("n", v)),
        (0u64..7).prop_map(|v| Filter::ge("n", v)),
        (-4i64..4).prop_map(|v| Filter::lt("i", v)),
        (-4i64..4).prop_map(|v| Filter::ne("i", v)),
        (-8i32..8).prop_map(|v| Filter::le("f", f64::from(v) / 4.0)),
        (-8i32..8).prop_map(|v| Filter::gt("n", f64::from(v) / 2.0)),
        any::<bool>().prop_map(|v| Filter::eq("b", v)),
        (0usize..WORDS.len()).prop_map(|w| Filter::eq("k", WORDS[w])),
        (0usize..WORDS.len()).prop_map(|w| Filter::ne("k", WORDS[w])),
        (0usize..WORDS.len()).prop_map(|w| Filter::contains("tags", WORDS[w])),
        proptest::collection::vec(0usize..WORDS.len(), 0..3)
            .prop_map(|ws| Filter::is_in("tags", ws.into_iter().map(|w| WORDS[w]))),
        proptest::collection::vec(0u64..7, 0..3).prop_map(|vs| Filter::is_in("n", vs)),
        Just(Filter::eq("k", "missing")),
        Just(Filter::exists("f")),
        Just(Filter::exists("tags")),
    ]
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    leaf_strategy().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(Filter::not),
        ]
    })
}

proptest! {
    #[test]
    fn columns_round_trip_and_answer_like_records(
        attrs in proptest::collection::vec(record_strategy(), 0..150),
        filters in proptest::collection::vec(filter_strategy(), 1..6),
    ) {
        let schema = schema();
        let records: Vec<Record> =
            attrs.iter().map(|a| Record::from_attributes(&schema, a).unwrap()).collect();
        let set = ColumnSet::build(&schema, records.iter());
        let bytes = set.encode(&schema);
        let decoded = ColumnSet::decode(&bytes, records.len() as u64, &schema).unwrap();
        prop_assert_eq!(&decoded, &set);
        for (row, record) in records.iter().enumerate() {
            prop_assert_eq!(&decoded.record(row as u32), &Record::from_fields(record.fields().to_vec(), None));
        }
        for filter in &filters {
            let predicate = filter.bind(&schema).unwrap();
            let bound = decoded.bind(&predicate);
            let expected: Vec<u32> = (0..records.len() as u32)
                .filter(|&r| predicate.matches(&records[r as usize]))
                .collect();
            for row in 0..records.len() as u32 {
                prop_assert_eq!(bound.matches(row), predicate.matches(&records[row as usize]), "row {}", row);
            }
            let mut rows = bound.rows();
            rows.sort_unstable();
            prop_assert_eq!(rows, expected);
        }
    }

    #[test]
    fn decoding_damaged_sections_never_panics(
        attrs in proptest::collection::vec(record_strategy(), 1..40),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let schema = schema();
        let records: Vec<Record> =
            attrs.iter().map(|a| Record::from_attributes(&schema, a).unwrap()).collect();
        let bytes = ColumnSet::build(&schema, records.iter()).encode(&schema);
        let rows = records.len() as u64;
        let mut damaged = bytes.clone();
        for (at, value) in &flips {
            let at = at.index(damaged.len());
            damaged[at] ^= value | 1;
        }
        // Either an error, or a set whose every answer stays in bounds.
        if let Ok(set) = ColumnSet::decode(&damaged, rows, &schema) {
            for row in 0..rows as u32 {
                let _ = set.record(row);
            }
            let p = Filter::eq("k", "a").or(Filter::ge("n", 2)).bind(&schema).unwrap();
            let _ = set.bind(&p).rows();
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(ColumnSet::decode(truncated, rows, &schema).is_err());
    }
}

#[test]
fn estimates_are_exact_for_single_tests() {
    let schema = schema();
    let records: Vec<Record> = (0..1000u64)
        .map(|i| {
            let a = Attributes::new().set("n", i % 10).set("k", WORDS[(i % 4) as usize]);
            Record::from_attributes(&schema, &a).unwrap()
        })
        .collect();
    let set = ColumnSet::build(&schema, records.iter());
    let count = |f: Filter| {
        let p = f.bind(&schema).unwrap();
        let b = set.bind(&p);
        (b.estimate(), b.rows().len() as u64)
    };
    assert_eq!(count(Filter::eq("n", 3)), (100, 100));
    assert_eq!(count(Filter::range("n", 2..5)), (300, 300));
    assert_eq!(count(Filter::eq("k", "b")), (250, 250));
    assert_eq!(count(Filter::is_in("k", ["a", "b", "zz"])), (500, 500));
    assert_eq!(count(Filter::eq("k", "zz")), (0, 0));
    // Independent parts: the product.
    assert_eq!(count(Filter::eq("n", 3).and(Filter::eq("k", "b"))).0, 25);
}

#[test]
fn a_schema_column_the_segment_lacks_matches_nothing() {
    let old = Schema::new().u64("n");
    let records = [Record::from_attributes(&old, &Attributes::new().set("n", 1)).unwrap()];
    let bytes = ColumnSet::build(&old, records.iter()).encode(&old);
    let grown = old.clone().keyword("k");
    let set = ColumnSet::decode(&bytes, 1, &grown).unwrap();
    let p = Filter::eq("k", "a").bind(&grown).unwrap();
    assert!(set.bind(&p).rows().is_empty());
    let p = Filter::eq("k", "a").not().bind(&grown).unwrap();
    assert_eq!(set.bind(&p).rows(), [0]);
    assert_eq!(set.record(0).to_attributes(&grown).get("n"), Some(&Value::U64(1)));
    // A column of another type than the schema's is refused.
    let changed = Schema::new().i64("n");
    assert!(
        ColumnSet::decode(&bytes, 1, &changed).unwrap_err().to_string().contains("is u64 here")
    );
}

/// Holds docs/format/attributes.md to the code: offsets written out by hand.
#[test]
fn the_section_layout_matches_the_spec() {
    let schema = Schema::new().u64("n").keyword("k").bool("unused");
    let records: Vec<Record> = [
        Attributes::new().set("n", 7u64).set("k", "b"),
        Attributes::new().set("k", "a"),
        Attributes::new().set("n", 9u64),
    ]
    .iter()
    .map(|a| Record::from_attributes(&schema, a).unwrap())
    .collect();
    let b = ColumnSet::build(&schema, records.iter()).encode(&schema);
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    // Head: version, two columns (no row has "unused"), rows.
    assert_eq!((u32_at(0), u32_at(4), u64_at(8)), (1, 2, 3));
    // Column "n": type 1, name, presence 0b101, then the keys of rows 0 and 2.
    let c = 16;
    assert_eq!((b[c], b[c + 1], u16::from_le_bytes([b[c + 2], b[c + 3]])), (1, 0, 1));
    assert_eq!((u32_at(c + 4), u64_at(c + 8)), (0, 24));
    assert_eq!(b[c + 16], b'n');
    let body = c + 17;
    assert_eq!((u64_at(body), u64_at(body + 8), u64_at(body + 16)), (0b101, 7, 9));
    // Column "k": type 5, presence 0b011, dictionary ["a", "b"], row ids [1], [0], [].
    let c = body + 24;
    assert_eq!((b[c], u64_at(c + 8)), (5, 8 + 4 + 12 + 4 + 16 + 8));
    assert_eq!(b[c + 16], b'k');
    let body = c + 17;
    assert_eq!(u64_at(body), 0b011);
    assert_eq!(
        (u32_at(body + 8), u32_at(body + 12), u32_at(body + 16), u32_at(body + 20)),
        (2, 0, 1, 2)
    );
    assert_eq!(&b[body + 24..body + 28], b"ab\0\0", "the text, padded to 4");
    let offsets = body + 28;
    let read: Vec<u32> = (0..4).map(|i| u32_at(offsets + 4 * i)).collect();
    assert_eq!(read, [0, 1, 2, 2]);
    assert_eq!((u32_at(offsets + 16), u32_at(offsets + 20)), (1, 0));
    assert_eq!(b.len(), offsets + 24);
}
