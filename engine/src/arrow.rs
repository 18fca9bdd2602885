//! Arrow in and out (feature `arrow`): record batches of an `id` column, a `vector` column and
//! attribute columns, the layout LanceDB, DataFusion, Polars and Spark users hold embeddings in.
//!
//! | column | Arrow type |
//! | --- | --- |
//! | `id` | `UInt64` (`Int64`, `UInt32`, `Int32` accepted in, if not negative) |
//! | `vector` | `FixedSizeList<Float32>` of the dimension (`List<Float32>` accepted in) |
//! | a `u64` / `i64` / `f64` / `bool` attribute | `UInt64` / `Int64` / `Float64` / `Boolean` |
//! | a `keyword` attribute | `Utf8` (`LargeUtf8`, `Utf8View` accepted in) |
//! | a `keywords` attribute | `List<Utf8>` |
//! | the payload | `_payload`, `Binary` |
//!
//! Attribute columns are nullable (a null is an absent value); `id` and `vector` are not.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder,
    Int64Builder, ListBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use strata_attributes::{AttrType, Attributes, Schema, Value};

use crate::snapshot::Scan;
use crate::{Db, Error, Result, Snapshot, Version};

/// The name of the payload column.
pub const PAYLOAD_COLUMN: &str = "_payload";

/// The Arrow schema of a database with `dim`-float vectors and attribute `schema`: what
/// [`Snapshot::scan_arrow`] yields and [`Db::upsert_arrow`] takes.
pub fn arrow_schema(dim: usize, schema: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::UInt64, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                dim as i32,
            ),
            false,
        ),
    ];
    for column in schema.columns() {
        let ty = match column.ty {
            AttrType::U64 => DataType::UInt64,
            AttrType::I64 => DataType::Int64,
            AttrType::F64 => DataType::Float64,
            AttrType::Bool => DataType::Boolean,
            AttrType::Keyword => DataType::Utf8,
            AttrType::Keywords => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        };
        fields.push(Field::new(column.name.clone(), ty, true));
    }
    fields.push(Field::new(PAYLOAD_COLUMN, DataType::Binary, true));
    Arc::new(ArrowSchema::new(fields))
}

/// A batch's rows as the engine's batch calls take them.
struct Rows {
    ids: Vec<u64>,
    vectors: Vec<f32>,
    /// Empty when the batch has no attribute or payload column.
    attributes: Vec<Attributes>,
}

fn bad(column: &str, problem: impl Into<String>) -> Error {
    Error::InvalidArrow { column: column.to_owned(), problem: problem.into() }
}

/// The batch's rows, every value checked (a bad row names its index and id).
fn rows_of(batch: &RecordBatch, dim: usize, schema: &Schema) -> Result<Rows> {
    let n = batch.num_rows();
    let arrow = batch.schema();
    for field in arrow.fields() {
        let name = field.name();
        if name != "id"
            && name != "vector"
            && name != PAYLOAD_COLUMN
            && schema.column(name).is_none()
        {
            return Err(bad(name, "not id, vector, _payload or an attribute of the schema"));
        }
    }
    let ids = ids_of(batch.column_by_name("id").ok_or_else(|| bad("id", "missing"))?)?;
    let vectors = vectors_of(
        batch.column_by_name("vector").ok_or_else(|| bad("vector", "missing"))?,
        dim,
        &ids,
    )?;
    if let Some(clash) = schema
        .columns()
        .iter()
        .find(|c| matches!(c.name.as_str(), "id" | "vector" | PAYLOAD_COLUMN))
    {
        return Err(bad(&clash.name, "is an attribute named like a fixed column"));
    }
    let attribute_columns: Vec<(&str, AttrType, &ArrayRef)> = schema
        .columns()
        .iter()
        .filter_map(|c| batch.column_by_name(&c.name).map(|a| (c.name.as_str(), c.ty, a)))
        .collect();
    // Types are checked per column, so a column of nulls of the wrong type is refused too.
    for (name, ty, array) in &attribute_columns {
        if !holds(*ty, array.data_type()) {
            let problem =
                format!("is {}, which does not hold a {ty:?} attribute", array.data_type());
            return Err(bad(name, problem));
        }
    }
    let payload = batch.column_by_name(PAYLOAD_COLUMN);
    if attribute_columns.is_empty() && payload.is_none() {
        return Ok(Rows { ids, vectors, attributes: Vec::new() });
    }
    let mut attributes = vec![Attributes::new(); n];
    for (name, ty, array) in attribute_columns {
        for (row, slot) in attributes.iter_mut().enumerate() {
            if let Some(value) = value_at(array, row, ty, name)? {
                *slot = std::mem::take(slot).set(name, value);
            }
        }
    }
    if let Some(payload) = payload {
        let payload = payload.as_binary_opt::<i32>().ok_or_else(|| {
            bad(PAYLOAD_COLUMN, format!("is {}, not Binary", payload.data_type()))
        })?;
        for (row, slot) in attributes.iter_mut().enumerate() {
            if payload.is_valid(row) {
                *slot = std::mem::take(slot).payload(payload.value(row).to_vec());
            }
        }
    }
    Ok(Rows { ids, vectors, attributes })
}

