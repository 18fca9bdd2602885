//! Arrow in and out: record batches with every attribute type, nulls and payloads go in
//! through `upsert_arrow` and `ingest_arrow` and come back out of `scan_arrow` unchanged;
//! batches that do not fit are refused, naming the column (or the row and id), and change
//! nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder,
    Int64Builder, ListBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use strata::storage::{MemoryStore, Storage};
use strata::{Attributes, Db, Error, Metric, Options, Schema, Value};

const DIM: usize = 3;

fn schema() -> Schema {
    Schema::new().u64("ts").i64("delta").f64("score").bool("ok").keyword("lang").keywords("tags")
}

fn vector(id: u64) -> Vec<f32> {
    vec![id as f32, (id % 7) as f32 * 0.5, 1.0]
}

/// The attributes row `id` gets: each column present on some rows only.
fn attributes(id: u64) -> Attributes {
    let mut a = Attributes::new();
    if id.is_multiple_of(2) {
        a = a.set("ts", id * 1000);
    }
    if id.is_multiple_of(3) {
        a = a.set("delta", -(id as i64));
    }
    if id % 4 != 1 {
        a = a.set("score", id as f64 / 8.0);
    }
    if id.is_multiple_of(5) {
        a = a.set("ok", id.is_multiple_of(10));
    }
    if id % 2 == 1 {
        a = a.set("lang", if id.is_multiple_of(3) { "de" } else { "en" });
    }
    if id.is_multiple_of(6) {
        a = a.set("tags", Value::Keywords(vec!["a".into(), format!("t{id}")]));
    }
    if id.is_multiple_of(9) {
        a = a.payload(format!("payload {id}").into_bytes());
    }
    a
}

/// A record batch of `ids` in the engine's layout.
fn batch(ids: &[u64]) -> RecordBatch {
    let mut vectors = FixedSizeListBuilder::new(Float32Builder::new(), DIM as i32);
    let (mut ts, mut delta, mut score) =
        (UInt64Builder::new(), Int64Builder::new(), Float64Builder::new());
    let (mut ok, mut lang) = (BooleanBuilder::new(), StringBuilder::new());
    let mut tags = ListBuilder::new(StringBuilder::new());
    let mut payload = BinaryBuilder::new();
    for &id in ids {
        vectors.values().append_slice(&vector(id));
        vectors.append(true);
        let a = attributes(id);
        ts.append_option(match a.get("ts") {
            Some(Value::U64(v)) => Some(*v),
            _ => None,
        });
        delta.append_option(match a.get("delta") {
            Some(Value::I64(v)) => Some(*v),
            _ => None,
        });
        score.append_option(match a.get("score") {
            Some(Value::F64(v)) => Some(*v),
            _ => None,
        });
        ok.append_option(match a.get("ok") {
            Some(Value::Bool(v)) => Some(*v),
            _ => None,
        });
        lang.append_option(match a.get("lang") {
            Some(Value::Keyword(v)) => Some(v.clone()),
            _ => None,
        });
        match a.get("tags") {
            Some(Value::Keywords(v)) => {
                for t in v {
                    tags.values().append_value(t);
                }
                tags.append(true);
            }
            _ => tags.append(false),
        }
        payload.append_option(a.payload_bytes());
    }
    RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(ids.to_vec())) as ArrayRef),
        ("vector", Arc::new(vectors.finish()) as ArrayRef),
        ("ts", Arc::new(ts.finish()) as ArrayRef),
        ("delta", Arc::new(delta.finish()) as ArrayRef),
        ("score", Arc::new(score.finish()) as ArrayRef),
        ("ok", Arc::new(ok.finish()) as ArrayRef),
        ("lang", Arc::new(lang.finish()) as ArrayRef),
        ("tags", Arc::new(tags.finish()) as ArrayRef),
        ("_payload", Arc::new(payload.finish()) as ArrayRef),
    ])
    .unwrap()
}

fn db() -> Db {
    let store: Arc<dyn Storage> = Arc::new(MemoryStore::new());
    Db::create_in(store, Options::new(DIM, Metric::L2).attributes(schema())).unwrap()
}

/// What `scan_arrow` returned, by id: vector and attributes.
fn scanned(db: &Db, batch_rows: usize) -> BTreeMap<u64, (Vec<f32>, Attributes)> {
    let mut out = BTreeMap::new();
    let scan = db.scan_arrow(batch_rows);
    let schema = scan.schema();
    assert_eq!(schema, db.arrow_schema());
    for batch in scan {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= batch_rows);
        assert_eq!(batch.schema(), schema);
        // Back in through the same conversion the engine takes batches with.
        let ids = batch.column(0).as_primitive::<UInt64Type>();
        let vectors = batch.column(1).as_fixed_size_list();
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let vector = vectors.value(row).as_primitive::<Float32Type>().values().to_vec();
            out.insert(id, (vector, db.get_attributes(id).unwrap().unwrap()));
        }
        // Every attribute column equals what get_attributes says.
        for (c, column) in schema.fields().iter().enumerate().skip(2) {
            let array = batch.column(c);
            for row in 0..batch.num_rows() {
                let id = ids.value(row);
                let want = attributes(id);
                let name = column.name().as_str();
                let present = if name == "_payload" {
                    want.payload_bytes().is_some()
                } else {
                    want.get(name).is_some()
                };
                assert_eq!(array.is_valid(row), present, "{name} of {id}");
            }
        }
    }
    out
}

