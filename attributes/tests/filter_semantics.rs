//! Filter semantics through the public API: random filters (built, and printed and parsed)
//! bound to a schema with a column of every type, checked record by record against a
//! reference evaluator that reads the user's `Attributes` directly; bind errors; and the
//! builder and parser agreeing.

use std::cmp::Ordering;
use std::ops::Bound;

use proptest::prelude::*;
use strata_attributes::{
    AttrType, AttributeError, Attributes, CmpOp, Filter, Record, Schema, Value,
};

fn schema() -> Schema {
    Schema::new().u64("u").i64("i").f64("f").bool("b").keyword("k").keywords("ks")
}

const COLUMNS: [&str; 6] = ["u", "i", "f", "b", "k", "ks"];
const WORDS: [&str; 4] = ["a", "b", "it's", "é"];

// ---------------------------------------------------------------------------------------------
// The model: a filter as data, turned into a `Filter` by the builders and into WHERE text, and
// evaluated directly.

#[derive(Debug, Clone)]
enum Model {
    Cmp { column: &'static str, op: CmpOp, value: Value },
    Range { column: &'static str, start: Bound<Value>, end: Bound<Value> },
    In { column: &'static str, values: Vec<Value> },
    Exists { column: &'static str },
    Contains { column: &'static str, word: &'static str },
    And(Vec<Model>),
    Or(Vec<Model>),
    Not(Box<Model>),
}

impl Model {
    fn filter(&self) -> Filter {
        match self {
            Model::Cmp { column, op, value } => {
                let value = value.clone();
                match op {
                    CmpOp::Eq => Filter::eq(*column, value),
                    CmpOp::Ne => Filter::ne(*column, value),
                    CmpOp::Lt => Filter::lt(*column, value),
                    CmpOp::Le => Filter::le(*column, value),
                    CmpOp::Gt => Filter::gt(*column, value),
                    CmpOp::Ge => Filter::ge(*column, value),
                }
            }
            Model::Range { column, start, end } => {
                Filter::range(*column, (start.clone(), end.clone()))
            }
            Model::In { column, values } => Filter::is_in(*column, values.clone()),
            Model::Exists { column } => Filter::exists(*column),
            Model::Contains { column, word } => Filter::contains(*column, *word),
            Model::And(parts) => {
                parts.iter().map(Model::filter).reduce(Filter::and).expect("two or more parts")
            }
            Model::Or(parts) => {
                parts.iter().map(Model::filter).reduce(Filter::or).expect("two or more parts")
            }
            // Both spellings of negation.
            Model::Not(inner) => match &**inner {
                Model::Exists { .. } => !inner.filter(),
                _ => inner.filter().not(),
            },
        }
    }

    /// The same filter as WHERE text.
    fn text(&self) -> String {
        let paren = |m: &Model| format!("({})", m.text());
        match self {
            Model::Cmp { column, op, value } => {
                format!("{column} {} {}", op.symbol(), literal(value))
            }
            Model::Range { column, start, end } => {
                let mut parts = Vec::new();
                match start {
                    Bound::Included(v) => parts.push(format!("{column} >= {}", literal(v))),
                    Bound::Excluded(v) => parts.push(format!("{column} > {}", literal(v))),
                    Bound::Unbounded => {}
                }
                match end {
                    Bound::Included(v) => parts.push(format!("{column} <= {}", literal(v))),
                    Bound::Excluded(v) => parts.push(format!("{column} < {}", literal(v))),
                    Bound::Unbounded => {}
                }
                if parts.is_empty() {
                    format!("{column} IS NOT NULL")
                } else {
                    format!("({})", parts.join(" AND "))
                }
            }
            // The grammar needs one value at least; an empty IN is false.
            Model::In { column, values } if values.is_empty() => {
                format!("({column} IS NOT NULL AND {column} IS NULL)")
            }
            Model::In { column, values } => {
                let values: Vec<_> = values.iter().map(literal).collect();
                format!("{column} IN ({})", values.join(", "))
            }
            Model::Exists { column } => format!("{column} IS NOT NULL"),
            Model::Contains { column, word } => {
                format!("{column} = {}", literal(&Value::from(*word)))
            }
            Model::And(parts) => parts.iter().map(paren).collect::<Vec<_>>().join(" AND "),
            Model::Or(parts) => parts.iter().map(paren).collect::<Vec<_>>().join(" OR "),
            Model::Not(inner) => format!("NOT ({})", inner.text()),
        }
    }

    /// The reference semantics (see the top of filter.rs).
    fn eval(&self, attrs: &Attributes) -> bool {
        match self {
            Model::Cmp { column, op, value } => {
                attrs.get(column).is_some_and(|have| compare(have, *op, value))
            }
            Model::Range { column, start, end } => {
                let Some(have) = attrs.get(column) else { return false };
                let low = match start {
                    Bound::Included(v) => compare(have, CmpOp::Ge, v),
                    Bound::Excluded(v) => compare(have, CmpOp::Gt, v),
                    Bound::Unbounded => true,
                };
                let high = match end {
                    Bound::Included(v) => compare(have, CmpOp::Le, v),
                    Bound::Excluded(v) => compare(have, CmpOp::Lt, v),
                    Bound::Unbounded => true,
                };
                low && high
            }
            Model::In { column, values } => attrs
                .get(column)
                .is_some_and(|have| values.iter().any(|v| compare(have, CmpOp::Eq, v))),
            Model::Exists { column } => attrs.get(column).is_some(),
            Model::Contains { column, word } => {
                attrs.get(column).is_some_and(|have| compare(have, CmpOp::Eq, &Value::from(*word)))
            }
            Model::And(parts) => parts.iter().all(|p| p.eval(attrs)),
            Model::Or(parts) => parts.iter().any(|p| p.eval(attrs)),
            Model::Not(inner) => !inner.eval(attrs),
        }
    }
}

fn literal(value: &Value) -> String {
    match value {
        Value::U64(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F64(v) => format!("{v:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Keyword(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Keywords(_) => unreachable!("not a literal"),
    }
}

/// A number exactly: an integer, or a float.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(value: &Value) -> Option<Num> {
    Some(match value {
        Value::U64(v) => Num::Int(i128::from(*v)),
        Value::I64(v) => Num::Int(i128::from(*v)),
        Value::F64(v) => Num::Float(*v),
        _ => return None,
    })
}

/// `i` against finite-or-infinite `f`, exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    const TWO_POW_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f >= TWO_POW_127 {
        return Ordering::Less;
    }
    if f < -TWO_POW_127 {
        return Ordering::Greater;
    }
    let floor = f.floor();
    // Exact: floor is integral and within i128.
    match i.cmp(&(floor as i128)) {
        Ordering::Equal if f == floor => Ordering::Equal,
        Ordering::Equal => Ordering::Less,
        other => other,
    }
}

fn cmp_num(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => a.cmp(&b),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).expect("no NaN"),
        (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
        (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
    }
}

/// Whether stored value `have` stands in relation `op` to literal `want`: numbers
/// mathematically; keywords and bools by equality; a keyword list by containment (`!=`:
/// does not contain).
fn compare(have: &Value, op: CmpOp, want: &Value) -> bool {
    let ordering = match (have, want) {
        (Value::Keywords(words), Value::Keyword(w)) => {
            let contains = words.contains(w);
            return match op {
                CmpOp::Eq => contains,
                CmpOp::Ne => !contains,
                _ => unreachable!("keywords are not ordered"),
            };
        }
        (Value::Keyword(a), Value::Keyword(b)) => {
            if a == b {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        }
        (Value::Bool(a), Value::Bool(b)) => {
            if a == b {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        }
        (have, want) => cmp_num(num(have).expect("a number"), num(want).expect("a number")),
    };
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn word() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&WORDS[..])
}

/// A record: each column present or absent, values from small domains (numbers given as any
/// numeric type the column converts).
fn attributes_strategy() -> impl Strategy<Value = Attributes> {
    (
        proptest::option::of(prop_oneof![
            (0u64..5).prop_map(Value::U64),
            (0i64..5).prop_map(Value::I64),
            Just(Value::U64(u64::MAX)),
        ]),
        proptest::option::of(prop_oneof![
            (-3i64..3).prop_map(Value::I64),
            (0u64..3).prop_map(Value::U64),
            Just(Value::I64(i64::MIN)),
            Just(Value::I64(i64::MAX)),
        ]),
        proptest::option::of(prop_oneof![
            (-8i32..8).prop_map(|v| Value::F64(f64::from(v) / 2.0)),
            Just(Value::F64(-0.0)),
            // Extremes far from the integer literals (integers past 2^53 are tested below).
            Just(Value::F64(f64::MAX)),
            Just(Value::F64(f64::NEG_INFINITY)),
            Just(Value::F64(1e300)),
            (-3i64..3).prop_map(Value::I64),
            (0u64..3).prop_map(Value::U64),
        ]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(word()),
        proptest::option::of(prop_oneof![
            proptest::collection::vec(word(), 0..4).prop_map(Value::from),
            word().prop_map(Value::from),
        ]),
    )
        .prop_map(|(u, i, f, b, k, ks)| {
            let mut attrs = Attributes::new();
            for (name, value) in [
                ("u", u),
                ("i", i),
                ("f", f),
                ("b", b.map(Value::Bool)),
                ("k", k.map(Value::from)),
                ("ks", ks),
            ] {
                if let Some(value) = value {
                    attrs = attrs.set(name, value);
                }
            }
            attrs
        })
}

/// A numeric literal: small values of every type, fractions, and the extremes.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..6).prop_map(Value::U64),
        4 => (-5i64..6).prop_map(Value::I64),
        4 => (-10i32..11).prop_map(|v| Value::F64(f64::from(v) / 2.0)),
        1 => proptest::sample::select(vec![
            Value::U64(u64::MAX),
            Value::U64(1 << 63),
            Value::I64(i64::MIN),
            Value::I64(i64::MAX),
            Value::F64(-0.0),
            Value::F64(1e30),
            Value::F64(-1e30),
            Value::F64(0.1),
            Value::F64(-2.25),
            Value::F64(f64::INFINITY),
            Value::F64(f64::NEG_INFINITY),
        ]),
    ]
}

/// A literal the column's type takes.
fn literal_for(column: &'static str) -> BoxedStrategy<Value> {
    match column {
        "u" | "i" | "f" => number().boxed(),
        "b" => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => word().prop_map(Value::from).boxed(),
    }
}

fn bound(column: &'static str) -> impl Strategy<Value = Bound<Value>> {
    prop_oneof![
        literal_for(column).prop_map(Bound::Included),
        literal_for(column).prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn leaf() -> impl Strategy<Value = Model> {
    let column = proptest::sample::select(&COLUMNS[..]);
    let numeric = proptest::sample::select(&["u", "i", "f"][..]);
    let op = proptest::sample::select(
        &[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..],
    );
    prop_oneof![
        // = and != on any column.
        (column.clone(), any::<bool>()).prop_flat_map(|(column, eq)| {
            let op = if eq { CmpOp::Eq } else { CmpOp::Ne };
            literal_for(column).prop_map(move |value| Model::Cmp { column, op, value })
        }),
        // Any comparison on a number.
        (numeric.clone(), op).prop_flat_map(|(column, op)| {
            literal_for(column).prop_map(move |value| Model::Cmp { column, op, value })
        }),
        numeric.prop_flat_map(|column| {
            (bound(column), bound(column)).prop_map(move |(start, end)| Model::Range {
                column,
                start,
                end,
            })
        }),
        column.clone().prop_flat_map(|column| {
            proptest::collection::vec(literal_for(column), 0..4)
                .prop_map(move |values| Model::In { column, values })
        }),
        column.prop_map(|column| Model::Exists { column }),
        (proptest::sample::select(&["k", "ks"][..]), word())
            .prop_map(|(column, word)| Model::Contains { column, word }),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    leaf().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Model::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Model::Or),
            inner.prop_map(|m| Model::Not(Box::new(m))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn predicates_match_the_reference(
        model in model(),
        records in proptest::collection::vec(attributes_strategy(), 1..24),
    ) {
        let schema = schema();
        let built = model.filter().bind(&schema).expect("a well-typed filter binds");
        // Infinities have no literal in the grammar: those filters are checked built only.
        let text = model.text();
        let parsed = (!text.contains("inf")).then(|| {
            Filter::parse(&text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                .bind(&schema)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        });
        for attrs in &records {
            let record = Record::from_attributes(&schema, attrs).expect("a valid record");
            let want = model.eval(attrs);
            prop_assert_eq!(built.matches(&record), want, "built {:?} on {:?}", model, attrs);
            if let Some(parsed) = &parsed {
                prop_assert_eq!(parsed.matches(&record), want, "parsed {:?} on {:?}", text, attrs);
            }
        }
    }
}

/// A few cases the proptest may not hit often, spelled out.
#[test]
fn documented_semantics() {
    let schema = schema();
    let record = |attrs: Attributes| Record::from_attributes(&schema, &attrs).unwrap();
    let matches = |text: &str, attrs: &Attributes| {
        Filter::parse(text).unwrap().bind(&schema).unwrap().matches(&record(attrs.clone()))
    };
    let empty = Attributes::new();
    // Absent: comparisons, IN and != are false; NOT is plain negation.
    for text in ["k = 'a'", "k != 'a'", "k IN ('a')", "u < 3", "u != 3", "ks = 'a'", "ks != 'a'"] {
        assert!(!matches(text, &empty), "{text}");
        assert!(matches(&format!("NOT ({text})"), &empty), "{text}");
    }
    assert!(matches("k IS NULL", &empty));
    assert!(matches("k NOT IN ('a')", &empty));
    // Lists: = and IN contain, != is present and lacking; an empty list is present.
    let tags = Attributes::new().set("ks", vec!["a", "b"]);
    assert!(matches("ks = 'a'", &tags) && matches("ks IN ('x', 'b')", &tags));
    assert!(!matches("ks != 'a'", &tags) && matches("ks != 'x'", &tags));
    let none = Attributes::new().set("ks", Vec::<String>::new());
    assert!(matches("ks IS NOT NULL", &none) && matches("ks != 'a'", &none));
    assert!(!matches("ks = 'a'", &none));
    // Numbers compare mathematically across types.
    for (u, want) in [(0u64, true), (2, true), (3, false)] {
        let attrs = Attributes::new().set("u", u);
        assert_eq!(matches("u < 2.5", &attrs), want, "{u}");
        assert_eq!(matches("u <= 2.5", &attrs), want, "{u}");
        assert_eq!(matches("u >= 2.5", &attrs), !want, "{u}");
        assert!(!matches("u = 2.5", &attrs) && matches("u != 2.5", &attrs));
        assert!(matches("u > -1", &attrs) && matches("u != -1", &attrs));
        assert!(matches("u < 18446744073709551615", &attrs));
    }
    let i = Attributes::new().set("i", -3);
    assert!(matches("i < -2.5", &i) && matches("i > -3.5", &i) && matches("i = -3.0", &i));
    assert!(matches("i < 9223372036854775808", &i) && !matches("i > 1e30", &i));
    let f = Attributes::new().set("f", 2.5);
    assert!(matches("f > 2", &f) && matches("f < 3", &f) && matches("f IN (1, 2.5)", &f));
    assert!(matches("f > -9223372036854775808", &f));
}

/// Integer literals against an f64 column compare mathematically: 2^53 + 1 (no exact f64) lies
/// between 2^53 and the next float, and is not rounded onto either; storing it is refused.
#[test]
fn integer_literals_against_floats_are_not_rounded() {
    let schema = schema();
    let record =
        Record::from_attributes(&schema, &Attributes::new().set("f", 9_007_199_254_740_992.0))
            .unwrap();
    let matches = |text: &str| Filter::parse(text).unwrap().bind(&schema).unwrap().matches(&record);
    assert!(!matches("f = 9007199254740993"), "2^53 = 2^53 + 1");
    assert!(matches("f < 9007199254740993"), "2^53 < 2^53 + 1");
    assert!(matches("f != 9007199254740993"), "2^53 != 2^53 + 1");
    let built = Filter::lt("f", 9_007_199_254_740_993u64).bind(&schema).unwrap();
    assert!(built.matches(&record), "built: 2^53 < 2^53 + 1");
    let inexact = Attributes::new().set("f", 9_007_199_254_740_993u64);
    assert!(Record::from_attributes(&schema, &inexact).is_err());
    assert!(matches("f > -9223372036854775807") && !matches("f > 18446744073709551615"));
}

#[test]
fn bind_errors_name_the_attribute_and_offset() {
    let schema = Schema::new().u64("ts").keyword("lang").bool("ok");
    let bind = |text: &str| Filter::parse(text).unwrap().bind(&schema).unwrap_err();
    assert_eq!(
        bind("ts >= 5 AND nope = 1"),
        AttributeError::UnknownAttribute { name: "nope".into(), at: Some(12) }
    );
    assert_eq!(
        bind("ts >= 5 AND lang < 'x'"),
        AttributeError::WrongType {
            name: "lang".into(),
            expected: AttrType::Keyword,
            found: "an ordering comparison",
            at: Some(12),
        }
    );
    assert_eq!(
        bind("ts = 'x'"),
        AttributeError::WrongType {
            name: "ts".into(),
            expected: AttrType::U64,
            found: "a string",
            at: Some(0),
        }
    );
    assert_eq!(
        bind("lang = 'de' OR (ok = 1)"),
        AttributeError::WrongType {
            name: "ok".into(),
            expected: AttrType::Bool,
            found: "an integer",
            at: Some(16),
        }
    );
    assert_eq!(
        bind("ts IN (1, 'x')"),
        AttributeError::WrongType {
            name: "ts".into(),
            expected: AttrType::U64,
            found: "a string",
            at: Some(0),
        }
    );
    let message = bind("ts >= 5 AND nope = 1").to_string();
    assert_eq!(message, "unknown attribute \"nope\" at byte 12");
    let message = bind("  ok < true").to_string();
    assert!(message.contains("\"ok\"") && message.ends_with("at byte 2"), "{message}");
    // Built filters have no offsets.
    assert_eq!(
        Filter::eq("nope", 1).bind(&schema).unwrap_err(),
        AttributeError::UnknownAttribute { name: "nope".into(), at: None }
    );
}

#[test]
fn builder_and_parser_agree_on_the_issue_examples() {
    let schema = Schema::new().u64("ts").keyword("lang").u64("zone");
    let pairs = [
        (
            "lang = 'de' AND ts >= 500000",
            Filter::eq("lang", "de").and(Filter::ge("ts", 500_000u64)),
        ),
        (
            "lang IN ('fr', 'ja') OR zone = 0",
            Filter::is_in("lang", ["fr", "ja"]).or(Filter::eq("zone", 0u64)),
        ),
        (
            "ts >= 10 AND ts < 20 AND NOT lang = 'de'",
            Filter::range("ts", 10u64..20).and(Filter::eq("lang", "de").not()),
        ),
    ];
    let records: Vec<Record> = [
        Attributes::new(),
        Attributes::new().set("lang", "de").set("ts", 500_000u64),
        Attributes::new().set("lang", "de").set("ts", 499_999u64),
        Attributes::new().set("lang", "fr").set("ts", 15u64),
        Attributes::new().set("lang", "ja").set("zone", 3u64),
        Attributes::new().set("zone", 0u64).set("ts", 12u64),
    ]
    .iter()
    .map(|a| Record::from_attributes(&schema, a).unwrap())
    .collect();
    for (text, built) in pairs {
        let parsed = Filter::parse(text).unwrap().bind(&schema).unwrap();
        let built = built.bind(&schema).unwrap();
        assert_eq!(parsed, built, "{text}");
        for record in &records {
            assert_eq!(parsed.matches(record), built.matches(record), "{text} on {record:?}");
        }
    }
    let matching: Vec<bool> = {
        let p = Filter::parse("lang = 'de' AND ts >= 500000").unwrap().bind(&schema).unwrap();
        records.iter().map(|r| p.matches(r)).collect()
    };
    assert_eq!(matching, [false, true, false, false, false, false]);
}