fn ids_of(array: &ArrayRef) -> Result<Vec<u64>> {
    if array.null_count() > 0 {
        let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        return Err(bad("id", format!("row {row} is null")));
    }
    let negative = |row: usize| bad("id", format!("row {row} is negative"));
    match array.data_type() {
        DataType::UInt64 => Ok(array.as_primitive::<UInt64Type>().values().to_vec()),
        DataType::UInt32 => {
            Ok(array.as_primitive::<UInt32Type>().values().iter().map(|&v| u64::from(v)).collect())
        }
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .enumerate()
            .map(|(row, &v)| u64::try_from(v).map_err(|_| negative(row)))
            .collect(),
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .enumerate()
            .map(|(row, &v)| u64::try_from(v).map_err(|_| negative(row)))
            .collect(),
        other => Err(bad("id", format!("is {other}, not UInt64"))),
    }
}

fn vectors_of(array: &ArrayRef, dim: usize, ids: &[u64]) -> Result<Vec<f32>> {
    let null_row = |row: usize| {
        let source = Box::new(bad("vector", "null"));
        Error::InvalidRow { row, id: ids.get(row).copied(), source }
    };
    if let Some(row) = (0..array.len()).find(|&i| array.is_null(i)) {
        return Err(null_row(row));
    }
    let floats = |values: &ArrayRef| -> Result<Vec<f32>> {
        let values = values.as_primitive_opt::<Float32Type>().ok_or_else(|| {
            bad("vector", format!("items are {}, not Float32", values.data_type()))
        })?;
        if values.null_count() > 0 {
            return Err(bad("vector", "a vector has a null component"));
        }
        Ok(values.values().to_vec())
    };
    match array.data_type() {
        DataType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            if *size as usize != dim {
                return Err(bad(
                    "vector",
                    format!("holds {size} floats a row, the database {dim}"),
                ));
            }
            // A sliced list's values may be the parent's: take this list's window of them.
            let start = list.offset() * dim;
            let values = list.values().slice(start, list.len() * dim);
            floats(&values)
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let mut out = Vec::with_capacity(list.len() * dim);
            for row in 0..list.len() {
                let vector = list.value(row);
                if vector.len() != dim {
                    let source = Box::new(bad(
                        "vector",
                        format!("holds {} floats, the database {dim}", vector.len()),
                    ));
                    return Err(Error::InvalidRow { row, id: ids.get(row).copied(), source });
                }
                out.extend(floats(&vector)?);
            }
            Ok(out)
        }
        other => Err(bad("vector", format!("is {other}, not FixedSizeList<Float32>"))),
    }
}