#[test]
fn batches_with_every_attribute_type_round_trip() {
    let db = db();
    let ids: Vec<u64> = (0..60).collect();
    db.upsert_arrow(&batch(&ids[..30])).unwrap();
    // A slice of a batch (an offset into its arrays) goes in as its own rows.
    let whole = batch(&ids[20..60]);
    db.ingest_arrow(&whole.slice(10, 30)).unwrap();
    for id in 0..60 {
        assert_eq!(db.get(id).unwrap(), Some(vector(id)), "vector of {id}");
        assert_eq!(db.get_attributes(id).unwrap(), Some(attributes(id)), "attributes of {id}");
    }
    db.commit().unwrap();
    for batch_rows in [1, 7, 64, 1000] {
        let got = scanned(&db, batch_rows);
        assert_eq!(got.len(), 60, "{batch_rows}");
        for (id, (v, a)) in got {
            assert_eq!(v, vector(id));
            assert_eq!(a, attributes(id));
        }
    }
}

#[test]
fn batches_that_do_not_fit_are_refused_and_change_nothing() {
    let db = db();
    let good = batch(&[1, 2, 3]);
    let refused = |batch: RecordBatch| {
        let error = db.upsert_arrow(&batch).unwrap_err();
        assert_eq!(db.len(), 0, "nothing applied: {error}");
        error
    };
    let column = |error: Error| match error {
        Error::InvalidArrow { column, problem } => format!("{column}: {problem}"),
        other => panic!("{other:?}"),
    };
    // An unknown column (a typo of an attribute).
    let extra = RecordBatch::try_from_iter(
        good.schema()
            .fields()
            .iter()
            .zip(good.columns())
            .map(|(f, c)| (f.name().clone(), Arc::clone(c)))
            .chain([("langg".to_owned(), Arc::clone(good.column(6)))]),
    )
    .unwrap();
    assert!(column(refused(extra)).starts_with("langg"));
    // A missing id or vector.
    let no_id = good.project(&[1, 2]).unwrap();
    assert!(column(refused(no_id)).starts_with("id: missing"));
    // A vector of the wrong size.
    let mut wide = FixedSizeListBuilder::new(Float32Builder::new(), 4);
    wide.values().append_slice(&[1.0, 2.0, 3.0, 4.0]);
    wide.append(true);
    let wrong = RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(vec![1])) as ArrayRef),
        ("vector", Arc::new(wide.finish()) as ArrayRef),
    ])
    .unwrap();
    assert!(column(refused(wrong)).contains("4 floats"));
    // A negative id, and an attribute of the wrong type.
    let negative = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![5, -1, 6])) as ArrayRef),
        ("vector", Arc::clone(good.column(1)) as ArrayRef),
    ])
    .unwrap();
    assert!(column(refused(negative)).contains("negative"));
    let retyped = RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("vector", Arc::clone(good.column(1)) as ArrayRef),
        ("lang", Arc::new(UInt64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])
    .unwrap();
    assert!(column(refused(retyped)).starts_with("lang"));
    // A column of nulls of the wrong type is refused as any wrong type is.
    let nulls = RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("vector", Arc::clone(good.column(1)) as ArrayRef),
        ("ts", Arc::new(arrow_array::StringArray::from(vec![None::<&str>; 3])) as ArrayRef),
    ])
    .unwrap();
    assert!(column(refused(nulls)).starts_with("ts"));
    // A vector list of the wrong length names its row and id; a NaN is refused as any is.
    let mut lists = ListBuilder::new(Float32Builder::new());
    for v in [vec![1.0, 2.0, 3.0], vec![1.0, 2.0]] {
        lists.values().append_slice(&v);
        lists.append(true);
    }
    let short = RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(vec![10, 11])) as ArrayRef),
        ("vector", Arc::new(lists.finish()) as ArrayRef),
    ])
    .unwrap();
    assert!(matches!(refused(short), Error::InvalidRow { row: 1, id: Some(11), .. }));
    let mut nan = FixedSizeListBuilder::new(Float32Builder::new(), DIM as i32);
    nan.values().append_slice(&[1.0, f32::NAN, 0.0]);
    nan.append(true);
    let nan = RecordBatch::try_from_iter([
        ("id", Arc::new(UInt64Array::from(vec![12])) as ArrayRef),
        ("vector", Arc::new(nan.finish()) as ArrayRef),
    ])
    .unwrap();
    assert!(matches!(refused(nan), Error::InvalidRow { row: 0, id: Some(12), .. }));
    // The good batch goes in after all that.
    db.upsert_arrow(&good).unwrap();
    assert_eq!(db.len(), 3);
}