/// Whether a column of Arrow type `data` can hold attribute type `ty` (what `value_at` reads).
fn holds(ty: AttrType, data: &DataType) -> bool {
    match (ty, data) {
        (AttrType::U64, DataType::UInt64 | DataType::UInt32 | DataType::Int64) => true,
        (AttrType::I64, DataType::Int64 | DataType::Int32) => true,
        (AttrType::F64, DataType::Float64 | DataType::Float32) => true,
        (AttrType::Bool, DataType::Boolean) => true,
        (AttrType::Keyword, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => true,
        (AttrType::Keywords, DataType::List(item)) => item.data_type() == &DataType::Utf8,
        _ => false,
    }
}

/// The value of attribute `name` (of type `ty`) in `row`, or `None` for a null.
fn value_at(array: &ArrayRef, row: usize, ty: AttrType, name: &str) -> Result<Option<Value>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let mismatch =
        || bad(name, format!("is {}, which does not hold a {ty:?} attribute", array.data_type()));
    let value = match (ty, array.data_type()) {
        (AttrType::U64, DataType::UInt64) => {
            Value::U64(array.as_primitive::<UInt64Type>().value(row))
        }
        (AttrType::U64, DataType::UInt32) => {
            Value::U64(array.as_primitive::<UInt32Type>().value(row).into())
        }
        (AttrType::I64 | AttrType::U64, DataType::Int64) => {
            let v = array.as_primitive::<Int64Type>().value(row);
            match ty {
                AttrType::I64 => Value::I64(v),
                _ => Value::U64(
                    u64::try_from(v).map_err(|_| bad(name, format!("row {row} is negative")))?,
                ),
            }
        }
        (AttrType::I64, DataType::Int32) => {
            Value::I64(array.as_primitive::<Int32Type>().value(row).into())
        }
        (AttrType::F64, DataType::Float64) => {
            Value::F64(array.as_primitive::<arrow_array::types::Float64Type>().value(row))
        }
        (AttrType::F64, DataType::Float32) => {
            Value::F64(array.as_primitive::<Float32Type>().value(row).into())
        }
        (AttrType::Bool, DataType::Boolean) => Value::Bool(array.as_boolean().value(row)),
        (AttrType::Keyword, DataType::Utf8) => {
            Value::Keyword(array.as_string::<i32>().value(row).to_owned())
        }
        (AttrType::Keyword, DataType::LargeUtf8) => {
            Value::Keyword(array.as_string::<i64>().value(row).to_owned())
        }
        (AttrType::Keyword, DataType::Utf8View) => {
            Value::Keyword(array.as_string_view().value(row).to_owned())
        }
        (AttrType::Keywords, DataType::List(_)) => {
            let list = array.as_list::<i32>().value(row);
            let strings = list.as_string_opt::<i32>().ok_or_else(mismatch)?;
            Value::Keywords(strings.iter().flatten().map(str::to_owned).collect())
        }
        _ => return Err(mismatch()),
    };
    Ok(Some(value))
}

impl Db {
    /// Upserts every row of `batch` (an `id`, a `vector` and any attribute and `_payload`
    /// columns; see [`arrow_schema()`] for the types), as
    /// [`upsert_batch_with`](Self::upsert_batch_with) does: the whole batch is checked first,
    /// and a column of a wrong type, a null id or vector, or an unknown column is refused and
    /// changes nothing.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use arrow_array::{RecordBatch, UInt64Array, builder::{FixedSizeListBuilder, Float32Builder}};
    /// use strata::{Db, Metric, Options};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Db::create(dir.path().join("v"), Options::new(2, Metric::L2))?;
    /// let mut vectors = FixedSizeListBuilder::new(Float32Builder::new(), 2);
    /// for v in [[1.0, 0.0], [0.0, 1.0]] {
    ///     vectors.values().append_slice(&v);
    ///     vectors.append(true);
    /// }
    /// let batch = RecordBatch::try_from_iter([
    ///     ("id", Arc::new(UInt64Array::from(vec![7, 8])) as _),
    ///     ("vector", Arc::new(vectors.finish()) as _),
    /// ]).unwrap();
    /// db.upsert_arrow(&batch)?;
    /// assert_eq!(db.get(8)?, Some(vec![0.0, 1.0]));
    /// # Ok::<(), strata::Error>(())
    /// ```
    pub fn upsert_arrow(&self, batch: &RecordBatch) -> Result<()> {
        let rows = rows_of(batch, self.dim(), self.options().schema())?;
        if rows.attributes.is_empty() {
            self.upsert_batch(&rows.ids, &rows.vectors)
        } else {
            self.upsert_batch_with(&rows.ids, &rows.vectors, &rows.attributes)
        }
    }

    /// [`upsert_arrow`](Self::upsert_arrow) through the bulk path: as [`ingest`](Self::ingest),
    /// the batch becomes one segment, committed with every write before it.
    pub fn ingest_arrow(&self, batch: &RecordBatch) -> Result<Version> {
        let rows = rows_of(batch, self.dim(), self.options().schema())?;
        if rows.attributes.is_empty() {
            self.ingest(&rows.ids, &rows.vectors)
        } else {
            self.ingest_with(&rows.ids, &rows.vectors, &rows.attributes)
        }
    }

    /// The current committed version as Arrow record batches of at most `batch_rows` rows
    /// (see [`Snapshot::scan_arrow`]).
    pub fn scan_arrow(&self, batch_rows: usize) -> ArrowScan {
        self.snapshot().scan_arrow(batch_rows)
    }

    /// The Arrow schema of this database's records (see [`arrow_schema()`]).
    pub fn arrow_schema(&self) -> SchemaRef {
        arrow_schema(self.dim(), self.options().schema())
    }
}

impl Snapshot {
    /// Every live record of this version as Arrow record batches of at most `batch_rows` rows
    /// (at least 1), in [`scan`](Self::scan)'s order, with the columns of [`arrow_schema()`].
    pub fn scan_arrow(&self, batch_rows: usize) -> ArrowScan {
        ArrowScan {
            scan: self.scan(),
            schema: arrow_schema(self.dim(), &self.options().attributes),
            attributes: self.options().attributes.clone(),
            dim: self.dim(),
            batch_rows: batch_rows.max(1),
        }
    }
}

/// The iterator of [`Snapshot::scan_arrow`].
#[derive(Debug)]
pub struct ArrowScan {
    scan: Scan,
    schema: SchemaRef,
    attributes: Schema,
    dim: usize,
    batch_rows: usize,
}

impl ArrowScan {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// One column's builder, by attribute type.
enum ColumnBuilder {
    U64(UInt64Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Keyword(StringBuilder),
    Keywords(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    fn new(ty: AttrType) -> Self {
        match ty {
            AttrType::U64 => ColumnBuilder::U64(UInt64Builder::new()),
            AttrType::I64 => ColumnBuilder::I64(Int64Builder::new()),
            AttrType::F64 => ColumnBuilder::F64(Float64Builder::new()),
            AttrType::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            AttrType::Keyword => ColumnBuilder::Keyword(StringBuilder::new()),
            AttrType::Keywords => ColumnBuilder::Keywords(ListBuilder::new(StringBuilder::new())),
        }
    }

    fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (ColumnBuilder::U64(b), Some(Value::U64(v))) => b.append_value(*v),
            (ColumnBuilder::I64(b), Some(Value::I64(v))) => b.append_value(*v),
            (ColumnBuilder::F64(b), Some(Value::F64(v))) => b.append_value(*v),
            (ColumnBuilder::Bool(b), Some(Value::Bool(v))) => b.append_value(*v),
            (ColumnBuilder::Keyword(b), Some(Value::Keyword(v))) => b.append_value(v),
            (ColumnBuilder::Keywords(b), Some(Value::Keywords(v))) => {
                for keyword in v {
                    b.values().append_value(keyword);
                }
                b.append(true);
            }
            // Stored records carry their schema's types; anything else is absent.
            (ColumnBuilder::U64(b), _) => b.append_null(),
            (ColumnBuilder::I64(b), _) => b.append_null(),
            (ColumnBuilder::F64(b), _) => b.append_null(),
            (ColumnBuilder::Bool(b), _) => b.append_null(),
            (ColumnBuilder::Keyword(b), _) => b.append_null(),
            (ColumnBuilder::Keywords(b), _) => b.append(false),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::U64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::I64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::F64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Keyword(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Keywords(mut b) => Arc::new(b.finish()),
        }
    }
}

impl Iterator for ArrowScan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        let mut ids = UInt64Builder::with_capacity(self.batch_rows);
        let mut vectors = FixedSizeListBuilder::with_capacity(
            Float32Builder::with_capacity(self.batch_rows * self.dim),
            self.dim as i32,
            self.batch_rows,
        )
        .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
        let mut columns: Vec<ColumnBuilder> =
            self.attributes.columns().iter().map(|c| ColumnBuilder::new(c.ty)).collect();
        let mut payloads = BinaryBuilder::new();
        let mut rows = 0;
        while rows < self.batch_rows {
            let entry = match self.scan.next() {
                None => break,
                Some(Err(error)) => return Some(Err(error)),
                Some(Ok(entry)) => entry,
            };
            ids.append_value(entry.id);
            vectors.values().append_slice(&entry.vector);
            vectors.append(true);
            for (builder, column) in columns.iter_mut().zip(self.attributes.columns()) {
                builder.append(entry.attributes.get(&column.name));
            }
            payloads.append_option(entry.attributes.payload_bytes());
            rows += 1;
        }
        if rows == 0 {
            return None;
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids.finish()), Arc::new(vectors.finish())];
        arrays.extend(columns.into_iter().map(ColumnBuilder::finish));
        arrays.push(Arc::new(payloads.finish()));
        Some(
            RecordBatch::try_new(Arc::clone(&self.schema), arrays)
                .map_err(|e| bad("*", format!("building a batch: {e}"))),
        )
    }
}
